"""BPE training and encoding speed, side by side with `tokenizers` and `tiktoken`.

Prints one Markdown table (best of --repeats wall times, same machine, same text):
  - train_bpe vs tokenizers' BpeTrainer (byte-level, same special token) on CORPUS at
    --vocab-size and on the course's corpus.en at vocab 500;
  - GPT-2 encoding, one process, vs tiktoken's GPT-2 (built offline from the same
    vocab.json) with identical ids checked: first pass (empty pre-token cache, what a
    fresh tokenizer pays), steady state (cache warm on the same text) and the second half
    of the text after the first (cache warm on other text, as deep into a long corpus);
  - encode_file (the work of `cs336-basics tokenizer encode`) with 1 and --workers
    processes, fresh tokenizers, vs tiktoken's encode_batch of the same chunks on as
    many threads, on --copies copies of CORPUS (a file big enough to split; repeated
    text, so each worker's cache is warm after its first copy).

  uv run python packages/basics/benchmarks/bench_tokenizer.py CORPUS [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tiktoken
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from cs336_basics import encode_file, train_bpe
from cs336_basics.text_chunks import default_workers, plan_chunks
from cs336_common import Tokenizer
from cs336_common.gpt2_bytes import str_to_bytes
from cs336_common.pretokenize import GPT2_PATTERN
from cs336_common.train.token_file import open_token_file

ROOT = Path(__file__).resolve().parents[3]
GPT2_DIR = ROOT / "shared" / "tests" / "fixtures"
CORPUS_EN = ROOT / "packages" / "basics" / "tests" / "fixtures" / "corpus.en"
EOT = "<|endoftext|>"


def best_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def hf_train(path: Path, vocab_size: int):
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train([str(path)], trainer)
    return tok


def gpt2_tokenizer() -> Tokenizer:
    return Tokenizer.from_files(GPT2_DIR / "gpt2_vocab.json", GPT2_DIR / "gpt2_merges.txt", [EOT])


def tiktoken_gpt2() -> tiktoken.Encoding:
    vocab = json.loads((GPT2_DIR / "gpt2_vocab.json").read_text(encoding="utf-8"))
    return tiktoken.Encoding(
        name="gpt2-offline",
        pat_str=GPT2_PATTERN,
        mergeable_ranks={str_to_bytes(t): i for t, i in vocab.items() if t != EOT},
        special_tokens={EOT: vocab[EOT]},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="a multi-MB UTF-8 English text file")
    parser.add_argument("--vocab-size", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--copies",
        type=int,
        default=8,
        help="encode_file runs on this many copies of CORPUS, so that it splits into chunks",
    )
    args = parser.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    mb = len(text.encode("utf-8")) / 1e6
    rows = []

    def row(what, ours, ref, ratio, goal):
        rows.append((what, ours, ref, ratio, goal))
        print(" | ".join(map(str, rows[-1])), file=sys.stderr)

    # ---- training ----
    for path, vocab_size, goal in (
        (args.corpus, args.vocab_size, "<= 2x tokenizers"),
        (CORPUS_EN, 500, "< 0.5 s"),
    ):
        ours, (vocab, _) = best_time(lambda: train_bpe(path, vocab_size, [EOT]), args.repeats)  # noqa: B023
        ref, hf = best_time(lambda: hf_train(path, vocab_size), args.repeats)  # noqa: B023
        assert len(vocab) == hf.get_vocab_size() == vocab_size
        size = path.stat().st_size / 1e6
        row(
            f"train, {path.name} ({size:.2f} MB), vocab {vocab_size:,}",
            f"{ours:.2f} s",
            f"{ref:.2f} s (tokenizers)",
            f"{ours / ref:.2f}x the time",
            goal,
        )

    # ---- single-process encoding ----
    enc = tiktoken_gpt2()
    ref, ref_ids = best_time(lambda: enc.encode(text, allowed_special="all"), args.repeats)
    cold_times = []
    for _ in range(args.repeats):
        tok = gpt2_tokenizer()
        t, ids = best_time(lambda: tok.encode(text), 1)  # noqa: B023
        cold_times.append(t)
        assert ids == ref_ids, "ids differ from tiktoken"
    warm, ids = best_time(lambda: tok.encode(text), args.repeats)
    assert ids == ref_ids
    for label, seconds in (("first pass", min(cold_times)), ("warm cache", warm)):
        row(
            f"encode GPT-2, 1 process, {label}, {len(ids):,} ids identical",
            f"{mb / seconds:.2f} MB/s",
            f"{mb / ref:.2f} MB/s (tiktoken)",
            f"{ref / seconds:.2f}x tiktoken",
            ">= 0.5x tiktoken",
        )
    # What a long corpus sees: the cache warmed on *other* text (the first half) only.
    half = text.index("\n", len(text) // 2) + 1
    second, mb2 = text[half:], len(text[half:].encode("utf-8")) / 1e6
    ref2, ref_ids2 = best_time(lambda: enc.encode(second, allowed_special="all"), args.repeats)
    times = []
    for _ in range(args.repeats):
        tok = gpt2_tokenizer()
        tok.encode(text[:half])
        t, ids = best_time(lambda: tok.encode(second), 1)  # noqa: B023
        times.append(t)
        assert ids == ref_ids2
    row(
        "encode GPT-2, 1 process, 2nd half after the 1st (cache warmed on other text)",
        f"{mb2 / min(times):.2f} MB/s",
        f"{mb2 / ref2:.2f} MB/s (tiktoken)",
        f"{ref2 / min(times):.2f}x tiktoken",
        ">= 0.5x tiktoken",
    )

    # ---- encode_file, the CLI's work, on a file big enough to split ----
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.txt"
        big.write_text(text * args.copies, encoding="utf-8")
        big_mb, big_ids = mb * args.copies, ref_ids * args.copies
        for workers in sorted({1, args.workers}):
            # tiktoken gets the same independent pieces that encode_file's processes get
            raw = big.read_bytes()
            ranges = plan_chunks(big, [EOT], workers).ranges
            pieces = [raw[a:b].decode("utf-8") for a, b in ranges]
            out = Path(tmp) / f"out{workers}.bin"
            times = []
            for _ in range(args.repeats):
                tok = gpt2_tokenizer()  # fresh caches, as a new CLI process has
                times.append(best_time(lambda: encode_file(tok, big, out, workers), 1)[0])  # noqa: B023
            assert np.array_equal(open_token_file(out), np.asarray(big_ids))
            ref_batch, batch = best_time(
                lambda: enc.encode_batch(pieces, num_threads=workers, allowed_special="all"),  # noqa: B023
                args.repeats,
            )
            assert [i for ids in batch for i in ids] == big_ids
            row(
                f"encode_file (CLI), {args.copies} copies ({big_mb:.1f} MB), {workers} "
                f"process(es), fresh tokenizer, {len(pieces)} chunks",
                f"{big_mb / min(times):.2f} MB/s",
                f"{big_mb / ref_batch:.2f} MB/s (tiktoken batch, {workers} thread(s))",
                f"{ref_batch / min(times):.2f}x tiktoken",
                "",
            )

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models_ = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = models_[0] if models_ else platform.processor()
    print(
        f"\n{args.corpus.name}: {mb:.2f} MB. {cpu}, {default_workers()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end; Python {platform.python_version()}, "
        f"tokenizers {tokenizers.__version__}, tiktoken {tiktoken.__version__}; best of "
        f"{args.repeats}.\n"
    )
    print("| measurement | cs336 | reference | ratio | goal |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
