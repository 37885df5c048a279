"""Errors a user can fix. The CLI runner (`cs336_common.cli`) prints them as one line,
``prog: error: <message>``, and exits 1 (2 for `UsageError`), with no traceback;
``--debug`` shows the traceback. Anything else is a bug and keeps its traceback.

Library code raises them with a message that names the file, field or value at fault.
`InputError` is also a `ValueError`, so callers that catch ValueError keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave: a file, a setting, a value, a combination."""


class InputError(UserError, ValueError):
    """A malformed input file or an out-of-range value."""


class UsageError(UserError):
    """A wrong combination of command-line arguments (exit code 2, with the usage)."""
