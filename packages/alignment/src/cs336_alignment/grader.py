"""A math answer grader: the ``r1_zero`` format reward and an answer reward that accepts
mathematically equal answers written differently (``0.5`` = ``\\frac{1}{2}`` = ``1/2``,
``\\sqrt2`` = ``\\sqrt{2}``, ``x = 5`` = ``5``, ``10\\%`` = ``10``, ``(1, 2)`` = ``(1,2)``).

The answer is compared in stages, cheapest first: normalised strings, numbers, then
sympy on expressions translated from LaTeX. ``fast=False`` adds ``sympy.simplify`` and
checks at random points, for answers that only agree after real algebra.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

_ZERO = {"format_reward": 0.0, "answer_reward": 0.0, "reward": 0.0}
# model output is untrusted: sympy's parser evaluates Python, so only this alphabet and
# a bounded length reach it, and huge exponents (2**10**9) are refused before parsing
_SAFE_EXPR = re.compile(r"^[0-9a-zA-Z_+\-*/().,\s]*$")
_MAX_EXPR = 200
_FUNCTIONS = ("sqrt", "log", "ln", "exp", "sin", "cos", "tan", "pi", "oo", "E", "I")


def r1_zero_reward_fn(response: str, ground_truth: Any, fast: bool = True) -> dict[str, float]:
    """``{"format_reward", "answer_reward", "reward"}`` for a response to the ``r1_zero``
    prompt (which ends in ``<think>``): the format needs ``</think> <answer>`` and then
    ``</answer>``; the answer inside is graded against ``ground_truth`` (a string, a
    number, or a list of acceptable answers)."""
    if "</think> <answer>" not in response or "</answer>" not in response:
        return dict(_ZERO)
    answer = response.split("<answer>")[-1]
    answer = answer[: answer.index("</answer>")] if "</answer>" in answer else answer
    boxed = last_boxed(answer)
    if boxed is not None:
        answer = boxed
    truths = ground_truth if isinstance(ground_truth, list | tuple) else [ground_truth]
    correct = any(grade(answer, str(t), fast=fast) for t in truths)
    return {"format_reward": 1.0, "answer_reward": float(correct), "reward": float(correct)}


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        rest = text[start + len("\\boxed") :].strip()
        return rest.split("$")[0].strip() or None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def grade(given: str, truth: str, fast: bool = True) -> bool:
    """Whether answer ``given`` equals ``truth`` (see the module docstring)."""
    a, b = normalize_answer(given), normalize_answer(truth)
    if not a or not b:
        return False
    if a == b:
        return True
    a_items, b_items = _split_items(a), _split_items(b)
    if len(a_items) != len(b_items) or (len(a_items) > 1 and _brackets(a) != _brackets(b)):
        return False
    if len(a_items) > 1 and _brackets(b) == ("\\{", "\\}"):
        # sets: order does not matter
        return _match_unordered(a_items, b_items, fast)
    return all(_equal_item(x, y, fast) for x, y in zip(a_items, b_items, strict=True))


def _match_unordered(a_items: list[str], b_items: list[str], fast: bool) -> bool:
    left = list(b_items)
    for x in a_items:
        hit = next((y for y in left if _equal_item(x, y, fast)), None)
        if hit is None:
            return False
        left.remove(hit)
    return True


def _equal_item(a: str, b: str, fast: bool) -> bool:
    if a == b:
        return True
    x, y = to_number(a), to_number(b)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
    return _sympy_equal(a, b, fast)


# ---- normalisation ---------------------------------------------------------------------

_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_UNITS = (
    "degrees", "degree", "units", "unit", "cm", "meters", "meter", "inches", "inch", "feet",
    "foot", "miles", "mile", "hours", "hour", "minutes", "minute", "seconds", "second",
    "dollars", "dollar", "cents", "cent", "square", "sq", "mph", "km", "kg", "pounds",
)  # fmt: skip
_UNIT_RE = re.compile(r"(?<=[\d}\s])\s*(?:" + "|".join(_UNITS) + r")(?:\^?\{?[23]\}?)?\s*$")


def normalize_answer(s: str) -> str:
    """A canonical string: LaTeX spacing, ``\\left``, ``\\dfrac``, ``\\text{}``, units,
    ``$``, ``^\\circ``, ``\\%``, thousands commas and a leading ``x =`` removed;
    ``\\frac12`` -> ``\\frac{1}{2}``, ``\\sqrt2`` -> ``\\sqrt{2}``."""
    s = str(s).strip().replace("\n", " ").replace("−", "-").replace("\u00a0", " ")
    s = s.strip("$").strip()
    for old, new in (
        ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\:", ""), ("\\ ", " "), ("\\quad", " "),
        ("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"),
        ("\\displaystyle", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\circ", ""),
        ("\\%", ""), ("%", ""), ("\\$", ""),
    ):  # fmt: skip
        s = s.replace(old, new)
    prev = None
    while prev != s:
        prev, s = s, _TEXT_CMD.sub(r"\1", s)
    s = _UNIT_RE.sub("", s).strip()
    # "x = 5" -> "5", but not "x + y = 5" style equations or "a=1, b=2"
    m = re.fullmatch(r"\s*[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(.+)", s)
    if m and "=" not in m.group(1):
        s = m.group(1)
    s = re.sub(r"(\d),(?=\d{3}(?!\d))", r"\1", s)  # 1,000,000 -> 1000000
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*\{([^{}]*)\}\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\sqrt\s*(\w)", r"\\sqrt{\1}", s)
    s = s.replace(" ", "").rstrip(".")
    s = re.sub(r"^0+(?=\d)", "", s)
    if s.startswith(".") and s[1:].isdigit():
        s = "0" + s
    if re.fullmatch(r"\(?[A-Ea-e]\)?", s):  # multiple choice "(C)" -> "C"
        s = s.strip("()").upper()
    return s


def _brackets(s: str) -> tuple[str, str]:
    if s.startswith("\\{") and s.endswith("\\}"):
        return "\\{", "\\}"
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        return s[0], s[-1]
    return "", ""


def _split_items(s: str) -> list[str]:
    """Top-level comma-separated items of a tuple, interval, set or list."""
    left, right = _brackets(s)
    inner = s[len(left) : len(s) - len(right)] if left else s
    items, depth, cur = [], 0, ""
    for ch in inner:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return items if len(items) > 1 or not left or left == "\\{" else [s]


# ---- numbers and sympy -------------------------------------------------------------------


def to_number(s: str) -> float | None:
    """``12``, ``-3.5``, ``1e-3``, ``3/4``, ``\\frac{3}{4}``, ``-\\frac{3}{4}`` and mixed
    numbers (``2\\frac{1}{2}``, as MATH writes them) -> float."""
    s = s.strip()
    try:
        return float(s)
    except ValueError:
        pass
    mixed = re.fullmatch(r"(-?)(\d+)\\frac\{(\d+)\}\{(\d+)\}", s)  # 2\frac{1}{2} = 2.5
    if mixed and int(mixed.group(4)):
        sign, whole, num, den = mixed.groups()
        value = int(whole) + int(num) / int(den)
        return -value if sign else value
    m = re.fullmatch(r"(-?)(?:\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}|(-?[\d.]+)/(-?[\d.]+))", s)
    if not m:
        return None
    num, den = (m.group(2), m.group(3)) if m.group(2) else (m.group(4), m.group(5))
    try:
        value = float(num) / float(den)
    except (ValueError, ZeroDivisionError):
        return None
    return -value if m.group(1) else value


def latex_to_expr(s: str) -> str:
    """Translate common LaTeX math into sympy's input syntax (None-safe subset)."""
    prev = None
    while prev != s:
        prev = s
        s = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        s = re.sub(r"\\sqrt\[([^\]]*)\]\{([^{}]*)\}", r"((\2)**(1/(\1)))", s)
        s = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", s)
        s = re.sub(r"\^\{([^{}]*)\}", r"**(\1)", s)
    s = re.sub(r"\^(\w)", r"**\1", s)
    for old, new in (
        ("\\cdot", "*"), ("\\times", "*"), ("\\div", "/"), ("\\pi", "pi"), ("\\infty", "oo"),
        ("\\ln", "log"), ("\\log", "log"), ("\\exp", "exp"), ("\\sin", "sin"),
        ("\\cos", "cos"), ("\\tan", "tan"), ("{", "("), ("}", ")"),
    ):  # fmt: skip
        s = s.replace(old, new)
    if "\\" in s:
        s = _latex_to_text(s)
    return s


