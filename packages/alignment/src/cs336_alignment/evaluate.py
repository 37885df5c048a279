"""Generate responses for a list of examples and score them: accuracy, format errors,
and one record per example (used by `cs336-alignment eval` and the training loops)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from cs336_alignment.generation import response_text


def generate_and_score(
    generator: Any,
    examples: list[dict],
    score: Callable[[str, dict], dict],
    params: Any,
    batch_size: int = 64,
    progress: bool = False,
) -> tuple[dict[str, float], list[dict]]:
    """(metrics, records). Metrics: ``n``, ``accuracy``, ``format_error_rate`` (None for
    open-ended tasks), ``mean_response_tokens``."""
    records = []
    bar = tqdm(total=len(examples), desc="eval", disable=not progress, unit="ex")
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        outs = generator.generate([ex["prompt"] for ex in chunk], params)
        for ex, completions in zip(chunk, outs, strict=True):
            for c in completions:
                text = response_text(c, params.stop)
                s = score(text, ex)
                records.append(
                    {
                        "prompt": ex["prompt"],
                        "response": text,
                        "ground_truth": ex["ground_truth"],
                        "response_tokens": len(c.ids),
                        "finish_reason": c.finish_reason,
                        **s,
                    }
                )
        bar.update(len(chunk))
    bar.close()
    return summarize(records), records


def summarize(records: list[dict]) -> dict[str, float]:
    n = len(records)
    graded = [r for r in records if r.get("correct") is not None]
    out: dict[str, Any] = {
        "n": n,
        "mean_response_tokens": sum(r["response_tokens"] for r in records) / max(n, 1),
        "accuracy": None,
        "format_error_rate": None,
    }
    if graded:
        out["accuracy"] = sum(bool(r["correct"]) for r in graded) / len(graded)
        out["format_error_rate"] = sum(bool(r["format_error"]) for r in graded) / len(graded)
    return out


def category(record: dict) -> str:
    """``correct``, ``wrong_answer``, ``format_error`` or ``ungraded``."""
    if record.get("correct") is None:
        return "ungraded"
    if record["correct"]:
        return "correct"
    return "format_error" if record.get("format_error") else "wrong_answer"
