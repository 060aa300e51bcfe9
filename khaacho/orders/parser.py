"""Turn a shopkeeper's WhatsApp message into order lines (name, quantity, unit); no catalog here."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from khaacho.orders.numbers import (
    ASCII_DIGITS,
    FRACTION_WORDS,
    HUNDREDS,
    NUMBER_MODIFIERS,
    has_time,
    strip_non_quantities,
    word_number,
)
from khaacho.orders.words import (
    CONTAINERS,
    CURRENCY,
    FILLERS,
    LINKERS,
    MEASURED,
    NEGATE_AFTER,
    NEGATE_BEFORE,
    NEGATED_VERBS,
    ONE,
    PRICE_WORDS,
    QUESTION_WORDS,
    TIME_WORDS,
    TIMES,
    TWO_WORD_UNITS,
    UNIT,
)

_TEXT_MARKS = ("Mn", "Mc")
_COUNTED = (None, "piece")
_FRACTION_CHARS = {"½": ".5", "¼": ".25", "¾": ".75"}
_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)?|\.\d+|\d+/\d+)$")
_PHONE_DIGITS = 7

_BULLET = re.compile(r"^[\s\-*•·>#]+")
_NUMBERING = re.compile(r"^\s*\d{1,2}\s*[.)]\s*(?!\d)")
_DASH_NUMBERING = re.compile(r"^\s*\d{1,2}\s*[-:]\s+(?=.*\d)")
_MARKER = re.compile(r"(?:^|(?<=\s))(?:\(\s*\d{1,2}\s*\)|\d{1,2}\)|[a-h]\))(?=\s)", re.IGNORECASE)
# A full stop after a word (not "kg." or "no. 23") ends a sentence.
_SEPARATORS = re.compile(
    r"(?<=\?)|[,;।|+&!]|(?<=[^\W\d_]{3})\.(?=\s)|\s(?:and|ra|र|ani|अनि|n|plus|tara|तर|but)\s", re.IGNORECASE
)


@dataclass(frozen=True)
class ParsedLine:
    """One requested item: the segment as written, the product words, and quantity/unit if given."""

    text: str
    name: str
    quantity: float | None
    unit: str | None
    pack: tuple[float, str] | None = None  # size of each counted item: "oil 1 ltr x 10 pcs" -> (1.0, "litre")


# The worker reads one message several ways (a choice, a typed answer, a repeat, a price question,
# order lines), each from its normalized text: normalized once, not once per reading.
@functools.lru_cache(maxsize=512)
def normalize(text: str) -> str:
    """Lowercase, NFC, ASCII digits, and drop everything but letters, marks, digits and decimal points."""
    text = unicodedata.normalize("NFC", text).lower().translate(ASCII_DIGITS)
    for char, value in _FRACTION_CHARS.items():
        text = text.replace(char, value)
    kept = []
    for char in text:
        category = unicodedata.category(char)
        # Enclosing marks (keycap 1️⃣) and the emoji variation selector are decoration, not text.
        text_char = category[0] in "LN" or category in _TEXT_MARKS or char in "./" or char.isspace()
        if text_char and char != "\ufe0f":
            kept.append(char)
        elif char in "×*":
            kept.append(" x ")
        else:
            kept.append(" ")
    text = "".join(kept)
    text = re.sub(r"\.(?!\d)", " ", text)
    text = re.sub(r"(?<!\d)/|/(?!\d)", " ", text)
    text = re.sub(r"(\d)(?=[^\d\s./])", r"\1 ", text)
    text = re.sub(r"([^\d\s./])(?=\d)", r"\1 ", text)
    return " ".join(text.split())


def _number(token: str) -> float | None:
    if not _NUMBER.match(token):
        return None
    if "/" in token:
        top, bottom = token.split("/")
        return int(top) / int(bottom) if int(bottom) else None
    return float(token)


def _unit_at(tokens: list[str], i: int) -> tuple[str | None, int]:
    """The unit starting at tokens[i] and how many tokens it spans."""
    if i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) in TWO_WORD_UNITS:
        return TWO_WORD_UNITS[(tokens[i], tokens[i + 1])], 2
    if i < len(tokens) and tokens[i] in UNIT:
        return UNIT[tokens[i]], 1
    return None, 0


def _number_at(tokens: list[str], i: int, first: bool) -> tuple[float, int, bool] | None:
    """The number starting at tokens[i]: its value, tokens spanned, and whether it carried a counter."""
    n = len(tokens)
    token, after = tokens[i], tokens[i + 1] if i + 1 < n else ""
    value = _number(token)
    if value is not None:
        if i + 1 < n and "/" in after and _number(after) is not None and "/" not in token:
            return value + _number(after), 2, False  # "1 1/2 kg"
        if after in HUNDREDS:
            return value * 100, 2, False
        return value, 1, False
    unit_next = _unit_at(tokens, i + 1)[0] is not None
    if token in NUMBER_MODIFIERS and i + 1 < n:
        following = _number(after)
        if following is None and word_number(after):
            following = word_number(after)[0]
        if following is not None:
            return following + NUMBER_MODIFIERS[token], 2, False
    spoken = word_number(token)
    if spoken and after in HUNDREDS:
        return spoken[0] * 100, 2, False
    if spoken and (spoken[1] or unit_next or after in TIMES or after in TIME_WORDS or (first and after)):
        return spoken[0], 1, spoken[1]
    if token in FRACTION_WORDS and unit_next:
        return FRACTION_WORDS[token], 1, False
    if token in ONE and unit_next:
        return 1.0, 1, False
    return None


def _negation_at(tokens: list[str], i: int) -> tuple[str, int] | None:
    """("before", span) for "tel chahidaina", ("after", span) for "no tel"; None when not a negation."""
    token, after = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
    if token in NEGATE_BEFORE:
        return "before", 1
    if token == "na" and after.startswith(NEGATED_VERBS):
        return "before", 2  # "na chahine", "na pathaunu"
    if token in NEGATE_AFTER:
        return "after", 1
    return None


def _scan(tokens: list[str]) -> list[tuple[str, Any]]:
    """Classify tokens: quantities ("q", (qty, unit)), words ("w"), fillers ("f"), "x" and negations ("n")."""
    out: list[tuple[str, Any]] = []
    i, n = 0, len(tokens)
    while i < n:
        token = tokens[i]
        first = not any(kind != "f" for kind, _ in out)
        number = _number_at(tokens, i, first)
        if number is not None:
            value, span, counted = number
            before, after = tokens[i - 1] if i else "", tokens[i + span] if i + span < n else ""
            i += span
            if after in TIME_WORDS:  # "paanch baje": a time, not a quantity
                i += 1
                continue
            if after in CURRENCY or before in CURRENCY or len(token.split(".")[0]) >= _PHONE_DIGITS:
                continue
            unit, span = _unit_at(tokens, i)
            i += span
            if unit == "pau":
                value, unit = value * 0.25, "kg"
                i += _unit_at(tokens, i)[0] == "kg"  # "ek pau kilo"
            out.append(("q", (value, unit or ("piece" if counted else None))))
            continue
        negation = _negation_at(tokens, i)
        if negation:
            out.append(("n", negation[0]))
            i += negation[1]
            continue
        unit = UNIT.get(token)
        written_after = _number(tokens[i + 1]) if unit and unit != "pau" and i + 1 < n else None
        if written_after is not None and _unit_at(tokens, i + 2)[0] is None:
            out.append(("q", (written_after, unit)))  # "carton 2", "chini kg 5": the unit before its number
            i += 2
            continue
        if token in TIMES:
            out.append(("x", token))
        elif unit == "dozen":
            out.append(("q", (1.0, "dozen")))
        elif unit == "pau":
            out.append(("q", (0.25, "kg")))
            i += _unit_at(tokens, i + 1)[0] == "kg"
        elif unit in CONTAINERS and _after_measure(out):
            out.append(("q", (1.0, unit)))  # "25 kg ko bora": one sack of 25 kg
        elif token in FILLERS:
            out.append(("f", token))
        else:
            out.append(("w", token))
        i += 1
    return out


def _after_measure(items: list[tuple[str, Any]]) -> bool:
    """Whether the last item, past joining words, is a weight or volume ("25 kg ko ...")."""
    for kind, value in reversed(items):
        if kind == "w" and value in LINKERS:
            continue
        return kind == "q" and len(value) == 2 and value[1] in MEASURED
    return False


def _combine(first: tuple, second: tuple, times: bool) -> tuple | None:
    """One quantity from two written side by side, or None when they are separate items."""
    (a, a_unit), (b, b_unit) = first[:2], second[:2]
    if (a_unit in MEASURED) != (b_unit in MEASURED):
        size, count = (first, second) if a_unit in MEASURED else (second, first)
        if count[1] is not None or times:
            return (count[0], count[1], (size[0], size[1]))
    if times and (a_unit is None or b_unit is None):
        return (a * b, a_unit or b_unit)
    return None


def _merge_adjacent(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Combine "1 ltr x 12", "2 x 5kg" and "1.5 ltr 6 bottle" into one quantity; drop stray "x"."""
    merged: list[tuple[str, Any]] = []
    times = False
    for at, (kind, value) in enumerate(items):
        following = items[at + 1][0] if at + 1 < len(items) else ""
        if kind == "w" and value in LINKERS and merged and merged[-1][0] == "q" and following == "q":
            continue  # "1 litre ko 2 ota", "5 kg ko 4 packet": one quantity
        if kind == "x":
            times = True
            continue
        last = merged[-1][1] if merged and merged[-1][0] == "q" else None
        one_pack = last and len(last) == 3 and last[0] == 1
        if kind == "q" and one_pack and len(value) == 2 and value[1] in _COUNTED:
            merged[-1] = ("q", (value[0], last[1], last[2]))  # "25 kg ko bora 2 ota": two such sacks
            continue
        if kind == "q" and last and len(last) == 2:
            combined = _combine(last, value, times)
            if combined:
                merged[-1] = ("q", combined)
                times = False
                continue
        times = times and kind == "f"
        merged.append((kind, value))
    return merged


