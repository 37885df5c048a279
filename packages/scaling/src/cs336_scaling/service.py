"""The HTTP service: the course's ``/loss`` contract plus asynchronous runs and a dashboard.

Stdlib only (`ThreadingHTTPServer`, HTTP/1.1 keep-alive): a request is a few SQLite reads,
so a thread per connection is plenty, and the service has no web framework to install.

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
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from cs336_scaling.runner import Runner
from cs336_scaling.settings import InvalidConfig, ServiceSettings, validate_config
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
        return {
            k: run[k]
            for k in (
                "d_model",
                "num_layers",
                "num_heads",
                "batch_size",
                "learning_rate",
                "train_flops",
                "loss",
            )
        }
    return {k: v for k, v in run.items() if k != "api_key"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    service: ScalingService  # set on the subclass `make_server` builds

    def do_GET(self):
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query))
        self._bearer(params)
        path = url.path.rstrip("/") or "/"
        svc = self.service
        routes = {
            "/loss": svc.loss,
            "/total_flops_used": svc.total_flops_used,
            "/previous_runs": svc.previous_runs,
            "/runs": svc.runs,
            "/budget": svc.budget,
            "/settings": svc.public_settings,
        }
        if path in routes:
            return self._answer(lambda: routes[path](params))
        if path.startswith("/runs/"):
            return self._answer(lambda: svc.run(path.removeprefix("/runs/"), params))
        if path == "/":
            return self._send(
                200, svc.dashboard.html(params.get("api_key")).encode(), "text/html; charset=utf-8"
            )
        if path == "/dashboard/isoflops.png":
            return self._send(200, svc.dashboard.png(), "image/png")
        if path == "/health":
            return self._answer(lambda: {"ok": True})
        self._error(404, f"no such endpoint: {path}")

    def do_POST(self):
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._bearer(params)
        if url.path.rstrip("/") != "/runs":
            return self._error(404, f"no such endpoint: POST {url.path}")
        try:
            params.update(json.loads(body) if body.strip() else {})
        except (json.JSONDecodeError, TypeError, ValueError):
            return self._error(422, "the request body must be a JSON object")
        self._answer(lambda: self.service.submit(params), status=202)

    def _bearer(self, params: dict) -> None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and "api_key" not in params:
            params["api_key"] = auth.removeprefix("Bearer ").strip()

    def _answer(self, fn, status: int = 200) -> None:
        try:
            result = fn()
        except ServiceError as e:
            return self._error(e.status, str(e))
        self._send(status, json.dumps(result).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"message": message}).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # quiet: one line per request is noise here
        pass


def make_server(service: ScalingService, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"service": service})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread
