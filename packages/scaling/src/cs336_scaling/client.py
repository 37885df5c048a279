"""`ScalingClient`: the service's Python client (stdlib only). It speaks the course's
contract, so the same calls work against the course's server URL.

    client = ScalingClient("http://127.0.0.1:8000", api_key)
    client.loss(d_model=256, num_layers=4, num_heads=4, batch_size=128,
                learning_rate=1e-3, train_flops=1e15)   # {"loss": ..., "total_flops_used": ...}
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlencode


class ScalingServiceError(RuntimeError):
    """The service refused or failed a request; ``message`` is its one-line reason."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message, self.status = message, status


class ScalingClient:
    def __init__(self, base_url: str, api_key: str, timeout: float | None = None):
        self.base_url, self.api_key, self.timeout = base_url.rstrip("/"), api_key, timeout

    def loss(self, **config) -> dict:
        """Train (or look up) one configuration; blocks until its final loss is known."""
        return self._request("GET", "/loss", config)

    def previous_runs(self) -> list[dict]:
        out = self._request("GET", "/previous_runs")
        return out["previous_runs"] if isinstance(out, dict) else out

    def total_flops_used(self) -> float:
        out = self._request("GET", "/total_flops_used")
        return float(out["total_flops_used"] if isinstance(out, dict) else out)

    def submit(self, **config) -> dict:
        """Queue a run without waiting; the returned run has an ``id`` to poll."""
        return self._request("POST", "/runs", config)

    def run(self, run_id: int) -> dict:
        return self._request("GET", f"/runs/{run_id}")

    def runs(self, status: str | None = None) -> list[dict]:
        return self._request("GET", "/runs", {} if status is None else {"status": status})["runs"]

    def budget(self) -> dict:
        return self._request("GET", "/budget")

    def _request(self, method: str, path: str, params: dict | None = None):
        query = {**(params or {}), "api_key": self.api_key}
        url = f"{self.base_url}{path}"
        data = None
        if method == "GET":
            url += "?" + urlencode(query)
        else:
            data = json.dumps(query).encode()
        req = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise ScalingServiceError(_message(e.read()) or e.reason, e.code) from None
        except urllib.error.URLError as e:
            raise ScalingServiceError(f"cannot reach {self.base_url}: {e.reason}") from None


def _message(body: bytes) -> str | None:
    try:
        out = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body.decode(errors="replace").strip() or None
    if isinstance(out, dict):
        return out.get("message") or (out.get("detail") and str(out["detail"]))
    return None
