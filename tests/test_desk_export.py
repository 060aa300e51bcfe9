"""The orders CSV (dashboard and ``flask orders export``) and ``flask orders status`` from a terminal."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from khaacho.desk.export import HEADER
from khaacho.extensions import db
from khaacho.models import OpsAction, Order, OutboundMessage
from tests.desk_support import add_order, add_shop, order_status, signed_in
from tests.processing_support import meta_ok, provider_requests

HEADER_LINE = ("order_id,created_at,status,shop_phone,shop_name,sku,product,quantity,unit,unit_price,amount,"
               "order_total")


def _day(days_ago: int, hour: int = 12) -> datetime:
    today = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def _table(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_the_contract_header_one_row_per_item_and_totals_that_add_up(shop):
    hari = add_shop(shop)
    two_lines = add_order(shop, hari, text="10 kg chini\n5 kg musuro dal", at=_day(1))
    one_line = add_order(shop, hari, text="3 packet wai wai", at=_day(1, hour=23), status="delivered")
    day = _day(1).date()
    response = signed_in(shop, "viewer").get(f"/dashboard/orders.csv?from={day}&to={day}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    assert text.splitlines()[0] == HEADER_LINE
    assert tuple(HEADER_LINE.split(",")) == HEADER
    rows = _table(text)
    assert [r["order_id"] for r in rows] == [str(two_lines), str(two_lines), str(one_line)]
    for order_id in {two_lines, one_line}:
        lines = [r for r in rows if r["order_id"] == str(order_id)]
        amounts = sum(Decimal(r["amount"]) for r in lines)
        assert all(Decimal(r["order_total"]) == amounts for r in lines)
        for r in lines:
            assert Decimal(r["amount"]) == Decimal(r["quantity"]) * Decimal(r["unit_price"])
    first = rows[0]
    assert first["shop_name"] == "Hari Kirana Pasal" and first["status"] == "confirmed"
    assert first["created_at"].endswith("Z") and first["sku"] and first["product"]
    assert first["quantity"] == "10" and first["unit"] == "kg"


def test_csv_days_are_inclusive_in_utc_and_the_status_filters(shop):
    hari = add_shop(shop)
    before = add_order(shop, hari, text="1 kg chini", at=_day(3, hour=23))
    first_minute = add_order(shop, hari, text="1 kg chini", at=_day(2, hour=0))
    last_minute = add_order(shop, hari, text="1 kg chini", at=_day(1, hour=23), status="delivered")
    after = add_order(shop, hari, text="1 kg chini", at=_day(0, hour=0))
    client = signed_in(shop, "viewer")
    span = f"from={_day(2).date()}&to={_day(1).date()}"
    ids = {r["order_id"] for r in _table(client.get(f"/dashboard/orders.csv?{span}").get_data(as_text=True))}
    assert ids == {str(first_minute), str(last_minute)} and str(before) not in ids and str(after) not in ids
    delivered = _table(client.get(f"/dashboard/orders.csv?{span}&status=delivered").get_data(as_text=True))
    assert [r["order_id"] for r in delivered] == [str(last_minute)]


@pytest.mark.parametrize("query", ["", "from=2026-12-01", "from=2026-12-01&to=tomorrow",
                                   "from=2026-12-05&to=2026-12-01",
                                   "from=2026-12-01&to=2026-12-02&status=lost"])
def test_csv_without_a_readable_range_is_400(shop, query):
    assert signed_in(shop, "viewer").get(f"/dashboard/orders.csv?{query}").status_code == 400


def test_csv_cells_cannot_run_as_spreadsheet_formulas(shop):
    evil = add_shop(shop, "+9779800000001", '=HYPERLINK("http://x.example","click")')
    first = add_order(shop, evil, text="2 kg chini", at=_day(1))
    with shop.app_context():
        db.session.get(Order, first).items[0].product.name = "@SUM(1+1)"
        db.session.commit()
    add_order(shop, evil, text="1 kg chini", at=_day(1))
    text = signed_in(shop, "viewer").get(f"/dashboard/orders.csv?from={_day(1).date()}&to={_day(1).date()}")
    rows = _table(text.get_data(as_text=True))
    assert rows and all(r["shop_name"] == "'" + '=HYPERLINK("http://x.example","click")' for r in rows)
    for row in rows:
        for name, value in row.items():
            assert not value.startswith(("=", "+", "-", "@")), (name, value)
    assert rows[0]["shop_phone"] == "'+9779800000001" and rows[0]["product"] == "'@SUM(1+1)"


def test_export_command_writes_the_same_csv_to_a_file_or_stdout(shop, tmp_path):
    hari = add_shop(shop)
    add_order(shop, hari, text="10 kg chini\n5 kg musuro dal", at=_day(1))
    day = _day(1).date().isoformat()
    web = signed_in(shop, "viewer").get(f"/dashboard/orders.csv?from={day}&to={day}").get_data(as_text=True)
    runner = shop.test_cli_runner()
    out = tmp_path / "orders.csv"
    result = runner.invoke(args=["orders", "export", "--from", day, "--to", day, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().decode("utf-8") == web
    printed = runner.invoke(args=["orders", "export", "--from", day, "--to", day, "--status", "confirmed"])
    assert printed.exit_code == 0 and printed.stdout.replace("\r\n", "\n") == web.replace("\r\n", "\n")
    refused = runner.invoke(args=["orders", "export", "--from", day, "--to", "2000-01-01"])
    assert refused.exit_code != 0


def test_status_command_moves_the_order_tells_the_shop_and_records_the_action(shop, httpserver):
    meta_ok(httpserver)
    order = add_order(shop, add_shop(shop))
    runner = shop.test_cli_runner()
    result = runner.invoke(args=["orders", "status", str(order), "dispatched", "--note", "van 2"])
    assert result.exit_code == 0, result.output
    assert "confirmed -> dispatched; the shop is told" in result.output
    assert order_status(shop, order) == "dispatched"
    with shop.app_context():
        action = db.session.query(OpsAction).filter_by(order_id=order).one()
        assert action.user_id is None and "van 2" in action.detail
        assert db.session.query(OutboundMessage).filter_by(order_id=order, kind="status_update").count() == 1
    assert len(provider_requests(httpserver)) == 1

    again = runner.invoke(args=["orders", "status", str(order), "dispatched"])
    assert again.exit_code != 0 and "nothing changed" in again.output
    assert len(provider_requests(httpserver)) == 1


def test_status_command_refuses_unknown_orders_and_disallowed_moves(shop, httpserver):
    order = add_order(shop, add_shop(shop), status="pending")
    runner = shop.test_cli_runner()
    assert runner.invoke(args=["orders", "status", "424242", "confirmed"]).exit_code != 0
    refused = runner.invoke(args=["orders", "status", str(order), "delivered"])
    assert refused.exit_code != 0
    assert runner.invoke(args=["orders", "status", str(order), "expired"]).exit_code != 0
    assert order_status(shop, order) == "pending"
    with shop.app_context():
        assert db.session.get(Order, order).version == 1
        assert db.session.query(OpsAction).count() == 0
    assert provider_requests(httpserver) == []


def test_csv_cells_are_written_alike_on_both_backends(shop):
    """Quantities without trailing zeros, paisa rounded half to even, UTC seconds, quoting as csv does."""
    name = 'Sita "Ama" Pasal, सिता किराना'
    sita = add_shop(shop, "+9779800000002", name)
    at = _day(1).replace(hour=6, minute=7, second=8, microsecond=999999)
    order = add_order(shop, sita, text="2.5 kg chini\n10 kg musuro dal", at=at)
    with shop.app_context():
        chini = db.session.get(Order, order).items[0]
        chini.unit_price = Decimal("0.25")  # 2.5 x 0.25 = 0.625: half to even is 0.62, half up 0.63
        db.session.commit()
    day = at.date().isoformat()
    text = signed_in(shop, "viewer").get(f"/dashboard/orders.csv?from={day}&to={day}").get_data(as_text=True)
    lines = text.split("\r\n")
    assert lines[0] == HEADER_LINE and lines[-1] == ""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    shop_cells = "'+9779800000002,\"Sita \"\"Ama\"\" Pasal, सिता किराना\""
    with shop.app_context():
        placed = db.session.get(Order, order)
        chini, dal = placed.items
        total = format(placed.total, ".2f")
        assert lines[1:3] == [
            f"{order},{stamp},confirmed,{shop_cells},{chini.product.sku},{chini.product.name},2.5,kg,0.25,0.62,"
            f"{total}",
            f"{order},{stamp},confirmed,{shop_cells},{dal.product.sku},{dal.product.name},10,kg,{dal.unit_price},"
            f"{format(10 * dal.unit_price, '.2f')},{total}",
        ]
    assert len(lines) == 4