def _latex_to_text(s: str) -> str:
    """Remaining macros through pylatexenc (e.g. Greek letters), when it is installed."""
    try:
        from pylatexenc.latex2text import LatexNodes2Text
    except ImportError:
        return s
    return LatexNodes2Text().latex_to_text(s)


def _parse(s: str):
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    expr = latex_to_expr(s)
    if len(expr) > _MAX_EXPR or not _SAFE_EXPR.match(expr):
        return None
    if re.search(r"\*\*\s*\(?\s*\d{3,}|\*\*[^*]*\*\*", expr):
        return None
    words = set(re.findall(r"[a-zA-Z_]{2,}", expr)) - set(_FUNCTIONS)
    if words:  # multi-letter names other than known functions: text, not math
        return None
    transforms = (*standard_transformations, implicit_multiplication_application, convert_xor)
    local = {"ln": sympy.log, "E": sympy.E, "I": sympy.I}
    try:
        return parse_expr(expr, transformations=transforms, local_dict=local)
    except Exception:  # sympy raises many kinds on malformed input
        return None


def _sympy_equal(a: str, b: str, fast: bool) -> bool:
    import sympy

    x, y = _parse(a), _parse(b)
    if x is None or y is None:
        return False
    try:
        diff = sympy.expand(x - y)
        if diff == 0:
            return True
        if not diff.free_symbols:
            return abs(complex(sympy.N(diff))) < 1e-9 * max(1.0, abs(complex(sympy.N(y))))
        if fast:
            return False
        if sympy.simplify(diff) == 0:
            return True
        return _equal_at_random_points(diff)
    except Exception:  # sympy may fail to evaluate; unequal is the safe answer
        return False


def _equal_at_random_points(diff) -> bool:
    rng = random.Random(0)
    symbols = sorted(diff.free_symbols, key=str)
    for _ in range(5):
        point = {s: rng.uniform(0.5, 2.0) for s in symbols}
        value = complex(diff.evalf(subs=point))
        if abs(value) > 1e-8:
            return False
    return True