def _chunks(items: list[tuple[str, Any]]) -> list[list[tuple[str, Any]]]:
    """Split a segment holding several quantities ("aalu 10 kg pyaj 5 kg") into one chunk per item."""
    core = [item for item in items if item[0] != "f"]
    quantities = [item for item in core if item[0] == "q"]
    if len(quantities) > 1 and core[0][0] == "q" and core[-1][0] == "q":
        number, unit = core[0][1][:2]
        if unit is None and float(number).is_integer():
            items = items[items.index(core[0]) + 1 :]  # a bare leading integer here is list numbering
            core = core[1:]
            quantities = quantities[1:]
    if len(quantities) <= 1:
        return [items]
    chunks: list[list[tuple[str, Any]]] = [[]]
    quantity_first = core[0][0] == "q"
    for item in items:
        if quantity_first and item[0] == "q" and any(kind == "w" for kind, _ in chunks[-1]):
            chunks.append([])
        chunks[-1].append(item)
        if not quantity_first and item[0] == "q":
            chunks.append([])
    chunks = [chunk for chunk in chunks if chunk]
    if quantity_first and len(chunks) == 2 and all(v in LINKERS for k, v in chunks[1] if k == "w"):
        # "5 ltr sunflower oil 2 wota", "10 packet chini 1 kg wala": the trailing quantity is the same item's.
        return [chunks[0] + chunks[1]]
    return chunks


