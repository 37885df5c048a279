"""A generated task with a checkable answer: multi-step arithmetic word problems.

``make_problems(n, seed)`` gives problems whose answers are exact integers, each with a
worked solution in the ``r1_zero`` format (`` reasoning </think> <answer> N </answer>``),
so the whole SFT -> GRPO loop can run and be graded with no downloads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = ("Ann", "Ben", "Cai", "Dee", "Eli", "Fay", "Gus", "Ivy", "Jo", "Kim", "Lu", "Max")
ITEMS = ("apples", "pens", "coins", "books", "cards", "eggs", "stamps", "shells")
# (sentence template, operator); {k} is the operand
STEPS = (
    ("buys {k} more", "+"),
    ("finds {k} more", "+"),
    ("gives away {k}", "-"),
    ("loses {k}", "-"),
    ("doubles them", "*2"),
)


@dataclass(frozen=True)
class Problem:
    question: str
    solution: str  # the worked reasoning, ending in the answer tags
    answer: str

    def to_json(self) -> dict[str, str]:
        return {"question": self.question, "solution": self.solution, "answer": self.answer}


def make_problem(rng: random.Random, steps: int) -> Problem:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    value = rng.randint(2, 20)
    sentences = [f"{name} has {value} {item}."]
    work = []
    for _ in range(steps):
        template, op = rng.choice(STEPS)
        if (op == "-" and value < 2) or (op == "*2" and value > 40):
            template, op = "buys {k} more", "+"
        k = 2 if op == "*2" else rng.randint(1, value - 1 if op == "-" else 15)
        new = value + k if op == "+" else value - k if op == "-" else value * 2
        sym = "*" if op == "*2" else op
        work.append(f"{value}{sym}{k}={new}.")
        sentences.append(f"Then {name} {template.format(k=k)}.")
        value = new
    sentences.append(f"How many {item} does {name} have?")
    solution = f" {' '.join(work)} </think> <answer> {value} </answer>"
    return Problem(" ".join(sentences), solution, str(value))


def make_problems(n: int, seed: int, min_steps: int = 1, max_steps: int = 3) -> list[Problem]:
    """``n`` problems of ``min_steps``..``max_steps`` operations, reproducible from ``seed``."""
    rng = random.Random(seed)
    return [make_problem(rng, rng.randint(min_steps, max_steps)) for _ in range(n)]


def task_prompt(question: str) -> str:
    """The compact r1-style prompt the demo model sees (the response continues it)."""
    return f"User: {question}\nAssistant: <think>"
