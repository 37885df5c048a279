"""The HTTP service: the course's ``/loss`` contract plus asynchronous runs and a dashboard.

Served by `cs336_scaling.server` (asyncio, HTTP/1.1 keep-alive): a `/loss` whose run
finished is answered on the event loop from the store's memory (`ScalingService.cached`);
everything else runs on a worker thread (`ScalingService.handle`) and may block.

    GET  /loss?d_model=..&num_layers=..&num_heads=..&batch_size=..&learning_rate=..
               &train_flops=..&api_key=..     -> {"loss", "total_flops_used"} (blocks)
    GET  /total_flops_used?api_key=..         -> number
    GET  /previous_runs?api_key=..            -> {"previous_runs": [config + loss, ...]}
    POST /runs  (the six fields and api_key, as query or JSON body) -> 202 run (queued)
    GET  /runs?api_key=..[&status=..]         -> {"runs": [...]}
    GET  /runs/<id>?api_key=..                -> run: id, config, status, loss, error, times
    GET  /budget?api_key=..                   -> {"budget", "used", "remaining"}
    GET  /settings                            -> the accepted ranges, FLOPs grid, budget
    GET  /                                    -> dashboard (HTML); /dashboard/isoflops.png

Errors are ``{"message": ...}`` with 422 (bad query), 401 (unknown key), 403 (budget),
404 (no such run) or 500 (the run failed).
"""

from __future__ import annotations

import json

from cs336_scaling.runner import Runner
from cs336_scaling.server import Request, Response
from cs336_scaling.settings import (
    CONFIG_FIELDS,
    InvalidConfig,
    ServiceSettings,
    validate_config,
)
from cs336_scaling.store import STATUSES, BudgetExceeded, InvalidKey, Store


