import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from cs336_data import (
    classify_nsfw,
    classify_quality,
    classify_toxic_speech,
    exact_line_deduplication,
    extract_text_from_html_bytes,
    gopher_quality_filter,
    identify_language,
    mask_emails,
    mask_ips,
    mask_phone_numbers,
    minhash_deduplication,
)
from cs336_data.config import load_config
from cs336_data.executor import ShardFailures
from cs336_data.pipeline import run_pipeline
from cs336_data.warc import iter_pages
from packages.data.tests.crawl import build_crawl

CONFIG = """
inputs = ["crawl"]
output = "out"
[executor]
kind = "{kind}"
workers = 2
[quality]
min_wiki = 0.2
[minhash]
num_hashes = 64
num_bands = 16
ngrams = 3
threshold = 0.6
[tokenize]
enabled = false
"""


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    root = tmp_path_factory.mktemp("crawl")
    build_crawl(root / "crawl")
    return root


def _config(root: Path, kind="inline", extra=""):
    path = root / "pipeline.toml"
    path.write_text(CONFIG.format(kind=kind) + extra)
    return load_config(path)


def _docs(folder: Path) -> list[dict]:
    out = []
    for shard in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(shard, "rt") as f:
            out += [json.loads(line) for line in f]
    return out


def _reference(crawl_dir: Path, tmp: Path) -> list[str]:
    """The same stages by calling the public functions one document at a time, and the
    two dedup functions on one text file per document, in one process."""
    texts = []
    for path in sorted(crawl_dir.iterdir()):
        for page in iter_pages(path):
            if page.skip:
                continue
            text = (
                page.payload.decode()
                if page.is_text
                else extract_text_from_html_bytes(page.payload)
            )
            if not text:
                continue
            lang, score = identify_language(text)
            if lang != "en" or score < 0.65 or not gopher_quality_filter(text):
                continue
            if classify_nsfw(text)[0] == "nsfw" or classify_toxic_speech(text)[0] == "toxic":
                continue
            label, p = classify_quality(text)
            if (p if label == "wiki" else 1 - p) < 0.2:
                continue
            for fn in (mask_emails, mask_phone_numbers, mask_ips):
                text = fn(text)[0]
            texts.append(text)
    src, lines, fuzzy = tmp / "ref_in", tmp / "ref_lines", tmp / "ref_fuzzy"
    src.mkdir()
    files = []
    for i, t in enumerate(texts):
        files.append(src / f"{i:04d}.txt")
        files[-1].write_text(t)
    exact_line_deduplication(files, lines)
    kept = [lines / f.name for f in files if (lines / f.name).read_text().strip()]
    minhash_deduplication(kept, 64, 16, 3, 0.6, fuzzy)
    return [p.read_text().splitlines() for p in sorted(fuzzy.iterdir())]


def test_pipeline_matches_the_functions(crawl, tmp_path):
    result = run_pipeline(_config(crawl))
    final = _docs(crawl / "out/3_minhash")
    assert [d["text"].splitlines() for d in final] == _reference(crawl / "crawl", tmp_path)
    stats = result["stats"]
    ex = stats["extract"].removed
    assert ex["not_html"] == 2 and ex["empty"] == 1 and ex["truncated"] == 1
    assert stats["langid"].languages["de"] == 3 and stats["langid"].removed["language"] >= 15
    assert stats["harmful"].removed["nsfw"] + stats["harmful"].removed["toxic"] == 1
    report = json.loads((crawl / "out/report.json").read_text())
    assert report["stages"]["extract"]["docs_in"] == stats["extract"].docs_in
    samples = [
        json.loads(x) for x in (crawl / "out/removed_samples.jsonl").read_text().splitlines()
    ]
    assert any(s["rule"] == "language" and s["url"].startswith("https://de.") for s in samples)


def test_metadata_and_masking(crawl):
    run_pipeline(_config(crawl))
    docs = _docs(crawl / "out/1_filtered")
    pii = next(d for d in docs if d["metadata"]["url"] == "https://pii.example/contact")
    assert "|||EMAIL_ADDRESS|||" in pii["text"] and "|||PHONE_NUMBER|||" in pii["text"]
    assert "|||IP_ADDRESS|||" in pii["text"] and "jane.doe" not in pii["text"]
    assert pii["metadata"]["pii_masked"] == {"email": 1, "phone": 1, "ip": 1}
    for d in docs:
        m = d["metadata"]
        assert (m["language"] == "en" and m["warc_record_id"] == d["id"]) or d["id"]
        assert {"language_score", "nsfw", "toxic", "quality_wiki", "source"} <= set(m)


