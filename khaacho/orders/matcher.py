"""Match parsed order lines to catalog products and convert quantities to the product's unit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import OSA

from khaacho.orders.parser import ParsedLine, normalize, parse_order
from khaacho.orders.transliterate import is_devanagari, phonetic_key

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
_MAX_CANDIDATES = 10
_FUZZY_CACHE_SIZE = 4096
_MIN_INSIDE_LETTERS = 4
# "bhatmas ko tel" is "bhatmas tel"; "तोरीको" written as one word loses its "को" too.
_JOINERS = frozenset({"ko", "of", "को"})

MATCHED, AMBIGUOUS, UNKNOWN = "matched", "ambiguous", "unknown"


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
    """One order item: the matched product or the candidates to ask about, and the quantity in its unit.

    ``status`` is ``matched`` (one confident product), ``ambiguous`` (the line fits several products:
    ``candidates`` lists them, best first) or ``unknown`` (no product fits well; ``candidates`` holds
    any that share a word with it). Only a matched line has a ``sku``: nothing is guessed.
    """

    text: str
    sku: str | None
    product_id: int | None
    quantity: float
    unit: str | None
    unit_price: Decimal | None
    status: str = MATCHED
    candidates: tuple[Product, ...] = ()
    name: str | None = None  # the matched product's name, for the reply

    def to_json(self) -> dict[str, Any]:
        """The line as printed by `flask orders parse`."""
        quantity = int(self.quantity) if float(self.quantity).is_integer() else self.quantity
        return {"sku": self.sku, "quantity": quantity, "unit": self.unit, "text": self.text}


@dataclass(frozen=True)
class Resolution:
    """What a product name means: ``product`` when matched, else the ``candidates`` to ask about."""

    status: str
    product: Product | None = None
    candidates: tuple[Product, ...] = ()


def _fold_word(word: str) -> str:
    if word.isascii() and len(word) > 4 and word.endswith("oes"):
        word = word[:-2]  # "potatoes" -> "potato"
    elif word.isascii() and len(word) > 3 and word.endswith("s") and word[-2] not in "aiuso":
        word = word[:-1]  # "eggs" -> "egg", but not "maas", "bhatmas", "kismis", "glass"
    elif is_devanagari(word) and word.endswith("को") and len(word) > 2:
        word = word[:-2]  # "तोरीको" -> "तोरी"
    return phonetic_key(word)


def _written_words(text: str) -> list[str]:
    return [word for word in normalize(text).split() if word not in _JOINERS]


def match_words(text: str) -> list[str]:
    """The phonetic keys of a name's words, "ko"/"of" dropped: the form names and aliases are compared in."""
    return [_fold_word(word) for word in _written_words(text)]