class ServiceError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ScalingService:
    """The state a request handler needs: store, runner, settings, dashboard."""

    def __init__(self, store: Store, runner: Runner, settings: ServiceSettings):
        self.store, self.runner, self.settings = store, runner, settings
        from cs336_scaling.dashboard import Dashboard

        self.dashboard = Dashboard(store, settings)
        self._configs: dict[tuple, dict] = {}  # query fields -> validated config (memo)

    # ---- HTTP ----------------------------------------------------------------------------

    def cached(self, request: Request) -> Response | None:
        """The answer to a `/loss` whose run finished (or to a bad query), without blocking;
        None for anything else (`handle` answers it on a worker thread)."""
        if request.method != "GET" or request.path != "/loss":
            return None
        params = _with_bearer(request)
        try:
            key = self._key(params)
            run = self.store.lookup(key, self._config_memo(params))
            if run is None or run["status"] != "finished":
                return None
            return _json({"loss": run["loss"], "total_flops_used": self.store.used(key)})
        except ServiceError as e:
            return _json({"message": str(e)}, e.status)

    def handle(self, request: Request) -> Response:
        params, path = _with_bearer(request), request.path
        if request.method == "POST":
            if path != "/runs":
                return _json({"message": f"no such endpoint: POST {path}"}, 404)
            try:
                body = json.loads(request.body) if request.body.strip() else {}
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict):
                return _json({"message": "the request body must be a JSON object"}, 422)
            return self._answer(lambda: self.submit({**params, **body}), 202)
        routes = {
            "/loss": self.loss,
            "/total_flops_used": self.total_flops_used,
            "/previous_runs": self.previous_runs,
            "/runs": self.runs,
            "/budget": self.budget,
            "/settings": self.public_settings,
            "/health": lambda _: {"ok": True},
        }
        if path in routes:
            return self._answer(lambda: routes[path](params))
        if path.startswith("/runs/"):
            return self._answer(lambda: self.run(path.removeprefix("/runs/"), params))
        if path == "/":
            page = self.dashboard.html(params.get("api_key")).encode()
            return Response(200, page, "text/html; charset=utf-8")
        if path == "/dashboard/isoflops.png":
            return Response(200, self.dashboard.png(), "image/png")
        return _json({"message": f"no such endpoint: {path}"}, 404)

    def _config_memo(self, params: dict) -> dict:
        """`validate_config` of a query seen before, from memory (clients repeat queries)."""
        fields = tuple(params.items())
        config = self._configs.get(fields)
        if config is None:
            config = _config(params, self.settings)
            if len(self._configs) >= 4096:
                self._configs.clear()
            self._configs[fields] = config
        return config

    @staticmethod
    def _answer(fn, status: int = 200) -> Response:
        try:
            return _json(fn(), status)
        except ServiceError as e:
            return _json({"message": str(e)}, e.status)

    # ---- the course's contract ---------------------------------------------------------

    def loss(self, params: dict) -> dict:
        key = self._key(params)
        config = _config(params, self.settings)
        run = self.store.lookup(key, config)
        if run is None or run["status"] == "failed":
            run = self._submit(key, config)
        if run["status"] != "finished":
            run = self.runner.wait(run["id"])
        if run["status"] != "finished":
            raise ServiceError(500, f"run {run['id']} failed: {run['error']}")
        return {"loss": run["loss"], "total_flops_used": self.store.used(key)}

    def total_flops_used(self, params: dict) -> float:
        return self.store.used(self._key(params))

    def previous_runs(self, params: dict) -> dict:
        runs = self.store.runs(self._key(params), status="finished")
        return {"previous_runs": [_public(r, brief=True) for r in runs]}

    # ---- asynchronous runs -------------------------------------------------------------

    def submit(self, params: dict) -> dict:
        key = self._key(params)
        return _public(self._submit(key, _config(params, self.settings)))

    def run(self, run_id: str, params: dict) -> dict:
        key = self._key(params)
        run = self.store.get(int(run_id), key) if run_id.isdigit() else None
        if run is None:
            raise ServiceError(404, f"no run {run_id} for this key")
        return _public(run)

    def runs(self, params: dict) -> dict:
        status = params.get("status")
        if status is not None and status not in STATUSES:
            raise ServiceError(422, f"status must be one of {list(STATUSES)}, got {status}")
        return {"runs": [_public(r) for r in self.store.runs(self._key(params), status)]}

    def public_settings(self, params: dict) -> dict:
        """What a client may ask for (the sweep planner reads it); no key needed."""
        del params
        s = self.settings
        names = (
            "d_model",
            "num_layers",
            "num_heads",
            "learning_rate",
            "batch_size",
            "train_flops",
            "budget",
            "context_length",
        )
        return {name: getattr(s, name) for name in names}

    def budget(self, params: dict) -> dict:
        return self.store.budget(self._key(params), self.settings.budget)

    # ---- helpers -----------------------------------------------------------------------

    def _key(self, params: dict) -> str:
        key = params.get("api_key")
        try:
            self.store.check_key(key)
        except InvalidKey as e:
            raise ServiceError(401, str(e)) from None
        return key

    def _submit(self, key: str, config: dict) -> dict:
        try:
            run, queued = self.store.submit(key, config, self.settings.budget)
        except BudgetExceeded as e:
            raise ServiceError(403, str(e)) from None
        if queued:
            self.runner.wake()
        return run


def _config(params: dict, settings: ServiceSettings) -> dict:
    try:
        return validate_config(params, settings)
    except InvalidConfig as e:
        raise ServiceError(422, str(e)) from None


def _public(run: dict, brief: bool = False) -> dict:
    if brief:
        return {k: run[k] for k in (*CONFIG_FIELDS, "loss")}
    return {k: v for k, v in run.items() if k != "api_key"}


def _with_bearer(request: Request) -> dict:
    """The query's fields, with the key of an ``Authorization: Bearer`` header if the query
    has none."""
    auth = request.headers.get("authorization", "")
    if auth.startswith("Bearer ") and "api_key" not in request.params:
        return {**request.params, "api_key": auth.removeprefix("Bearer ").strip()}
    return request.params


def _json(value, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode())
