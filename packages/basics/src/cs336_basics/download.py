"""Resumable downloads of the course's public datasets (urllib, no extra dependency).

A file is fetched into ``<name>.part`` (continued with an HTTP Range request after an
interruption), renamed when complete, and gunzipped when it is a ``.gz`` archive; files
already in place are skipped, so rerunning a download finishes what is missing.
"""

from __future__ import annotations

import gzip
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from cs336_common.io import atomic_path

_HF = "https://huggingface.co/datasets"
DATASETS: dict[str, list[str]] = {
    "tinystories": [
        f"{_HF}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
        f"{_HF}/roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt",
    ],
    "owt": [
        f"{_HF}/stanford-cs336/owt-sample/resolve/main/owt_train.txt.gz",
        f"{_HF}/stanford-cs336/owt-sample/resolve/main/owt_valid.txt.gz",
    ],
}
_CHUNK = 1 << 20


def download_dataset(name: str, out_dir: str | Path, progress: bool = True) -> list[Path]:
    """Fetch every file of dataset ``name`` into ``out_dir``; return the text files."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return [fetch(url, out_dir, progress) for url in DATASETS[name]]


def fetch(url: str, out_dir: str | Path, progress: bool = True) -> Path:
    """Download ``url`` into ``out_dir`` (gunzipping ``.gz``); return the final file."""
    out_dir = Path(out_dir)
    name = url.rsplit("/", 1)[-1]
    final = out_dir / name.removesuffix(".gz")
    if final.is_file():
        return final
    archive = out_dir / name
    if not archive.is_file():
        _download(url, archive, progress)
    if archive != final:
        with atomic_path(final) as tmp, gzip.open(archive, "rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
        archive.unlink()
    return final


def _download(url: str, dest: Path, progress: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code != 416:  # 416: nothing left past `have`, the partial file is complete
            raise
        part.replace(dest)
        return
    with response:
        # 206: the server continues the partial file; otherwise it sends it whole
        resumed = getattr(response, "status", None) == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        with (
            part.open("ab" if resumed else "wb") as f,
            tqdm(
                total=total,
                initial=have,
                unit="B",
                unit_scale=True,
                desc=dest.name,
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise OSError(
            f"{url}: got {part.stat().st_size} of {total} bytes; run the download again to resume"
        )
    part.replace(dest)
