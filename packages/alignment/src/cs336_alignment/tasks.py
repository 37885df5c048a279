"""Evaluation tasks: where the examples come from, how a prompt is built and how a
response is scored. Each example is ``{"prompt", "ground_truth", ...}``; scoring gives
``{"correct", "format_error", "parsed"}`` (None for the open-ended sets, which are judged
elsewhere: AlpacaEval by its annotator, SimpleSafetyTests by a safety judge)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cs336_alignment.grader import last_boxed, r1_zero_reward_fn
from cs336_alignment.parsing import parse_gsm8k_response, parse_mmlu_response
from cs336_alignment.prompt_templates import PROMPT_NAMES, alpaca_prompt, load_prompt
from cs336_common.checks import parse_jsonl
from cs336_common.errors import InputError

MMLU_INSTRUCTION = (
    "Answer the following multiple choice question about {subject}. Respond with a single "
    'sentence of the form "The correct answer is _", filling the blank with the letter '
    "corresponding to the correct answer (i.e., A, B, C or D).\n\n"
    "Question: {question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"
)


def _packaged(name: str) -> bytes:
    data = (resources.files("cs336_alignment") / "data" / name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


def _read_rows(path: str | Path | None, packaged: str | None, task: str) -> list[dict]:
    if path is None:
        if packaged is None:
            raise InputError(f"task {task!r} ships no data: pass --data PATH")
        name, raw, where = packaged, _packaged(packaged), f"<packaged {packaged}>"
    else:
        path = Path(path)
        name, raw, where = path.name, path.read_bytes(), str(path)
        if name.endswith(".gz"):
            raw = gzip.decompress(raw)
    name = name.removesuffix(".gz")
    if name.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(_utf8(raw, where))))
    elif name.endswith(".json"):
        try:
            rows = json.loads(_utf8(raw, where))
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: malformed JSON ({e.msg})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise InputError(f"{where}: expected a JSON list of objects")
    else:
        rows = parse_jsonl(raw, where)
    if not rows:
        raise InputError(f"{where}: no examples (the file is empty)")
    return rows


def _utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _need(rows: list[dict], fields: tuple[str, ...], task: str) -> None:
    for n, row in enumerate(rows, 1):
        missing = [f for f in fields if f not in row]
        if missing:
            raise InputError(f"{task} data: example {n} lacks field(s) {', '.join(missing)}")


def _question_prompt(question: str, prompt: str) -> str:
    """``question`` in the template ``prompt``: its question slot, or the instruction
    slot of the instruction-following templates."""
    if prompt == "alpaca_sft":
        return alpaca_prompt(question)
    template = load_prompt(prompt)
    if "{instruction}" in template:
        return template.format(instruction=question)
    return template.format(question=question)


def math_score(prompt: str):
    def score(response: str, ex: dict) -> dict:
        if prompt == "r1_zero":
            r = r1_zero_reward_fn(response, ex["ground_truth"])
            return {"correct": r["answer_reward"] == 1, "format_error": r["format_reward"] == 0}
        parsed = last_boxed(response) or parse_gsm8k_response(response)
        ok = (
            parsed is not None
            and r1_zero_reward_fn(f"</think> <answer>{parsed}</answer>", ex["ground_truth"])[
                "reward"
            ]
            == 1
        )
        return {"correct": ok, "format_error": parsed is None, "parsed": parsed}

    return score


def gsm8k(path, prompt: str) -> list[dict]:
    rows = _read_rows(path, "gsm8k_test.jsonl.gz", "gsm8k")
    _need(rows, ("question", "answer"), "gsm8k")
    return [
        {
            "prompt": _question_prompt(r["question"], prompt),
            "ground_truth": str(r["answer"]).split("####")[-1].strip().replace(",", ""),
        }
        for r in rows
    ]


def math(path, prompt: str) -> list[dict]:
    rows = _read_rows(path, None, "math")
    out = []
    for n, r in enumerate(rows, 1):
        truth = r.get("answer") or last_boxed(r.get("solution", ""))
        if "problem" not in r or truth is None:
            raise InputError(
                f"math data: example {n} needs 'problem' and 'answer' (or a solution with \\boxed{{}})"
            )
        out.append({"prompt": _question_prompt(r["problem"], prompt), "ground_truth": truth})
    return out


def mmlu(path, prompt: str) -> list[dict]:
    rows = _read_rows(path, "mmlu_test.jsonl.gz", "mmlu")
    _need(rows, ("subject", "question", "options", "answer"), "mmlu")
    system = load_prompt("zero_shot_system_prompt")
    out = []
    for n, r in enumerate(rows, 1):
        if not isinstance(r["options"], list) or len(r["options"]) != 4:
            raise InputError(f"mmlu data: example {n}: 'options' must be a list of 4 choices")
        a, b, c, d = r["options"]
        subject = r["subject"].replace("_", " ")
        q = MMLU_INSTRUCTION.format(subject=subject, question=r["question"], a=a, b=b, c=c, d=d)
        out.append(
            {"prompt": system.format(instruction=q), "ground_truth": r["answer"], "example": r}
        )
    return out


def _mmlu_score(response: str, ex: dict) -> dict:
    parsed = parse_mmlu_response(ex["example"], response)
    return {
        "correct": parsed == ex["ground_truth"],
        "format_error": parsed is None,
        "parsed": parsed,
    }


def alpaca_eval(path, prompt: str) -> list[dict]:
    rows = _read_rows(path, None, "alpaca_eval")
    _need(rows, ("instruction",), "alpaca_eval")
    system = load_prompt("zero_shot_system_prompt")
    return [
        {"prompt": system.format(instruction=r["instruction"]), "ground_truth": None, "example": r}
        for r in rows
    ]


def sst(path, prompt: str) -> list[dict]:
    rows = _read_rows(path, "simple_safety_tests.csv", "sst")
    _need(rows, ("prompts_final",), "sst")
    system = load_prompt("zero_shot_system_prompt")
    return [
        {
            "prompt": system.format(instruction=r["prompts_final"]),
            "ground_truth": None,
            "example": r,
        }
        for r in rows
    ]


def arithmetic(path, prompt: str) -> list[dict]:
    from cs336_alignment.arithmetic import make_problems, task_prompt

    if path is not None:
        rows = _read_rows(path, None, "arithmetic")
        _need(rows, ("question", "answer"), "arithmetic")
    else:
        rows = [p.to_json() for p in make_problems(500, seed=1234)]
    return [{"prompt": task_prompt(r["question"]), "ground_truth": r["answer"]} for r in rows]


def _open_ended(response: str, ex: dict) -> dict:
    return {"correct": None, "format_error": None}


@dataclass(frozen=True)
class Task:
    load: Callable[..., list[dict]]
    score: Callable[[str], Callable[[str, dict], dict]]
    default_prompt: str
    stop: tuple[str, ...]
    prompts: tuple[str, ...] = ()  # the templates --prompt may pick (none: only the default)


TASKS = {
    "gsm8k": Task(gsm8k, math_score, "r1_zero", ("</answer>",), PROMPT_NAMES),
    "math": Task(math, math_score, "r1_zero", ("</answer>",), PROMPT_NAMES),
    "mmlu": Task(mmlu, lambda p: _mmlu_score, "zero_shot_system_prompt", ("# Query:",)),
    "alpaca_eval": Task(
        alpaca_eval, lambda p: _open_ended, "zero_shot_system_prompt", ("# Query:",)
    ),
    "sst": Task(sst, lambda p: _open_ended, "zero_shot_system_prompt", ("# Query:",)),
    "arithmetic": Task(arithmetic, lambda p: math_score("r1_zero"), "r1_zero", ("</answer>",)),
}
