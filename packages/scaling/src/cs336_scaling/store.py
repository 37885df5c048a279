"""The service's state in one SQLite file (WAL): keys, budgets, runs and results.

Every check-and-charge happens inside one ``BEGIN IMMEDIATE`` transaction, so concurrent
requests (threads or processes) can neither overspend a budget nor queue one
configuration twice for a key.

A cached answer must not cost a SQLite query (the service's latency goal), so the store
keeps in memory what cannot change or what only its own writes change: known keys (keys
are never deleted or edited), finished runs (immutable), and each key's FLOPs used, valid
until the next write of this store (a generation counter; the server holds the state
folder's lock, so no other process writes runs).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from cs336_scaling.settings import CONFIG_FIELDS

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    api_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    budget REAL,                -- NULL: the server's default budget
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    api_key TEXT NOT NULL REFERENCES keys(api_key),
    config TEXT NOT NULL,       -- canonical JSON of the six query fields
    train_flops REAL NOT NULL,
    status TEXT NOT NULL,       -- queued, running, finished, failed
    loss REAL,
    error TEXT,
    job_id TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    UNIQUE (api_key, config)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
"""
STATUSES = ("queued", "running", "finished", "failed")


class InvalidKey(ValueError):
    pass


class BudgetExceeded(ValueError):
    pass


