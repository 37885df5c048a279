"""Training inputs for the loops, from a JSONL file or the generated arithmetic task:
questions with answers (GRPO, expert iteration, evaluation), (prompt, response) pairs
(SFT) and preference pairs (DPO). Questions become ``r1_zero`` prompts."""

from __future__ import annotations

from pathlib import Path

from cs336_alignment.jsonl import read_jsonl
from cs336_alignment.prompt_templates import load_prompt
from cs336_common.errors import InputError


def _rows(path: str | Path) -> list[dict]:
    try:
        return read_jsonl(path)
    except ValueError as e:
        raise InputError(str(e)) from None


# fields that are text (an answer or ground truth may also be a number)
_TEXT_FIELDS = ("prompt", "response", "chosen", "rejected", "question")


def _require(rows: list[dict], path, *options: tuple[str, ...]) -> None:
    for n, row in enumerate(rows, 1):
        keys = next((keys for keys in options if all(k in row for k in keys)), None)
        if keys is None:
            want = " or ".join("+".join(keys) for keys in options)
            raise InputError(f"{path}: example {n} needs fields {want}")
        for k in keys:
            if k in _TEXT_FIELDS and not isinstance(row[k], str):
                raise InputError(
                    f"{path}: example {n}: {k!r} must be a string, got {type(row[k]).__name__}"
                )


def questions(path: str | Path | None, task: str | None, n: int, seed: int) -> list[dict]:
    """``{"prompt", "ground_truth"}`` rows. From ``path``: ``question`` + ``answer``
    (GSM8K: the number after ``####``) or ``prompt`` + ``ground_truth``."""
    if path is None:
        return _arithmetic(n, seed, with_response=False)
    rows = _rows(path)
    _require(rows, path, ("question", "answer"), ("prompt", "ground_truth"))
    template = load_prompt("r1_zero")
    out = []
    for r in rows:
        if "prompt" in r:
            out.append({"prompt": r["prompt"], "ground_truth": r["ground_truth"]})
        else:
            truth = str(r["answer"]).split("####")[-1].strip().replace(",", "")
            out.append({"prompt": template.format(question=r["question"]), "ground_truth": truth})
    return out


def sft_examples(path: str | Path | None, n: int, seed: int) -> list[dict]:
    """``{"prompt", "response"}`` rows (the response continues the prompt)."""
    if path is None:
        return _arithmetic(n, seed, with_response=True)
    rows = _rows(path)
    _require(rows, path, ("prompt", "response"))
    return rows


def preference_pairs(path: str | Path) -> list[dict]:
    rows = _rows(path)
    _require(rows, path, ("prompt", "chosen", "rejected"))
    return rows


def _arithmetic(n: int, seed: int, with_response: bool) -> list[dict]:
    from cs336_alignment.arithmetic import make_problems, task_prompt

    out = []
    for p in make_problems(n, seed):
        row = {"prompt": task_prompt(p.question), "ground_truth": p.answer}
        if with_response:
            row["response"] = p.solution
        out.append(row)
    return out
