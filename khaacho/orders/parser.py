"""Turn a shopkeeper's WhatsApp message into order lines (name, quantity, unit); no catalog here."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


UNITS = _wordset("kg g litre ml packet piece bottle crate bag dozen box carton tray tin")

_UNIT_WORDS = {
    "kg": "kg kgs kilo kilos kilogram kilograms kilogramme kgm केजी किलो किलोग्राम",
    "g": "g gm gms gram grams gramme gr grm ग्राम",
    "litre": "l lt ltr ltrs litre litres liter liters lit लिटर लि",
    "ml": "ml mls millilitre milliliter एमएल",
    "packet": "packet packets pkt pkts pk pck pckt pack packs pkg paket poka प्याकेट पाकेट पोका",
    "piece": "piece pieces pc pcs pis nos wota ota vota wata ta gota euta वटा ओटा टा गोटा पिस",
    "bottle": "bottle bottles btl btls botal bottal बोतल",
    "crate": "crate crates kret क्रेट",
    "bag": "bag bags bora boras bori sack sacks बोरा बोरी",
    "dozen": "dozen dozens doz dz darjan darjon दर्जन",
    "box": "box boxes baksa dabba बाकस डब्बा",
    "carton": "carton cartons ctn ctns cartoon kartun कार्टुन कार्टन",
    "tray": "tray trays ट्रे",
    "tin": "tin tins टिन",
}
_UNIT = {word: unit for unit, words in _UNIT_WORDS.items() for word in words.split()}
_TWO_WORD_UNITS = {("k", "g"): "kg", ("के", "जी"): "kg", ("kilo", "gram"): "kg", ("m", "l"): "ml"}

_NUMBER_WORDS = {
    **dict.fromkeys(("one", "ek", "एक", "euta", "एउटा"), 1.0),
    **dict.fromkeys(("two", "dui", "duita", "दुई"), 2.0),
    **dict.fromkeys(("three", "tin", "तीन"), 3.0),
    **dict.fromkeys(("four", "char", "chaar", "चार"), 4.0),
    **dict.fromkeys(("five", "panch", "paanch", "पाँच", "पाच"), 5.0),
    **dict.fromkeys(("six", "chha", "छ"), 6.0),
    **dict.fromkeys(("seven", "saat", "सात"), 7.0),
    **dict.fromkeys(("eight", "aath", "आठ"), 8.0),
    **dict.fromkeys(("nine", "nau", "नौ"), 9.0),
    **dict.fromkeys(("ten", "das", "दस"), 10.0),
    **dict.fromkeys(("twelve", "barha", "बाह्र"), 12.0),
    **dict.fromkeys(("twenty", "bis", "बीस"), 20.0),
}
_FRACTION_WORDS = {
    **dict.fromkeys(("half", "aadha", "adha", "aadhaa", "आधा"), 0.5),
    **dict.fromkeys(("dedh", "derh", "डेढ"), 1.5),
    **dict.fromkeys(("dhai", "adhai", "arhai", "अढाई"), 2.5),
}
_PLUS_HALF = frozenset({"sadhe", "saadhe", "साढे"})
_ONE = frozenset({"a", "an"})
_TIMES = frozenset({"x", "×"})
_MEASURED = frozenset({"kg", "g", "litre", "ml"})
_CURRENCY = frozenset({"rs", "rupees", "rupee", "rupiya", "npr", "रु", "रुपैयाँ", "रुपैया"})

_FILLERS = _wordset(
    """
    please pls plz plss kindly send sent need needed want order orders give add bring deliver delivery
    i me we us my our you your the a an some sir madam dear hello hi hey namaste namaskar thanks thank
    thankyou ty ok okay also more following items item today tomorrow asap urgent required require for
    to can could would will have has get good morning evening night bye and or new list
    dai daju didi bhai bahini sathi hajur ji malai hami hamilai mero hamro lai chahiyo chaiyo chahiyeko
    chahincha chaincha chainxa pathaidinus pathaidinu pathaidinuhos pathaunu pathaunus pathau pathaideu
    dinus dinu dinuhos dinuhola deu dinos ani pani ni hai la ta aaja aja bholi ahile kripaya dhanyabad
    dhanyabaad dhanyawad hola cha chha xa ho garnus garnu garidinus lyaidinus lyaunu lyaunus thap thapnu
    thapidinus
    मलाई हामीलाई चाहियो चाहिन्छ पठाइदिनुस पठाइदिनुहोस् पठाउनुस पठाउनु दिनुस दिनुहोस् दाइ दाजु दिदी
    भाइ नमस्ते नमस्कार धन्यवाद कृपया पनि अनि है हजुर आज भोलि छ हो
    """
)
# Joining words are part of names like "tori ko tel": only dropped at the edges of a name.
_LINKERS = frozenset({"ko", "ka", "ki", "of", "wala", "wali", "vala", "को", "वाला"})
_PRICE_WORDS = _wordset(
    """
    price prices rate rates cost much kati mol daam dam bhau bhaau kimat
    कति भाउ मूल्य दाम मोल
    """
)
_QUESTION_WORDS = _wordset(
    """
    what when how why where which who kahile kina kaha kasari k ke
    कहिले किन कहाँ के कसरी
    """
)
_TIME_WORDS = frozenset({"baje", "bajey", "बजे", "clock", "pm"})

_TEXT_MARKS = ("Mn", "Mc")
_DIGITS = str.maketrans("०१२३४५६७८९", "0123456789")
_FRACTION_CHARS = {"½": ".5", "¼": ".25", "¾": ".75"}
_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)?|\.\d+|\d+/\d+)$")
_PHONE_DIGITS = 7

_BULLET = re.compile(r"^[\s\-*•·>#]+")
_NUMBERING = re.compile(r"^\s*\d{1,2}\s*[.)]\s*(?!\d)")
_DASH_NUMBERING = re.compile(r"^\s*\d{1,2}\s*[-:]\s+(?=.*\d)")
_SEPARATORS = re.compile(r"(?<=\?)|[,;।|+&!]|\s(?:and|ra|र|ani|अनि|n|plus)\s", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedLine:
    """One requested item: the segment as written, the product words, and quantity/unit if given."""

    text: str
    name: str
    quantity: float | None
    unit: str | None
    pack: tuple[float, str] | None = None  # size of each counted item: "oil 1 ltr x 10 pcs" -> (1.0, "litre")


def normalize(text: str) -> str:
    """Lowercase, NFC, ASCII digits, and drop everything but letters, marks, digits and decimal points."""
    text = unicodedata.normalize("NFC", text).lower().translate(_DIGITS)
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
    if i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) in _TWO_WORD_UNITS:
        return _TWO_WORD_UNITS[(tokens[i], tokens[i + 1])], 2
    if i < len(tokens) and tokens[i] in _UNIT:
        return _UNIT[tokens[i]], 1
    return None, 0


def _scan(tokens: list[str]) -> list[tuple[str, Any]]:
    """Classify tokens: quantities ("q", (qty, unit)), words ("w"), fillers ("f") and multipliers ("x")."""
    out: list[tuple[str, Any]] = []
    i, n = 0, len(tokens)
    while i < n:
        token = tokens[i]
        after = tokens[i + 1] if i + 1 < n else ""
        unit_next = _unit_at(tokens, i + 1)[0] is not None
        first = not any(kind != "f" for kind, _ in out)
        value = _number(token)
        if value is None and token in _NUMBER_WORDS and (unit_next or after in _TIMES or (first and after)):
            value = _NUMBER_WORDS[token]
        elif value is None and token in _FRACTION_WORDS and unit_next:
            value = _FRACTION_WORDS[token]
        elif value is None and token in _ONE and unit_next:
            value = 1.0
        elif value is None and token in _PLUS_HALF and _number(after) is not None:
            i += 1
            value = _number(after) + 0.5
        if value is not None:
            money = after in _CURRENCY or (i > 0 and tokens[i - 1] in _CURRENCY)
            if money or len(token.split(".")[0]) >= _PHONE_DIGITS:
                i += 1
                continue
            i += 1
            if i < n and "/" in tokens[i] and _number(tokens[i]) is not None and "/" not in token:
                value += _number(tokens[i])
                i += 1
            unit, span = _unit_at(tokens, i)
            i += span
            out.append(("q", (value, unit)))
            continue
        if token in _TIMES:
            out.append(("x", token))
        elif _UNIT.get(token) == "dozen":
            out.append(("q", (1.0, "dozen")))
        elif token in _FILLERS:
            out.append(("f", token))
        else:
            out.append(("w", token))
        i += 1
    return out


def _combine(first: tuple, second: tuple, times: bool) -> tuple | None:
    """One quantity from two written side by side, or None when they are separate items."""
    (a, a_unit), (b, b_unit) = first[:2], second[:2]
    if (a_unit in _MEASURED) != (b_unit in _MEASURED):
        size, count = (first, second) if a_unit in _MEASURED else (second, first)
        if count[1] is not None or times:
            return (count[0], count[1], (size[0], size[1]))
    if times and (a_unit is None or b_unit is None):
        return (a * b, a_unit or b_unit)
    return None


def _merge_adjacent(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Combine "1 ltr x 12", "2 x 5kg" and "1.5 ltr 6 bottle" into one quantity; drop stray "x"."""
    merged: list[tuple[str, Any]] = []
    times = False
    for kind, value in items:
        if kind == "x":
            times = True
            continue
        if kind == "q" and merged and merged[-1][0] == "q" and len(merged[-1][1]) == 2:
            combined = _combine(merged[-1][1], value, times)
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
    if quantity_first and len(chunks) == 2 and all(v in _LINKERS for k, v in chunks[1] if k == "w"):
        # "5 ltr sunflower oil 2 wota", "10 packet chini 1 kg wala": the trailing quantity is the same item's.
        return [chunks[0] + chunks[1]]
    return chunks


