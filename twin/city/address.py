"""The standard address base: one normal form for matching addresses typed by people.

Matching must not depend on how an address was typed: full-width or half-width characters,
spaces, traditional characters for "number", Chinese numerals or "No." prefixes in the house
number. :func:`normalize` maps every such variant to one key.
"""

from __future__ import annotations

import re
import unicodedata

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,  # noqa: RUF001
           "七": 7, "八": 8, "九": 9}  # fmt: skip
_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千]+(?=号)")
_NO_PREFIX = re.compile(r"(?:no\.?|#)(\d+)号?(?!\d)")


def chinese_to_int(text: str) -> int:
    """'一百二十八' -> 128, '十五' -> 15, '二〇八' -> 208 (digit by digit when no units)."""
    if not any(ch in _UNITS for ch in text):
        return int("".join(str(_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        else:
            total += (current or 1) * _UNITS[ch]
            current = 0
    return total + current


def normalize(text: str) -> str:
    """The lookup key of an address.

    NFKC (full-width -> half-width), lowercase, no whitespace, 號 -> 号, dash variants -> '-',
    Chinese numerals before 号 -> digits, 'No.12'/'#12' -> '12号', a bare trailing number -> '号'.
    """
    s = normalize_name(text)
    if re.search(r"\d$", s):  # a bare trailing house number: '人民路128' -> '人民路128号'
        s += "号"
    return s


def normalize_name(text: str) -> str:
    """:func:`normalize` without the trailing-number rule: for a road name, whose normal form
    followed by '<n>号' is the normal form of '<name><n>号' (unless the name ends in 'No'
    or '#', see :func:`composes`)."""
    s = unicodedata.normalize("NFKC", text).lower()
    s = "".join(s.split())
    s = s.replace("號", "号").replace("—", "-").replace("–", "-").replace("－", "-")  # noqa: RUF001
    s = _CN_NUMBER.sub(lambda m: str(chinese_to_int(m.group(0))), s)
    return _NO_PREFIX.sub(lambda m: f"{m.group(1)}号", s)


def composes(name_key: str) -> bool:
    """Whether ``normalize(name + f"{n}号") == name_key + f"{n}号"`` for the name's key."""
    # A trailing 'No'/'#' would swallow the number; a trailing 号 means the name itself held a
    # house-number form that normalisation already rewrote.
    return not name_key.endswith(("no", "no.", "#", "号"))
