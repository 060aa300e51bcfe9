"""Read and validate a catalog CSV (sku,name,aliases,unit,price); no database here."""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from khaacho.orders.words import UNITS

COLUMNS = ("sku", "name", "aliases", "unit", "price")


class CatalogError(ValueError):
    """A catalog file with problems; ``problems`` holds one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_catalog_rows(source: str | Path | IO[str]) -> list[dict[str, Any]]:
    """Rows ready to upsert: {sku, name, aliases ("|"-joined), unit, price: Decimal}; raises CatalogError."""
    if isinstance(source, (str, Path)):
        with open(source, encoding="utf-8-sig", newline="") as handle:
            return _read(handle)
    return _read(source)


def _read(handle: IO[str]) -> list[dict[str, Any]]:
    text = handle.read()
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [column.strip().lower() for column in reader.fieldnames or []]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise CatalogError([f"missing column(s): {', '.join(missing)} (expected {','.join(COLUMNS)})"])
    reader.fieldnames = header
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    skus: dict[str, int] = {}
    aliases_seen: dict[str, tuple[int, str]] = {}
    # Row numbers are file lines as a spreadsheet shows them: the header is row 1.
    for number, raw in enumerate(reader, start=2):
        row, row_problems = _row(raw)
        problems.extend(f"row {number}: {problem}" for problem in row_problems)
        if row_problems:
            continue
        if row["sku"] in skus:
            problems.append(f"row {number}: sku {row['sku']!r} already used in row {skus[row['sku']]}")
            continue
        skus[row["sku"]] = number
        for alias in [row["name"], *row["aliases"].split("|")]:
            key = " ".join(alias.lower().split())
            if not key:
                continue
            owner = aliases_seen.setdefault(key, (number, row["sku"]))
            if owner[1] != row["sku"]:
                problems.append(f"row {number}: alias {alias!r} already names {owner[1]} (row {owner[0]})")
        rows.append(row)
    if problems:
        raise CatalogError(problems)
    return rows


def _row(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """One validated row and the problems found in it."""
    if None in raw:
        return {}, [f"{len(raw[None])} value(s) more than the header has"]
    value = {column: (raw.get(column) or "").strip() for column in COLUMNS}
    problems = []
    if not value["sku"]:
        problems.append("sku is empty")
    if not value["name"]:
        problems.append("name is empty")
    unit = value["unit"].lower()
    if unit not in UNITS:
        problems.append(f"unit {value['unit']!r} is not one of {', '.join(sorted(UNITS))}")
    try:
        price = Decimal(value["price"])
    except InvalidOperation:
        problems.append(f"price {value['price']!r} is not a number")
    else:
        if not price.is_finite() or price < 0:
            problems.append(f"price {value['price']!r} is not a non-negative amount")
    if problems:
        return {}, problems
    aliases = "|".join(alias.strip() for alias in value["aliases"].split("|") if alias.strip())
    row = {"sku": value["sku"], "name": value["name"], "aliases": aliases, "unit": unit, "price": price}
    return row, []