def canonical(config: dict) -> str:
    return json.dumps({k: config[k] for k in CONFIG_FIELDS}, sort_keys=True)


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._db().executescript(SCHEMA)
        self._keys: dict[str, dict] = {}  # api_key -> its row
        self._finished: dict[tuple[str, str], dict] = {}  # (api_key, config) -> finished run
        self._used: dict[str, tuple[int, float]] = {}  # api_key -> (generation, FLOPs used)
        self._generation = 0  # bumped after every write transaction commits

    # One connection per thread; autocommit mode, explicit transactions.
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, store: Store):
            self.store, self.db = store, store._db()

        def __enter__(self):
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, *_):
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
            self.store._generation += 1  # after the commit: a reader that saw older data
            # tagged its cached value with an older generation, so it is never used

    def _tx(self):
        return self._Tx(self)

    # ---- keys --------------------------------------------------------------------------

    def create_key(self, name: str, budget: float | None = None) -> str:
        key = "sk-" + secrets.token_urlsafe(24)
        with self._tx() as db:
            db.execute("INSERT INTO keys VALUES (?, ?, ?, ?)", (key, name, budget, time.time()))
        return key

    def list_keys(self) -> list[dict]:
        rows = self._db().execute("SELECT * FROM keys ORDER BY created").fetchall()
        return [dict(r) | {"used": self.used(r["api_key"])} for r in rows]

    def check_key(self, key: str | None) -> dict:
        row = self._keys.get(key)
        if row is None:  # unknown here; maybe created since by `keys create`
            found = self._db().execute("SELECT * FROM keys WHERE api_key = ?", (key or "",))
            found = found.fetchone()
            if found is None:
                raise InvalidKey(f"Invalid API key provided: {key}")
            row = self._keys[key] = dict(found)
        return row

    def used(self, key: str, db=None) -> float:
        if db is None:
            generation, cached = self._used.get(key, (-1, 0.0))
            if generation == self._generation:
                return cached
            generation = self._generation  # read before the query (see _Tx.__exit__)
        q = "SELECT COALESCE(SUM(train_flops), 0) FROM runs WHERE api_key = ? AND status != 'failed'"
        used = float((db or self._db()).execute(q, (key,)).fetchone()[0])
        if db is None:
            self._used[key] = (generation, used)
        return used

    def budget(self, key: str, default: float) -> dict:
        row = self.check_key(key)
        budget = row["budget"] if row["budget"] is not None else default
        used = self.used(key)
        return {"budget": budget, "used": used, "remaining": max(budget - used, 0.0)}

    # ---- runs --------------------------------------------------------------------------

    def submit(self, key: str, config: dict, default_budget: float) -> tuple[dict, bool]:
        """The key's run of this configuration, queuing (and charging) it if it is new or
        failed before; returns ``(run, queued_now)``. Refuses, charging nothing, a run that
        would take the key past its budget."""
        text = canonical(config)
        with self._tx() as db:
            key_row = db.execute("SELECT * FROM keys WHERE api_key = ?", (key,)).fetchone()
            if key_row is None:
                raise InvalidKey(f"Invalid API key provided: {key}")
            row = db.execute(
                "SELECT * FROM runs WHERE api_key = ? AND config = ?", (key, text)
            ).fetchone()
            if row is not None and row["status"] != "failed":
                return _run(row), False
            budget = key_row["budget"] if key_row["budget"] is not None else default_budget
            used = self.used(key, db)
            flops = float(config["train_flops"])
            if used + flops > budget:
                raise BudgetExceeded(
                    f"Budget exceeded: this run needs {flops:.3g} FLOPs, {used:.3g} of the key's "
                    f"{budget:.3g} are used ({max(budget - used, 0):.3g} left)"
                )
            now = time.time()
            if row is None:
                cur = db.execute(
                    "INSERT INTO runs (api_key, config, train_flops, status, created) VALUES (?, ?, ?, 'queued', ?)",
                    (key, text, flops, now),
                )
                run_id = cur.lastrowid
            else:  # a retry of a failed run
                run_id = row["id"]
                db.execute(
                    "UPDATE runs SET status='queued', loss=NULL, error=NULL, job_id=NULL, created=?, "
                    "started=NULL, finished=NULL WHERE id = ?",
                    (now, run_id),
                )
            return _run(db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()), True

    def lookup(self, key: str, config: dict) -> dict | None:
        """The key's run of this configuration, read-only (the cheap path of a cache hit:
        a finished run is answered from memory)."""
        text = canonical(config)
        run = self._finished.get((key, text))
        if run is None:
            row = self._db().execute(
                "SELECT * FROM runs WHERE api_key = ? AND config = ?", (key, text)
            )
            row = row.fetchone()
            if row is None:
                return None
            run = _run(row)
            if run["status"] == "finished":
                self._finished[(key, text)] = run
        return run

    def get(self, run_id: int, key: str | None = None) -> dict | None:
        row = self._db().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or (key is not None and row["api_key"] != key):
            return None
        return _run(row)

    def runs(self, key: str | None = None, status: str | None = None) -> list[dict]:
        q, args = "SELECT * FROM runs WHERE 1=1", []
        if key is not None:
            q, args = q + " AND api_key = ?", [*args, key]
        if status is not None:
            q, args = q + " AND status = ?", [*args, status]
        return [_run(r) for r in self._db().execute(q + " ORDER BY id", args).fetchall()]

    def claim(self, run_id: int) -> bool:
        """queued -> running; False if someone else took it."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runs SET status='running', started=? WHERE id = ? AND status='queued'",
                (time.time(), run_id),
            )
            return cur.rowcount == 1

    def set_job(self, run_id: int, job_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET job_id = ? WHERE id = ?", (job_id, run_id))

    def finish(self, run_id: int, loss: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status='finished', loss=?, finished=? WHERE id = ? AND status='running'",
                (loss, time.time(), run_id),
            )

    def fail(self, run_id: int, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status='failed', error=?, finished=? WHERE id = ? AND status IN ('queued', 'running')",
                (error, time.time(), run_id),
            )

    def fail_running(self, error: str) -> int:
        """Mark every running run failed (they died with a server); returns how many."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE runs SET status='failed', error=?, finished=? WHERE status='running'",
                (error, time.time()),
            )
            return cur.rowcount


def _run(row: sqlite3.Row) -> dict:
    out = {"id": row["id"], **json.loads(row["config"])}
    for name in ("api_key", "status", "loss", "error", "created", "started", "finished"):
        out[name] = row[name]
    return out
