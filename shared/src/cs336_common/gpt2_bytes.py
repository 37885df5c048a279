"""GPT-2's byte <-> printable-character table, used by its vocab.json and merges.txt.

Every byte maps to one printable character (bytes that are already printable and not
a space map to themselves; the other 68 are shifted to U+0100 and up), so a byte string
becomes a string with no whitespace or control characters, e.g. b" the" -> "Ġthe"."""

from __future__ import annotations

import functools

from cs336_common.errors import InputError


@functools.cache
def byte_to_char() -> dict[int, str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in table)
    for n, b in enumerate(shifted):
        table[b] = chr(256 + n)
    return table


@functools.cache
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


def bytes_to_str(token: bytes) -> str:
    table = byte_to_char()
    return "".join(table[b] for b in token)


def str_to_bytes(text: str, *, where: str = "token") -> bytes:
    table = char_to_byte()
    try:
        return bytes(table[c] for c in text)
    except KeyError as e:
        raise InputError(
            f"{where}: {text!r} has {e.args[0]!r}, which is not a GPT-2 byte character"
        ) from None