def test_local_workers_give_the_same_documents(crawl, tmp_path):
    run_pipeline(_config(crawl))
    inline = _docs(crawl / "out/3_minhash")
    root = tmp_path / "local"
    root.mkdir()
    (root / "crawl").symlink_to(crawl / "crawl")
    run_pipeline(_config(root, kind="local"))
    assert _docs(root / "out/3_minhash") == inline


def _slurm_up() -> bool:
    import shutil
    import subprocess

    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    try:
        up = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:  # no controller answers
        return False
    return up.returncode == 0 and "up" in up.stdout.split()


@pytest.mark.skipif(not _slurm_up(), reason="needs a reachable Slurm cluster (sbatch, sinfo)")
def test_slurm_jobs_give_the_same_documents(crawl, tmp_path):
    """Real Slurm through submitit (single-node setup: benchmarks/results/*_slurm.md);
    the job's Python is this one, so the cluster must share this file system."""
    run_pipeline(_config(crawl))
    inline = _docs(crawl / "out/3_minhash")
    root = tmp_path / "slurm"
    root.mkdir()
    (root / "crawl").symlink_to(crawl / "crawl")
    cfg = _config(root, kind="slurm")
    cfg.executor.time_min, cfg.executor.mem_gb = 10, 1.0
    run_pipeline(cfg)
    assert _docs(root / "out/3_minhash") == inline
    scripts = list((root / "out/1_filtered/_logs").glob("*_submission.sh"))
    assert scripts and "#SBATCH --mem=1GB" in scripts[0].read_text()


def test_rerun_skips_finished_shards_and_redoes_missing_ones(crawl, tmp_path):
    root = tmp_path / "r"
    (root / "crawl").mkdir(parents=True)
    for p in (crawl / "crawl").iterdir():
        (root / "crawl" / p.name).write_bytes(p.read_bytes())
    run_pipeline(_config(root))
    before = _docs(root / "out/3_minhash")
    keep = root / "out/1_filtered/crawl-a.jsonl.gz"
    stamp = keep.stat().st_mtime_ns
    lost = root / "out/1_filtered/crawl-b.jsonl.gz"
    lost.unlink()  # as if the run was killed while writing this shard
    run_pipeline(_config(root))
    assert keep.stat().st_mtime_ns == stamp
    assert lost.is_file()
    assert _docs(root / "out/3_minhash") == before


def test_failing_shard_leaves_no_output_and_others_finish(crawl, tmp_path, monkeypatch):
    from cs336_data import steps

    root = tmp_path / "f"
    root.mkdir()
    (root / "crawl").symlink_to(crawl / "crawl")

    def boom(self, doc):
        if "moby" in doc["metadata"].get("url", ""):
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(steps.Mask, "__call__", boom)
    with pytest.raises(ShardFailures, match=r"1 shard\(s\) failed: crawl-a.warc.gz"):
        run_pipeline(_config(root))
    out = root / "out/1_filtered"
    assert not (out / "crawl-a.jsonl.gz").exists()
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
    assert (out / "crawl-b.jsonl.gz.stats.json").is_file()


def test_tokens_match_an_independent_gpt2_tokenizer(crawl, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from importlib.resources import files

    from cs336_common.train.token_file import open_token_file

    root = tmp_path / "t"
    root.mkdir()
    (root / "crawl").symlink_to(crawl / "crawl")
    cfg = _config(root)
    cfg.tokenizer = "gpt2"
    result = run_pipeline(cfg)
    tokens = open_token_file(root / "out/tokens.bin")
    assert tokens.dtype == np.uint16 and len(tokens) == result["tokens"]
    assets = files("cs336_common") / "assets"
    hf = tokenizers.ByteLevelBPETokenizer(
        str(assets / "gpt2_vocab.json"), str(assets / "gpt2_merges.txt")
    )
    want = []
    for doc in _docs(root / "out/3_minhash"):
        want += [*hf.encode(doc["text"]).ids, 50256]
    assert tokens.tolist() == want


def test_sigterm_stops_cleanly_and_a_rerun_resumes(crawl, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    run_pipeline(_config(crawl))
    want = _docs(crawl / "out/3_minhash")
    root = tmp_path / "s"
    root.mkdir()
    (root / "crawl").symlink_to(crawl / "crawl")
    _config(root, kind="local")
    cmd = [
        sys.executable,
        "-m",
        "cs336_data.cli",
        "pipeline",
        "--config",
        str(root / "pipeline.toml"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (root / "out/1_filtered/_logs").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the workers are running
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    leftovers = [p for p in (root / "out").rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert _docs(root / "out/3_minhash") == want
