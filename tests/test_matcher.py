"""Matching parsed lines to the demo catalog, unit conversion, the catalog CSV loader and dataset quality."""

import importlib.util
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from khaacho.orders.catalog_csv import CatalogError, load_catalog_rows
from khaacho.orders.matcher import Catalog, OrderLine, read_order
from khaacho.orders.parser import ParsedLine

ROOT = Path(__file__).resolve().parent.parent
DEMO_CSV = ROOT / "khaacho" / "data" / "demo_catalog.csv"
HEADER = "sku,name,aliases,unit,price\n"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(load_catalog_rows(DEMO_CSV))


def items(text: str, catalog: Catalog) -> list[tuple]:
    return [(line.sku, line.quantity, line.unit) for line in read_order(text, catalog)]


@pytest.mark.parametrize(
    ("name", "sku"),
    [
        ("jeera", "CUMIN"),
        ("jira", "CUMIN"),
        ("जीरा", "CUMIN"),
        ("jeera masino chamal", "RICE-JEERA-MASINO"),
        ("jeera masino", "RICE-JEERA-MASINO"),
        ("jira masino", "RICE-JEERA-MASINO"),
        ("chamal", "RICE"),
        ("basmati chamal", "RICE-BASMATI"),
        ("chamal basmati", "RICE-BASMATI"),
        ("bhatmas", "SOYBEAN"),
        ("bhatmas tel", "SOYBEAN-OIL"),
        ("bhatmas ko tel", "SOYBEAN-OIL"),
        ("sabun", "SOAP"),
        ("dhune sabun", "DETERGENT"),
        ("musuro dal", "DAL-MUSURO"),
        ("mas ko dal", "DAL-MAS"),
        ("pitho", "ATTA"),
        ("makai ko pitho", "MAIZE-FLOUR"),
        ("wai wai noodles", "WAI-WAI"),
        ("rara noodles", "RARA"),
        ("eggs", "EGGS"),
        ("egg", "EGGS"),
        ("maas", "DAL-MAS"),
    ],
)
def test_exact_and_longest_alias_beat_generic_words(catalog, name, sku):
    assert catalog.find(name).sku == sku


@pytest.mark.parametrize(
    ("name", "sku"),
    [
        ("Coca-Cola", "COKE"),
        ("cocacola", "COKE"),
        ("WAIWAI", "WAI-WAI"),
        ("chiyapatti", "TEA"),
        ("cheeni", "SUGAR"),
        ("chinni", "SUGAR"),
        ("musuro daal", "DAL-MUSURO"),
        ("चिनि", "SUGAR"),
        ("दुध", "MILK"),
        ("दूध", "MILK"),
    ],
)
def test_spacing_case_and_spelling_variants_match(catalog, name, sku):
    assert catalog.find(name).sku == sku


@pytest.mark.parametrize(
    ("name", "sku"),
    [
        ("suger", "SUGAR"),
        ("mustrad oil", "MUSTARD-OIL"),
        ("basmathi", "RICE-BASMATI"),
        ("tumeric powder", "TURMERIC"),
        ("sunflower oi", "SUNFLOWER-OIL"),
        ("good quality mustrad oil", "MUSTARD-OIL"),
    ],
)
def test_typos_match_by_near_spelling(catalog, name, sku):
    assert catalog.find(name).sku == sku


@pytest.mark.parametrize(
    "name",
    [
        "dragon fruit",
        "kaju",
        "oil",
        "tel",
        "khaana pakaune tel",
        "maggi",
        "paneer",
        "shampoo",
        "ma aaula",
        "लसुन",
    ],
)
def test_unknown_products_stay_unmatched(catalog, name):
    assert catalog.find(name) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250 g besar", [("TURMERIC", 0.25, "kg")]),
        ("jeera 100 gm", [("CUMIN", 0.1, "kg")]),
        ("500 ml ghee", [("GHEE", 0.5, "litre")]),
        ("2 dozen eggs", [("EGGS", 24, "piece")]),
        ("anda 2 darjan", [("EGGS", 24, "piece")]),
        ("Sabun 1 dozen", [("SOAP", 12, "piece")]),
        ("Fanta 2 dz", [("FANTA", 24, "bottle")]),
        ("kera 2 darjan", [("BANANA", 2, "dozen")]),
        ("kera 6 wota", [("BANANA", 0.5, "dozen")]),
        ("६ वटा कोक", [("COKE", 6, "bottle")]),
        ("10 wota wai wai", [("WAI-WAI", 10, "packet")]),
        ("Noodles x 30", [(None, 30, None)]),
        ("chini", [("SUGAR", 1, "kg")]),
        ("2 bora chini", [("SUGAR", 2, "bag")]),
        ("salt 5 kg", [("SALT", 5, "kg")]),
        ("sunflower oil 1 ltr x 12", [("SUNFLOWER-OIL", 12, "litre")]),
        ("mustard oil 1ltr x 10 pcs", [("MUSTARD-OIL", 10, "litre")]),
        ("chamal 25 kg 2 bora", [("RICE", 50, "kg")]),
        ("Coke 1.5 ltr 6 bottle", [("COKE", 6, "bottle")]),
        ("10 packet chini 1 kg wala", [("SUGAR", 10, "kg")]),
        ("5 kg dragon fruit", [(None, 5, "kg")]),
        ("2 dozen mango", [(None, 24, "piece")]),
        ("shampoo 6", [(None, 6, None)]),
    ],
)
def test_quantities_are_given_in_the_product_unit(catalog, text, expected):
    got = items(text, catalog)
    assert [(sku, unit) for sku, _, unit in got] == [(sku, unit) for sku, _, unit in expected]
    assert [quantity for _, quantity, _ in got] == pytest.approx([quantity for _, quantity, _ in expected])