def _is_chatter(raw: str, items: list[tuple[str, Any]]) -> bool:
    """Price questions and other questions without a quantity are not order lines."""
    words = {value for kind, value in items if kind != "q"}
    if words & PRICE_WORDS:
        return True
    has_quantity = any(kind == "q" for kind, _ in items)
    return not has_quantity and ("?" in raw or bool(words & QUESTION_WORDS) or has_time(raw))


def _line(raw: str, chunk: list[tuple[str, Any]]) -> ParsedLine | None:
    """The order line for one chunk, or None when it names nothing or is negated."""
    chunk = _without_negated(chunk)
    words = [value for kind, value in chunk if kind == "w"]
    while words and words[0] in LINKERS:
        words.pop(0)
    while words and words[-1] in LINKERS:
        words.pop()
    if not words:
        return None
    quantities = [value for kind, value in chunk if kind == "q"]
    if len(quantities) == 2 and len(quantities[0]) == 2:
        quantities = [_combine(quantities[0], quantities[1], times=False) or quantities[0]]
    elif len(quantities) == 2 and len(quantities[1]) == 2 and quantities[1][1] in _COUNTED:
        # "25 kg ko bora chini 2 ota": two of the packs already read.
        (count, unit, pack), (times, _) = quantities
        quantities = [(count * times, unit, pack)]
    if not quantities:
        return ParsedLine(text=raw, name=" ".join(words), quantity=None, unit=None)
    quantity, unit, *pack = quantities[0]
    return ParsedLine(raw, " ".join(words), round(quantity, 6), unit, pack[0] if pack else None)


