"""Let ranks spawned by distributed tests import test modules by name.

With ``--import-mode=importlib`` pytest imports ``tests/test_x.py`` as
``packages.systems.tests.test_x`` without putting the repository root on ``sys.path``;
a spawned rank unpickles its worker function by that name, so it needs the root too
(spawned processes inherit the parent's ``sys.path``).
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)
