"""Number and fraction words in English, romanized Nepali and Devanagari."""

from __future__ import annotations

import re


def _words(table: dict[float, str]) -> dict[str, float]:
    return {word: value for value, words in table.items() for word in words.split()}


NUMBER_WORDS = _words({
    1: "one ek euta eauta yauta ekta एक एउटा",
    2: "two dui duita duwi duvita दुई दुइ दुईटा",
    3: "three tin teen tinta तीन तिन",
    4: "four char chaar charta चार",
    5: "five panch paanch panchta पाँच पाच",
    6: "six chha chhaita छ",
    7: "seven saat सात",
    8: "eight aath आठ",
    9: "nine nau नौ",
    10: "ten das dus दस",
    11: "eleven egara eghara एघार",
    12: "twelve barha bahra बाह्र",
    13: "thirteen tera terha तेह्र",
    14: "fourteen chaudha चौध",
    15: "fifteen pandhra pandra पन्ध्र",
    16: "sixteen sorha सोह्र",
    17: "seventeen satra सत्र",
    18: "eighteen athara athaara अठार",
    19: "nineteen unnais उन्नाइस",
    20: "twenty bis bees बीस",
    21: "ekkais एक्काइस",
    22: "bais baais बाइस",
    24: "chaubis चौबीस",
    25: "pachis pachchis pacchis पच्चीस",
    30: "thirty tis tees तीस",
    35: "paitis पैंतीस",
    40: "forty chalis chaalis चालीस",
    50: "fifty pachas pachaas पचास",
    60: "sixty saathi साठी",
})  # fmt: skip
HUNDREDS = frozenset({"hundred", "sau", "saya", "sae", "सय"})  # "paanch sau gram" is 500 g

# Alone before a unit: "aadha kg", "dedh kg", "dhai litre", "sawa kg" (1¼), "paune kg" (¾).
FRACTION_WORDS = _words({
    0.5: "half aadha adha aadhaa aadho आधा",
    1.5: "dedh derh deddh डेढ",
    2.5: "dhai adhai arhai adhaai अढाई",
    1.25: "sawa sawaa सवा",
    0.75: "paune पौने",
})  # fmt: skip

# Before a number: "saadhe 3" is 3½, "sawa 2" is 2¼, "paune 2" is 1¾.
NUMBER_MODIFIERS = _words({0.5: "sadhe saadhe sarhe साढे", 0.25: "sawa sawaa सवा", -0.25: "paune पौने"})

# A counter glued to a number word: "duita", "tinwata", "दुईवटा".
_COUNTER_SUFFIXES = ("wota", "wata", "vota", "ota", "ta", "वटा", "ओटा", "टा")


def word_number(token: str) -> tuple[float, bool] | None:
    """The value of a number word and whether a counter ("-ta", "-वटा") was glued to it."""
    if token in NUMBER_WORDS:
        return NUMBER_WORDS[token], token.endswith(("ta", "टा"))
    for suffix in _COUNTER_SUFFIXES:
        stem = token[: -len(suffix)]
        if token.endswith(suffix) and stem in NUMBER_WORDS:
            return NUMBER_WORDS[stem], True
    return None


ASCII_DIGITS = str.maketrans("०१२३४५६७८९", "0123456789")  # Devanagari digits as ASCII

# Numbers that are not quantities, removed from a line before it is read. Order and bill references:
# "order #1234", "order no. 23", "#12".
_REFERENCE = re.compile(
    r"\b(order|invoice|bill|ref)\s*(?:no\b|number|num\b)?\s*[.:#-]?\s*\d+|#\s*\d+", re.IGNORECASE
)
# Clock times: "5 baje", "10:30", "5 pm", "८ बजे".
_TIME = re.compile(
    r"(?<![\d.])\d{1,2}(?:[:.]\d{2})?\s*(?:baje|bajey|bje|बजे|am|pm|a\.m\.?|p\.m\.?)(?![a-z])"
    r"|(?<![\d.])\d{1,2}:\d{2}(?!\d)",
    re.IGNORECASE,
)
# Nepali mobile and landline numbers, with or without +977 and separators: "98412-34567", "01-4412345".
_PHONE = re.compile(r"(?<![\d.])(?:\+?977[\s-]?)?(?:9[678]\d(?:[\s-]?\d){7}|0\d{1,2}[\s-]\d{6,7})(?!\d)")
# Prices written "@ 110" or "110/-".
_PRICE = re.compile(r"@\s*(?:rs\.?\s*)?\d+(?:\.\d+)?(?:\s*/-)?|\d+(?:\.\d+)?\s*/-", re.IGNORECASE)


def has_time(text: str) -> bool:
    """Whether the text names a clock time ("3 baje", "10:30")."""
    return _TIME.search(text.translate(ASCII_DIGITS)) is not None


def strip_non_quantities(text: str) -> str:
    """The text without order references, clock times, phone numbers and written prices."""
    text = text.translate(ASCII_DIGITS)
    text = _REFERENCE.sub(lambda match: f" {match.group(1) or ''} ", text)
    for pattern in (_TIME, _PHONE, _PRICE):
        text = pattern.sub(" ", text)
    return text