def _without_negated(chunk: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The chunk without what its negations undo: "wai wai hoina rara 5" keeps "rara 5"."""
    while (at := next((i for i, (kind, _) in enumerate(chunk) if kind == "n"), None)) is not None:
        last_quantity = max((i for i, (kind, _) in enumerate(chunk[:at]) if kind == "q"), default=None)
        if chunk[at][1] == "after" and any(kind == "w" for kind, _ in chunk[at + 1 :]):
            chunk = chunk[:at]  # "no oil": the negation and what follows
        elif last_quantity is not None and all(
            any(kind == "w" for kind, _ in part) for part in (chunk[:last_quantity], chunk[last_quantity:at])
        ):
            chunk = chunk[: last_quantity + 1] + chunk[at + 1 :]  # "chini 5 kg tel chahidaina": only "tel"
        else:
            chunk = chunk[at + 1 :]  # "tel chahidaina", "oil not needed": what precedes
    return chunk


def _segments(text: str) -> list[str]:
    """Lines without bullets and list markers, split on separators."""
    segments = []
    for line in unicodedata.normalize("NFC", text).splitlines():
        line = _BULLET.sub("", line)
        line = _NUMBERING.sub("", line, count=1)
        line = _DASH_NUMBERING.sub("", line, count=1)
        line = _MARKER.sub(",", line)
        segments.extend(part.strip() for part in _SEPARATORS.split(line) if part and part.strip())
    return segments


def _split_units(tokens: list[str]) -> list[str]:
    """A unit written together with "को" ("लिटरको") as the unit and the joining word."""
    out = []
    for token in tokens:
        if token.endswith("को") and token[:-2] in UNIT:
            out.extend((token[:-2], "को"))
        else:
            out.append(token)
    return out


def parse_order(text: str) -> list[ParsedLine]:
    """Split a message into order lines; chatter, greetings and questions give no lines."""
    lines = []
    for raw in _segments(text):
        tokens = _split_units(normalize(strip_non_quantities(raw)).split())
        items = _merge_adjacent(_scan(tokens))
        if not items or _is_chatter(raw, items):
            continue
        chunks = _chunks(items)
        for chunk in chunks:
            label = raw if len(chunks) == 1 else " ".join(str(v) if k != "q" else _show(v) for k, v in chunk)
            line = _line(label, chunk)
            if line:
                lines.append(line)
    return lines


def _show(quantity: tuple) -> str:
    """A quantity written back as text, for the label of one item out of a multi-item segment."""
    number = f"{quantity[0]:g}"
    return f"{number} {quantity[1]}" if quantity[1] else number
