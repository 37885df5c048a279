"""Test helpers are imported as `packages.data.tests.<module>` (pytest's importlib mode
names test modules so; it does not put the repository root on sys.path, so we do)."""

import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