def test_unit_price_is_the_catalog_price_only_in_the_catalog_unit(catalog):
    sugar_kg, sugar_bag = read_order("5 kg chini, 1 bora chini", catalog)
    assert sugar_kg.unit_price == Decimal("110")
    assert sugar_bag.unit_price is None


@pytest.mark.parametrize(
    "text",
    [
        "namaste, aaja pasal kati baje khulcha?",
        "maile hijo ko order payena",
        "ra tyo hijo ko bill pani pathaidinu",
        "what is the price of sugar?",
        "ok",
    ],
)
def test_messages_that_are_not_orders_give_no_items(catalog, text):
    assert read_order(text, catalog) == []


def test_the_shared_samples_are_read_as_a_person_reads_them(catalog):
    assert items("10 kg chini ra 5 kg dal", catalog) == [("SUGAR", 10, "kg"), (None, 5, "kg")]
    assert items("चिया पत्ती २ प्याकेट", catalog) == [("TEA", 2, "packet")]
    assert items("5 kg chini, 2 packet wai wai 🙏", catalog) == [("SUGAR", 5, "kg"), ("WAI-WAI", 2, "packet")]
    assert items("add 1 carton rara", catalog) == [("RARA", 1, "carton")]


def test_to_json_is_the_cli_item_shape(catalog):
    matched, unmatched = read_order("2 dozen eggs\n5 kg dragon fruit", catalog)
    assert matched.to_json() == {"sku": "EGGS", "quantity": 24, "unit": "piece", "text": "2 dozen eggs"}
    assert unmatched.to_json() == {"sku": None, "quantity": 5, "unit": "kg", "text": "5 kg dragon fruit"}
    assert read_order("250 g besar", catalog)[0].to_json()["quantity"] == 0.25


class _Row:
    def __init__(self, **fields):
        self.__dict__.update(fields)


@pytest.mark.parametrize(
    "product",
    [
        {
            "id": 7,
            "sku": "SUGAR",
            "name": "Sugar",
            "aliases": "chini|cheeni",
            "unit": "kg",
            "price": "110.00",
        },
        {
            "id": 7,
            "sku": "SUGAR",
            "name": "Sugar",
            "aliases": ["chini", "cheeni"],
            "unit": "kg",
            "price": 110,
        },
        _Row(id=7, sku="SUGAR", name="Sugar", aliases="chini|cheeni", unit="kg", price=Decimal("110")),
    ],
)
def test_catalog_takes_dicts_or_model_objects_and_either_alias_form(product):
    line = Catalog([product]).match(ParsedLine("5 kg cheeni", "cheeni", 5, "kg"))
    assert line == OrderLine("5 kg cheeni", "SUGAR", 7, 5, "kg", Decimal("110"))


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


def _bench():
    spec = importlib.util.spec_from_file_location("bench_parser", ROOT / "bench" / "parser.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_team_corpus_f1_stays_at_least_097_with_every_ambiguous_line_asked(catalog):
    cases = json.loads((ROOT / "tests" / "data" / "orders.json").read_text(encoding="utf-8"))
    assert len(cases) >= 150
    result = _bench().evaluate(catalog, cases)
    assert result["f1"] >= 0.97, result["misses"]
    assert result["asked_right"] == result["asked_expected"] >= 20


def test_held_back_corpus_is_there_and_scored_the_same_way(catalog):
    cases = json.loads((ROOT / "tests" / "data" / "orders-heldout.json").read_text(encoding="utf-8"))
    assert len(cases) >= 60
    result = _bench().evaluate(catalog, cases)
    assert result["expected"] > 100 and 0 <= result["f1"] <= 1


def test_bench_counts_an_asked_line_as_right_and_a_guess_as_wrong(catalog):
    bench = _bench()
    asked = [{"text": "5 kg dal", "items": [{"sku": None, "quantity": 5, "unit": "kg", "ambiguous": True,
                                              "candidates": ["DAL-MUSURO", "DAL-MUGI"]}]}]
    guessed = [{"text": "5 kg dal", "items": [{"sku": "DAL-MUSURO", "quantity": 5, "unit": "kg"}]}]
    assert bench.evaluate(catalog, asked)["f1"] == 1.0
    assert bench.evaluate(catalog, guessed)["f1"] == 0.0