def match_key(text: str) -> str:
    """``match_words`` as one string."""
    return " ".join(match_words(text))


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
    """Products indexed by the phonetic keys of every name and alias word: phrase and typo-tolerant lookup.

    A line is resolved by how many of its words each product's aliases explain. The product that
    explains most wins only when one of its aliases is there in full (or the line is all inside one
    alias, "masino"); a tie, a product that shares only part of the phrase, or a word before the
    name that the product does not explain ("kalo jeera", while "jeera masino" also has "jeera")
    makes the line a question.
    """

    def __init__(self, products: Iterable[Any]) -> None:
        self._products: list[Product] = []
        self._aliases: list[tuple[int, tuple[str, ...]]] = []  # (product index, alias words)
        self._exact: dict[str, set[int]] = {}
        self._vocab: dict[str, set[int]] = {}  # word -> alias indices
        for item in products:
            price = _field(item, "price")
            index = len(self._products)
            self._products.append(Product(
                id=_field(item, "id"),
                sku=str(_field(item, "sku")),
                name=str(_field(item, "name")),
                unit=_field(item, "unit"),
                price=Decimal(str(price)) if price is not None else None,
            ))
            for alias in [self._products[-1].name, *_aliases(_field(item, "aliases"))]:
                written = _written_words(alias)
                if not written:
                    continue
                # "wai wai" is also written "waiwai", "chiya patti" also "chiyapatti".
                for form in {tuple(map(_fold_word, written)), (_fold_word("".join(written)),)}:
                    self._add_alias(index, form)
        self._by_initial: dict[str, list[str]] = {}
        for word in self._vocab:
            self._by_initial.setdefault(word[0], []).append(word)
        self._fuzzy: dict[str, tuple[str, ...]] = {}

    def _add_alias(self, product: int, words: tuple[str, ...]) -> None:
        alias = len(self._aliases)
        self._aliases.append((product, words))
        self._exact.setdefault(" ".join(words), set()).add(product)
        for word in words:
            self._vocab.setdefault(word, set()).add(alias)

    def _near_words(self, word: str) -> tuple[str, ...]:
        """Catalog words a typo away (two in long words), same first letter: "khana" is not "chana"."""
        if word in self._fuzzy:
            return self._fuzzy[word]
        allowed = _allowed_edits(len(word))
        found: tuple[str, ...] = ()
        if allowed:
            hits = process.extract(word, self._by_initial.get(word[0], []), scorer=OSA.distance,
                                   score_cutoff=allowed, limit=None)
            best = min((hit[1] for hit in hits), default=None)
            found = tuple(hit[0] for hit in hits if hit[1] == best)
        if len(self._fuzzy) < _FUZZY_CACHE_SIZE:
            self._fuzzy[word] = found
        return found

    def _word_matches(self, written: list[str], words: list[str]) -> dict[str, set[int]]:
        """For each catalog word present in the line, the line positions it covers."""
        matches: dict[str, set[int]] = {}
        for at, word in enumerate(words):
            for found in (word,) if word in self._vocab else self._near_words(word):
                matches.setdefault(found, set()).add(at)
            if at + 1 < len(words) and (joined := _fold_word(written[at] + written[at + 1])) in self._vocab:
                matches.setdefault(joined, set()).update((at, at + 1))
        return matches

    def resolve(self, name: str) -> Resolution:
        """The product a name means, or the candidates to ask about."""
        written = _written_words(name)
        words = [_fold_word(word) for word in written]
        if not words:
            return Resolution(UNKNOWN)
        exact = self._exact.get(" ".join(words)) or self._exact.get(_fold_word("".join(written)))
        if exact and len(exact) == 1:
            return Resolution(MATCHED, self._products[next(iter(exact))])
        matches = self._word_matches(written, words)
        # Per product: line positions its aliases explain, and whether one alias is there in full.
        covered: dict[int, set[int]] = {}
        complete: dict[int, bool] = {}
        for alias in {alias for word in matches for alias in self._vocab[word]}:
            product, alias_words = self._aliases[alias]
            present = [matches[word] for word in alias_words if word in matches]
            covered.setdefault(product, set()).update(*present)
            complete[product] = complete.get(product, False) or len(present) == len(alias_words)
        if not covered:
            return Resolution(UNKNOWN)
        everything = set(range(len(words)))
        # A line all inside one product's alias ("masino") is that product, unless it is a short word
        # ("call" is not "kala chana").
        inside = len("".join(words)) >= _MIN_INSIDE_LETTERS
        tier = {p: 2 if complete[p] else 1 if inside and covered[p] >= everything else 0 for p in covered}
        ranked = sorted(covered, key=lambda p: (-len(covered[p]), -tier[p], p))
        top = [p for p in ranked if len(covered[p]) == len(covered[ranked[0]])]
        best_tier = max(tier[p] for p in top)
        winners = [p for p in top if tier[p] == best_tier]
        candidates = tuple(self._products[p] for p in [*winners, *[p for p in ranked if p not in winners]])
        candidates = candidates[:_MAX_CANDIDATES]
        if best_tier == 0:
            # "dal": too short to name one product alone, but plainly one of those it is part of.
            several = sum(covered[p] >= everything for p in covered) > 1
            return Resolution(AMBIGUOUS if several else UNKNOWN, candidates=candidates)
        if len(winners) > 1 or self._unexplained_modifier(covered, winners[0]):
            return Resolution(AMBIGUOUS, candidates=candidates)
        return Resolution(MATCHED, self._products[winners[0]])

    @staticmethod
    def _unexplained_modifier(covered: dict[int, set[int]], winner: int) -> bool:
        """A word before the product's words that it does not explain, while another product shares them.

        "kalo jeera" (nigella) is not cumin: "jeera" is also part of "jeera masino", so "kalo" may
        name another product. "jeera powder" stays cumin: a word after the name describes it.
        """
        mine = covered[winner]
        if min(mine) == 0:
            return False
        return any(p != winner and len(c) == len(mine) and c & mine for p, c in covered.items())

    def find(self, name: str) -> Product | None:
        """The product a name means when there is exactly one; None when unknown or ambiguous."""
        return self.resolve(name).product

    def match(self, line: ParsedLine) -> OrderLine:
        """The order line for a parsed line; a line that is not matched has no sku but may have candidates."""
        resolution = self.resolve(line.name)
        product = resolution.product
        product_unit = product.unit if product else None
        quantity, unit = line.quantity if line.quantity is not None else 1.0, line.unit
        if line.pack:
            quantity, unit = _unpack(quantity, unit, line.pack, product_unit)
        quantity, unit = convert(quantity, unit, product_unit)
        if product is None:
            status, candidates = resolution.status, resolution.candidates
            return OrderLine(line.text, None, None, quantity, unit, None, status, candidates)
        price = product.price if unit == product.unit else None
        return OrderLine(line.text, product.sku, product.id, quantity, unit, price, name=product.name)


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
    """Parse a message and match each line; a line with no quantity that fits no product is chatter."""
    lines = []
    for parsed in parse_order(text):
        line = catalog.match(parsed)
        if line.status == UNKNOWN and parsed.quantity is None:
            continue
        lines.append(line)
    return lines
