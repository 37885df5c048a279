"""Masking personal information: e-mail addresses, phone numbers and IPv4 addresses.

Each function returns (masked text, number of replacements). The patterns are anchored on
both sides so that parts of longer tokens (version numbers, dates, prices, ids) are left
alone; see tests/test_pii.py for what is and is not masked."""

from __future__ import annotations

import re

EMAIL_TOKEN = "|||EMAIL_ADDRESS|||"
PHONE_TOKEN = "|||PHONE_NUMBER|||"
IP_TOKEN = "|||IP_ADDRESS|||"

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]*[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}(?![\w-])"
)

_SEP = r"[ .-]?"
# North American numbers: optional +1/1, area code with or without parentheses, 3 + 4
# digits, one separator style per gap; a bare 10-digit run counts too.
_US = rf"(?:\+?1{_SEP})?(?:\(\d{{3}}\)|\d{{3}}){_SEP}\d{{3}}{_SEP}\d{{4}}"
# International: + country code, then 2-5 groups of digits (the first maybe in
# parentheses); the digit count is checked in _phone_ok (E.164 allows 8-15).
_INTL = r"\+[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){2,5}"
_PHONE = re.compile(rf"(?<![\w+$€£.,/:-])(?:{_INTL}|{_US})(?![\w$€£%/:-]|[.,]\d)")

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.-]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w-]|\.\d)")


def mask_emails(text: str) -> tuple[str, int]:
    return _EMAIL.subn(EMAIL_TOKEN, text)


def _phone_ok(match: re.Match) -> str:
    digits = sum(c.isdigit() for c in match.group())
    return PHONE_TOKEN if 10 <= digits <= 15 else match.group()


def mask_phone_numbers(text: str) -> tuple[str, int]:
    count = 0

    def replace(match: re.Match) -> str:
        nonlocal count
        out = _phone_ok(match)
        count += out is PHONE_TOKEN
        return out

    return _PHONE.sub(replace, text), count


def mask_ips(text: str) -> tuple[str, int]:
    return _IPV4.subn(IP_TOKEN, text)
