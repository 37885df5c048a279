"""Split a large UTF-8 text file into byte ranges that can be tokenized independently, and
map a function over them in worker processes, streaming, with a byte progress bar.

A range starts at a special token where one occurs within `chunk_bytes` of the target
size (so documents stay whole); otherwise at whichever comes first, a special token or a
newline that follows a visible ASCII character, a point no GPT-2 pre-token crosses.
Either way encoding or counting the ranges apart gives exactly what the whole file
gives, and no worker ever holds more than about one range.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
import re
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from tqdm import tqdm

from cs336_common.errors import InputError

# Below a few MB a worker process costs more than it saves (start-up, a cold pre-token
# cache, shipping results back); above 16 MB a worker holds too much at once.
_MIN_CHUNK = 4 << 20
_MAX_CHUNK = 16 << 20
_WINDOW = 1 << 16  # bytes read at a time while looking for a cut
# The newline fallback: cut just before "\n" when a visible ASCII byte precedes it.
_NEWLINE_CUT = rb"[\x21-\x7e](?=\n)"
_NEWLINE_RE = re.compile(_NEWLINE_CUT)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_workers(num_workers: int | None) -> int:
    """The number of worker processes asked for: `num_workers`, or one per CPU if unset."""
    return num_workers or default_workers()


class ChunkPlan(NamedTuple):
    path: Path
    ranges: list[tuple[int, int]]
    workers: int


def plan_chunks(
    path: str | os.PathLike,
    special_tokens: Sequence[str],
    num_workers: int | None,
    chunk_bytes: int | None = None,
) -> ChunkPlan:
    """Check that the input exists, resolve the worker count and cut the file into ranges
    of about ``chunk_bytes`` (default: `chunk_size` for the file and the workers): what
    to hand `map_chunks`."""
    path = check_input(path)
    workers = resolve_workers(num_workers)
    size = chunk_bytes or chunk_size(path.stat().st_size, workers)
    return ChunkPlan(path, chunk_ranges(path, special_tokens, size), workers)


def chunk_size(file_size: int, num_workers: int) -> int:
    """About four ranges per worker (load balance), each 4-16 MB."""
    return min(_MAX_CHUNK, max(_MIN_CHUNK, file_size // (4 * num_workers) + 1))


def chunk_ranges(
    path: str | os.PathLike,
    special_tokens: Sequence[str],
    chunk_bytes: int,
    *,
    window: int = _WINDOW,
) -> list[tuple[int, int]]:
    """Byte ranges [start, end) covering the file, each about `chunk_bytes` long; cuts
    are searched for `window` bytes at a time."""
    size = os.path.getsize(path)
    specials = sorted({t.encode("utf-8") for t in special_tokens}, key=len, reverse=True)
    alternation = b"|".join(map(re.escape, specials))
    special_re = re.compile(b"(?P<special>" + alternation + b")") if specials else None
    # Past `chunk_bytes` with no special token: whichever comes first, special or newline.
    any_re = re.compile(special_re.pattern + b"|" + _NEWLINE_CUT) if specials else _NEWLINE_RE
    cuts = [0]
    with open(path, "rb") as f:
        while cuts[-1] + chunk_bytes < size:
            pos = cuts[-1] + chunk_bytes
            cut = None
            if specials:
                cut = _first_cut(f, pos, pos + chunk_bytes, special_re, specials, window)
            if cut is None:
                cut = _first_cut(f, pos, None, any_re, specials, window)
            if cut is None or cut >= size:
                break
            cuts.append(cut)
    cuts.append(size)
    return list(itertools.pairwise(cuts))


def _first_cut(
    f, pos: int, stop: int | None, pattern, specials: list[bytes], window: int
) -> int | None:
    """Scan from `pos` (to about `stop`, or the end) a window at a time for the first match
    of `pattern` not inside a special token: cut before a special, after a newline's
    visible character."""
    overlap = max(len(specials[0]) if specials else 0, 1)  # a match across windows is seen
    while stop is None or pos < stop:
        f.seek(pos)
        data = f.read(window + overlap)
        for m in pattern.finditer(data):
            if m.start() >= window:
                break  # the next window sees it whole
            cut = pos + (m.start() if m.lastgroup == "special" else m.end())
            if not _inside_special(f, cut, specials):
                return cut
        if len(data) <= window:
            return None
        pos += window
    return None


def _inside_special(f, cut: int, specials: list[bytes]) -> bool:
    """Whether some special token occurrence starts before `cut` and ends after it."""
    if not specials:
        return False
    longest = len(specials[0])
    start = max(0, cut - longest + 1)
    f.seek(start)
    data = f.read(2 * longest)
    off = cut - start
    return any(
        data.startswith(s, off - k) for s in specials for k in range(1, min(len(s), off + 1))
    )


def read_text(path: str | os.PathLike, start: int, end: int) -> str:
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{path}: invalid UTF-8 at byte {start + e.start} ({e.reason}); "
            "the input must be UTF-8 text"
        ) from None


def map_chunks(
    fn: Callable[[Any, tuple[str, int, int]], Any],
    path: str | os.PathLike,
    ranges: list[tuple[int, int]],
    *,
    num_workers: int,
    progress: bool = False,
    desc: str | None = None,
    state: Any = None,
    make_state: Callable[[Any], Any] | None = None,
) -> Iterator:
    """Yield `fn(worker_state, (path, start, end))` for each range in order, from
    `num_workers` processes (in this one when 1 or a single range), updating a byte
    progress bar. `worker_state` is `make_state(state)`, built once per process (or
    `state` itself without `make_state`); in this process it lives only as long as the
    iteration, so nothing (a tokenizer's cache, say) outlives the call."""
    tasks = [(str(path), start, end) for start, end in ranges]
    total = ranges[-1][1] - ranges[0][0] if ranges else 0
    with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
        if num_workers <= 1 or len(tasks) <= 1:
            worker_state = make_state(state) if make_state is not None else state
            results = (fn(worker_state, task) for task in tasks)
            yield from _with_progress(results, tasks, bar)
            return
        workers = min(num_workers, len(tasks))
        context = multiprocessing.get_context()
        with context.Pool(workers, _init_worker, (state, make_state)) as pool:
            results = pool.imap(functools.partial(_call_in_worker, fn), tasks)
            yield from _with_progress(results, tasks, bar)


_worker_state: Any = None  # set only in pool worker processes, by _init_worker


def _init_worker(state: Any, make_state: Callable[[Any], Any] | None) -> None:
    global _worker_state
    # the parent handles the signals; a worker ends quietly when the pool terminates it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_state = make_state(state) if make_state is not None else state


def _call_in_worker(fn: Callable, task: tuple[str, int, int]) -> Any:
    return fn(_worker_state, task)


def _with_progress(results, tasks, bar) -> Iterator:
    for (_, start, end), result in zip(tasks, results, strict=True):
        bar.update(end - start)
        yield result


def check_input(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"input {path} is a folder; expected a text file")
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    return path
