"""Order-reading quality on tests/data/orders.json against the demo catalog: precision, recall, F1, misses.

Run from the repository root: ``.venv/bin/python bench/parser.py``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from khaacho.orders.catalog_csv import load_catalog_rows  # noqa: E402
from khaacho.orders.matcher import Catalog, read_order  # noqa: E402

CATALOG = ROOT / "khaacho" / "data" / "demo_catalog.csv"
DATASET = ROOT / "tests" / "data" / "orders.json"

Item = tuple[str | None, float, str | None]


def _same(a: Item, b: Item) -> bool:
    return a[0] == b[0] and a[2] == b[2] and abs(a[1] - b[1]) < 1e-6


def score_message(expected: list[Item], got: list[Item]) -> tuple[int, list[Item], list[Item]]:
    """True positives, expected items not read, and items read that were not expected."""
    unmatched = list(got)
    missed = []
    for item in expected:
        hit = next((candidate for candidate in unmatched if _same(item, candidate)), None)
        if hit is None:
            missed.append(item)
        else:
            unmatched.remove(hit)
    return len(expected) - len(missed), missed, unmatched


def evaluate(catalog: Catalog, cases: list[dict]) -> dict:
    """Item-level counts over the dataset, with each message that was not read perfectly."""
    tp = n_expected = n_got = 0
    misses = []
    for case in cases:
        expected = [(item["sku"], float(item["quantity"]), item["unit"]) for item in case["items"]]
        got = [(line.sku, line.quantity, line.unit) for line in read_order(case["text"], catalog)]
        hits, missed, extra = score_message(expected, got)
        tp, n_expected, n_got = tp + hits, n_expected + len(expected), n_got + len(got)
        if missed or extra:
            misses.append({"text": case["text"], "missed": missed, "extra": extra})
    precision = tp / n_got if n_got else 1.0
    recall = tp / n_expected if n_expected else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "messages": len(cases),
        "expected": n_expected,
        "read": n_got,
        "correct": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "misses": misses,
    }


def main() -> int:
    """Print the summary and the misses; exit 1 when F1 is under 0.95."""
    catalog = Catalog(load_catalog_rows(CATALOG))
    cases = json.loads(DATASET.read_text(encoding="utf-8"))
    started = time.perf_counter()
    result = evaluate(catalog, cases)
    per_message_ms = (time.perf_counter() - started) * 1000 / max(len(cases), 1)
    for miss in result["misses"]:
        print(f"MISS {miss['text']!r}")
        for item in miss["missed"]:
            print(f"    expected, not read: {item}")
        for item in miss["extra"]:
            print(f"    read, not expected: {item}")
    print(
        f"messages={result['messages']} items expected={result['expected']} read={result['read']} "
        f"correct={result['correct']} precision={result['precision']:.3f} recall={result['recall']:.3f} "
        f"F1={result['f1']:.3f} ({per_message_ms:.3f} ms/message)"
    )
    return 0 if result["f1"] >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
