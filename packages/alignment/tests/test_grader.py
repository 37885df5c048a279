import pytest

from cs336_alignment import r1_zero_reward_fn
from cs336_alignment.grader import grade, last_boxed, normalize_answer

EQUAL = [
    ("0.5", "\\frac{1}{2}"),
    ("\\frac12", "1/2"),
    ("\\dfrac{3}{4}", "0.75"),
    ("-\\frac{1}{3}", "-1/3"),
    ("\\sqrt2", "\\sqrt{2}"),
    ("2\\sqrt{3}", "\\sqrt{12}"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"),
    ("x = 5", "5"),
    ("10\\%", "10"),
    ("1,000,000", "1000000"),
    ("$42$", "42"),
    ("42.", "42"),
    ("042", "42"),
    ("30^\\circ", "30"),
    ("5 \\text{ cm}", "5"),
    ("12 dollars", "12"),
    ("\\text{(C)}", "C"),
    ("(c)", "C"),
    ("(1, 2)", "(1,2)"),
    ("\\left( 3, \\frac{1}{2} \\right)", "(3, 0.5)"),
    ("[-1, 4)", "[-1,4)"),
    ("\\{1,2,3\\}", "\\{3,1,2\\}"),
    ("x^2+2x+1", "(x+1)^2"),
    ("\\pi/2", "\\frac{\\pi}{2}"),
    ("2\\pi", "\\pi \\cdot 2"),
    ("1e3", "1000"),
    ("\\sqrt[3]{8}", "2"),
    ("\\infty", "\\infty"),
    ("\\text{Monday}", "Monday"),
    ("−7", "-7"),
    ("2\\frac{1}{2}", "2.5"),  # a mixed number, as MATH writes them
    ("-1\\frac{1}{3}", "-4/3"),
    ("\\frac{1}{2}x", "\\frac{x}{2}"),
]
UNEQUAL = [
    ("1/2", "0.49"),
    ("\\sqrt{2}", "1.414"),
    ("(1,2)", "[1,2]"),
    ("(1,2)", "(2,1)"),
    ("\\{1,2\\}", "\\{1,3\\}"),
    ("x", "y"),
    ("2", "-2"),
    ("x^2", "2x"),
    ("(1,2,3)", "(1,2)"),
    ("Tuesday", "Monday"),
    ("", "0"),
    ("10", "100"),
    ("\\frac{1}{0}", "1"),
    ("2\\frac{1}{2}", "1"),
    ("0.333", "\\frac{1}{3}"),
]


@pytest.mark.parametrize("given,truth", EQUAL)
def test_equal_answers(given, truth):
    assert grade(given, truth)
    assert grade(truth, given)


@pytest.mark.parametrize("given,truth", UNEQUAL)
def test_unequal_answers(given, truth):
    assert not grade(given, truth)
    assert not grade(given, truth, fast=False)


def test_slow_mode_needs_real_algebra():
    # (x^2 - 1)/(x - 1) = x + 1 needs cancellation, which only fast=False runs
    assert not grade("\\frac{x^2-1}{x-1}", "x+1", fast=True)
    assert grade("\\frac{x^2-1}{x-1}", "x+1", fast=False)
    assert not grade("\\frac{x^2-1}{x-1}", "x-1", fast=False)


def test_untrusted_answers_never_reach_eval():
    for evil in ("__import__('os').system('echo hi')", "2**10**10", "9" * 500, "lambda: 1"):
        assert not grade(evil, "1")


def test_boxed_extraction_balances_braces():
    assert last_boxed("so \\boxed{1} then \\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert last_boxed("no box") is None
    assert normalize_answer("\\boxed") == "\\boxed"


@pytest.mark.parametrize(
    "response,truth,want",
    [
        ("2 + 2 = 4 </think> <answer> 4 </answer>", "4", (1, 1, 1)),
        ("easy </think> <answer>\\boxed{\\frac{1}{2}}</answer>", "0.5", (1, 1, 1)),
        ("hmm </think> <answer> 5 </answer>", "4", (1, 0, 0)),
        ("hmm </think><answer> 4 </answer>", "4", (0, 0, 0)),  # the format wants a space
        ("4", "4", (0, 0, 0)),
        ("x </think> <answer> 4", "4", (0, 0, 0)),
        ("x </think> <answer> 7 </answer>", ["8", "7"], (1, 1, 1)),
        ("x </think> <answer> 7 </answer>", 7, (1, 1, 1)),
    ],
)
def test_r1_zero_reward_fn(response, truth, want):
    got = r1_zero_reward_fn(response, truth)
    assert (got["format_reward"], got["answer_reward"], got["reward"]) == want