def _is_chatter(raw: str, items: list[tuple[str, Any]]) -> bool:
    """Price questions, times and other questions without a quantity are not order lines."""
    words = {value for kind, value in items if kind != "q"}
    if words & _PRICE_WORDS or words & _TIME_WORDS:
        return True
    has_quantity = any(kind == "q" for kind, _ in items)
    return not has_quantity and ("?" in raw or bool(words & _QUESTION_WORDS))


def _line(raw: str, chunk: list[tuple[str, Any]]) -> ParsedLine | None:
    """The order line for one chunk, or None when it names nothing."""
    words = [value for kind, value in chunk if kind == "w"]
    while words and words[0] in _LINKERS:
        words.pop(0)
    while words and words[-1] in _LINKERS:
        words.pop()
    if not words:
        return None
    quantities = [value for kind, value in chunk if kind == "q"]
    if len(quantities) == 2 and len(quantities[0]) == 2:
        quantities = [_combine(quantities[0], quantities[1], times=False) or quantities[0]]
    if not quantities:
        return ParsedLine(text=raw, name=" ".join(words), quantity=None, unit=None)
    quantity, unit, *pack = quantities[0]
    return ParsedLine(raw, " ".join(words), round(quantity, 6), unit, pack[0] if pack else None)


def _segments(text: str) -> list[str]:
    """Lines without bullets and list numbering, split on separators."""
    segments = []
    for line in unicodedata.normalize("NFC", text).splitlines():
        line = _BULLET.sub("", line)
        line = _NUMBERING.sub("", line, count=1)
        line = _DASH_NUMBERING.sub("", line, count=1)
        segments.extend(part.strip() for part in _SEPARATORS.split(line) if part and part.strip())
    return segments


def parse_order(text: str) -> list[ParsedLine]:
    """Split a message into order lines; chatter, greetings and questions give no lines."""
    lines = []
    for raw in _segments(text):
        tokens = normalize(raw).split()
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
