"""The catalog CSV loader: the demo catalog, and bad files refused with every problem named."""

import io
from decimal import Decimal
from pathlib import Path

import pytest

from khaacho.orders.catalog_csv import CatalogError, load_catalog_rows

DEMO_CSV = Path(__file__).resolve().parent.parent / "khaacho" / "data" / "demo_catalog.csv"
HEADER = "sku,name,aliases,unit,price\n"


def test_demo_catalog_loads_with_decimal_prices():
    rows = load_catalog_rows(DEMO_CSV)
    assert len(rows) >= 40
    sugar = next(row for row in rows if row["sku"] == "SUGAR")
    assert sugar == {"sku": "SUGAR", "name": "Sugar", "aliases": "chini|cheeni|chinee|चिनी", "unit": "kg",
                     "price": Decimal("110")}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("SUGAR,Sugar,chini,kg,abc\n", "row 2: price 'abc' is not a number"),
        ("SUGAR,Sugar,chini,kg,-5\n", "row 2: price '-5' is not a non-negative amount"),
        ("SUGAR,Sugar,chini,kilo,110\n", "row 2: unit 'kilo' is not one of"),
        (",Sugar,chini,kg,110\n", "row 2: sku is empty"),
        ("SUGAR,,chini,kg,110\n", "row 2: name is empty"),
        ("SUGAR,Sugar,chini,kg,110\nSUGAR,Sugar,,kg,110\n", "row 3: sku 'SUGAR' already used in row 2"),
        ("SUGAR,Sugar,chini,kg,110\nSALT,Salt,chini,packet,25\n", "row 3: alias 'chini' already names SUGAR"),
        ("SUGAR,Sugar,chini,kg,110,extra\n", "row 2: 1 value(s) more than the header has"),
    ],
)
def test_catalog_csv_problems_are_reported_per_row(body, problem):
    with pytest.raises(CatalogError) as error:
        load_catalog_rows(io.StringIO(HEADER + body))
    assert any(message.startswith(problem) for message in error.value.problems), error.value.problems


def test_catalog_csv_reports_every_bad_row_at_once():
    body = "A,Apple,,kg,1\nB,,,kg,x\nC,Carrot,,parsec,2\n"
    with pytest.raises(CatalogError) as error:
        load_catalog_rows(io.StringIO(HEADER + body))
    assert [message.split(":")[0] for message in error.value.problems] == ["row 3", "row 3", "row 4"]


def test_catalog_csv_without_required_columns_is_refused():
    with pytest.raises(CatalogError, match="missing column"):
        load_catalog_rows(io.StringIO("sku,name,price\nSUGAR,Sugar,110\n"))


def test_catalog_csv_trims_aliases_and_lowercases_units():
    rows = load_catalog_rows(io.StringIO(HEADER + " SUGAR , Sugar , chini | | cheeni ,KG, 110.50\n"))
    assert rows == [
        {"sku": "SUGAR", "name": "Sugar", "aliases": "chini|cheeni", "unit": "kg", "price": Decimal("110.50")}
    ]
