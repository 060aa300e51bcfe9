"""Order-reading quality against the demo catalog: precision, recall and F1 on the team's corpus
(tests/data/orders.json) and on the held-back one (tests/data/orders-heldout.json), plus misses.

An expected item is ``{"sku", "quantity", "unit"}``. A line a person would ask about rather than
read as one product (``dal`` fits several dals) is expected as ``"sku": null, "ambiguous": true``,
optionally with ``"candidates"`` that must all be offered; it is read correctly when the parser
asks (no sku, same quantity and unit): asked, not guessed. An item not in the catalog at all is
``"sku": null`` too. Quantities are in the product's unit; an unmatched line keeps the unit written.

Run from the repository root: ``.venv/bin/python bench/parser.py [--heldout-misses]``.
Held-back misses are not printed by default: that corpus is for measuring, not for tuning.
"""

from __future__ import annotations

import json
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from khaacho.orders.catalog_csv import load_catalog_rows  # noqa: E402
from khaacho.orders.matcher import Catalog, OrderLine, read_order  # noqa: E402

CATALOG = ROOT / "khaacho" / "data" / "demo_catalog.csv"
DATASET = ROOT / "tests" / "data" / "orders.json"
HELDOUT = ROOT / "tests" / "data" / "orders-heldout.json"
TARGETS = {DATASET: 0.95, HELDOUT: 0.97}
TIMED_MESSAGE = (
    "Namaste dai, malai 20 kg chamal, 5 kg musuro dal ra 2 litre tori ko tel, suger 5kg pathaidinus"
)


def _same(expected: dict, got: OrderLine) -> bool:
    if expected["sku"] != got.sku or expected["unit"] != got.unit:
        return False
    if abs(float(expected["quantity"]) - got.quantity) >= 1e-6:
        return False
    offered = {product.sku for product in got.candidates}
    return set(expected.get("candidates", ())) <= offered


def _show(item: dict | OrderLine) -> str:
    if isinstance(item, OrderLine):
        asked = f" asked {[p.sku for p in item.candidates]}" if item.sku is None else ""
        return f"({item.sku}, {item.quantity:g}, {item.unit}){asked}"
    flag = " ambiguous" if item.get("ambiguous") else ""
    return f"({item['sku']}, {item['quantity']:g}, {item['unit']}){flag}"


def score_message(expected: list[dict], got: list[OrderLine]) -> tuple[int, list[dict], list[OrderLine]]:
    """True positives, expected items not read, and items read that were not expected."""
    unmatched = list(got)
    missed = []
    for item in expected:
        hit = next((line for line in unmatched if _same(item, line)), None)
        if hit is None:
            missed.append(item)
        else:
            unmatched.remove(hit)
    return len(expected) - len(missed), missed, unmatched


def evaluate(catalog: Catalog, cases: list[dict]) -> dict:
    """Item-level counts over a corpus, with each message that was not read perfectly."""
    tp = n_expected = n_got = asked_expected = asked_right = 0
    misses = []
    for case in cases:
        got = read_order(case["text"], catalog)
        hits, missed, extra = score_message(case["items"], got)
        tp, n_expected, n_got = tp + hits, n_expected + len(case["items"]), n_got + len(got)
        ambiguous = [item for item in case["items"] if item.get("ambiguous")]
        asked_expected += len(ambiguous)
        asked_right += len([item for item in ambiguous if item not in missed])
        if missed or extra:
            misses.append({"text": case["text"], "missed": missed, "extra": extra})
    precision = tp / n_got if n_got else 1.0
    recall = tp / n_expected if n_expected else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "messages": len(cases), "expected": n_expected, "read": n_got, "correct": tp,
        "asked_expected": asked_expected, "asked_right": asked_right,
        "precision": precision, "recall": recall, "f1": f1, "misses": misses,
    }  # fmt: skip


def main() -> int:
    """Print the figures for both corpora (and the team corpus' misses); exit 1 when a target is missed."""
    catalog = Catalog(load_catalog_rows(CATALOG))
    failed = False
    for path, target in TARGETS.items():
        result = evaluate(catalog, json.loads(path.read_text(encoding="utf-8")))
        if path == DATASET or "--heldout-misses" in sys.argv:
            for miss in result["misses"]:
                print(f"MISS {miss['text']!r}")
                for item in miss["missed"]:
                    print(f"    expected, not read: {_show(item)}")
                for line in miss["extra"]:
                    print(f"    read, not expected: {_show(line)}")
        print(
            f"{path.name}: messages={result['messages']} items expected={result['expected']} "
            f"read={result['read']} correct={result['correct']} "
            f"asked-not-guessed={result['asked_right']}/{result['asked_expected']} "
            f"precision={result['precision']:.3f} recall={result['recall']:.3f} F1={result['f1']:.3f} "
            f"(target {target}, messages not read perfectly: {len(result['misses'])})"
        )
        failed = failed or result["f1"] < target
    runs = 2000
    seconds = timeit.timeit(lambda: read_order(TIMED_MESSAGE, catalog), number=runs)
    print(f"read_order on a 4-item message: {seconds / runs * 1000:.3f} ms/message ({runs} runs)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
