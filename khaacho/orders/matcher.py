"""Match parsed order lines to catalog products and convert quantities to the product's unit."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA

from khaacho.orders.parser import ParsedLine, normalize, parse_order

# Units that convert into each other: (dimension, size in the dimension's smallest unit).
# A piece, packet and bottle are all "one item", so "10 wota wai wai" is 10 packets.
_MEASURES = {
    "g": ("mass", 1),
    "kg": ("mass", 1000),
    "ml": ("volume", 1),
    "litre": ("volume", 1000),
    "piece": ("count", 1),
    "packet": ("count", 1),
    "bottle": ("count", 1),
    "dozen": ("count", 12),
}
_DEVANAGARI_FOLD = str.maketrans({"ी": "ि", "ू": "ु", "ँ": "ं", "़": None, "\u200c": None, "\u200d": None})
_MAX_WINDOW = 4
# "bhatmas ko tel" is "bhatmas tel"; "तोरीको" written as one word keeps its "को".
_JOINERS = frozenset({"ko", "of", "को"})


@dataclass(frozen=True)
class Product:
    """The catalog fields matching needs."""

    id: int | None
    sku: str
    name: str
    unit: str
    price: Decimal | None


@dataclass
class OrderLine:
    """One order item: the matched product (or None), the quantity in the product's unit, its price."""

    text: str
    sku: str | None
    product_id: int | None
    quantity: float
    unit: str | None
    unit_price: Decimal | None

    def to_json(self) -> dict[str, Any]:
        """The line as printed by `flask orders parse`."""
        quantity = int(self.quantity) if float(self.quantity).is_integer() else self.quantity
        return {"sku": self.sku, "quantity": quantity, "unit": self.unit, "text": self.text}


def _fold_word(word: str) -> str:
    if word.isascii():
        # "eggs" -> "egg", but not "maas", "bhatmas", "kismis", "glass".
        if len(word) > 3 and word.endswith("s") and word[-2] not in "aiuso":
            word = word[:-1]
        word = word.replace("ee", "i").replace("oo", "u")
        return re.sub(r"(.)\1+", r"\1", word)
    return word.translate(_DEVANAGARI_FOLD)


def match_key(text: str) -> str:
    """The form names and aliases are compared in: normalised, "ko"/"of" dropped, spelling variants folded."""
    return " ".join(_fold_word(word) for word in normalize(text).split() if word not in _JOINERS)


def _field(product: Any, name: str) -> Any:
    if isinstance(product, Mapping):
        return product.get(name)
    return getattr(product, name, None)


def _aliases(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [alias.strip() for alias in value.split("|") if alias.strip()]
    return [str(alias).strip() for alias in value if str(alias).strip()]


def convert(quantity: float, unit: str | None, product_unit: str | None) -> tuple[float, str | None]:
    """Express quantity in the product's unit when the two units convert (250 g -> 0.25 kg)."""
    if unit is None:
        return quantity, product_unit
    have, want = _MEASURES.get(unit), _MEASURES.get(product_unit or "")
    if have and want and have[0] == want[0]:
        return round(quantity * have[1] / want[1], 6), product_unit
    if unit == "dozen":
        return quantity * 12, "piece"
    return quantity, unit


class Catalog:
    """Products indexed by every folded name and alias, for exact, phrase and typo-tolerant lookup."""

    def __init__(self, products: Iterable[Any]) -> None:
        self._exact: dict[str, Product] = {}
        self._compact: dict[str, Product] = {}
        for item in products:
            price = _field(item, "price")
            product = Product(
                id=_field(item, "id"),
                sku=str(_field(item, "sku")),
                name=str(_field(item, "name")),
                unit=_field(item, "unit"),
                price=Decimal(str(price)) if price is not None else None,
            )
            for alias in [product.name, *_aliases(_field(item, "aliases"))]:
                key = match_key(alias)
                if key:
                    self._exact.setdefault(key, product)
                    self._compact.setdefault(key.replace(" ", ""), product)
        self._keys_by_initial: dict[str, list[str]] = {}
        for key in self._exact:
            self._keys_by_initial.setdefault(key[0], []).append(key)
        # A one-word key that also appears inside another product's phrase ("dal" in "mas dal") is generic:
        # when a line holds both, the specific one wins.
        phrase_owners: dict[str, set[str]] = {}
        for key, product in self._exact.items():
            for word in key.split() if " " in key else ():
                phrase_owners.setdefault(word, set()).add(product.sku)
        self._generic = {
            key for key, product in self._exact.items() if phrase_owners.get(key, set()) - {product.sku}
        }

    def find(self, name: str) -> Product | None:
        """The product a name means: exact alias, else the longest alias inside it, else a near spelling."""
        key = match_key(name)
        if not key:
            return None
        found = self._exact.get(key) or self._compact.get(key.replace(" ", ""))
        if found:
            return found
        words = key.split()
        windows = [
            " ".join(words[start : start + size])
            for size in range(min(len(words), _MAX_WINDOW), 0, -1)
            for start in range(len(words) - size + 1)
        ]
        return self._contained(windows) or self._near(windows)

    def _contained(self, windows: list[str]) -> Product | None:
        found = [
            (window, self._exact.get(window) or self._compact.get(window.replace(" ", "")))
            for window in windows
        ]
        hits = [(window, product) for window, product in found if product]
        if not hits:
            return None
        best = max(hits, key=lambda hit: (len(hit[0].split()), hit[0] not in self._generic, len(hit[0])))
        return best[1]

    def _near(self, windows: list[str]) -> Product | None:
        for window in windows:
            allowed = _allowed_edits(len(window))
            if not allowed:
                continue
            # Typos keep the first letter; without this "khana" (food) would be "chana".
            keys = self._keys_by_initial.get(window[0], [])
            found = process.extractOne(window, keys, scorer=OSA.distance, score_cutoff=allowed)
            if found:
                return self._exact[found[0]]
        return None

    def match(self, line: ParsedLine) -> OrderLine:
        """The order line for a parsed line; sku is None when no product fits."""
        product = self.find(line.name)
        product_unit = product.unit if product else None
        quantity, unit = line.quantity if line.quantity is not None else 1.0, line.unit
        if line.pack:
            quantity, unit = _unpack(quantity, unit, line.pack, product_unit)
        quantity, unit = convert(quantity, unit, product_unit)
        if product is None:
            return OrderLine(line.text, None, None, quantity, unit, None)
        price = product.price if unit == product.unit else None
        return OrderLine(line.text, product.sku, product.id, quantity, unit, price)


def _unpack(
    count: float, unit: str | None, pack: tuple[float, str], product_unit: str | None
) -> tuple[float, str | None]:
    """Count of packs of a size: total weight/volume unless the product is itself sold by the count."""
    size, size_unit = pack
    measure = _MEASURES.get(product_unit or "")
    if measure and measure[0] == "count":
        return count, unit or product_unit
    if unit == "dozen":
        count *= 12
    return round(count * size, 6), size_unit


def _allowed_edits(length: int) -> int:
    """Typos tolerated in a name this long: none in short words, where one edit makes another word."""
    if length < 5:
        return 0
    return 1 if length < 8 else 2


def read_order(text: str, catalog: Catalog) -> list[OrderLine]:
    """Parse a message and match each line; a line with no quantity and no product is chatter, not an item."""
    lines = []
    for parsed in parse_order(text):
        line = catalog.match(parsed)
        if line.sku is None and parsed.quantity is None:
            continue
        lines.append(line)
    return lines
