"""``/dashboard/orders…``, ``/dashboard/attention`` and ``/dashboard/shops``: the order desk's pages."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from khaacho.auth.decorators import admin_required
from khaacho.desk import attention, export, orders, shops
from khaacho.desk.filters import (
    MAX_ID,
    BadFilter,
    OrderFilters,
    day_range,
    parse_day,
    parse_status,
    search_text,
)
from khaacho.desk.status import DESK_STATUSES, NoSuchOrder, NotAllowed, change_status, notice_note
from khaacho.extensions import db
from khaacho.models import ORDER_STATUSES, Product, ReplyStatus
from khaacho.orders import lifecycle

bp = Blueprint("desk", __name__)
ORDER_ID = f"<int(max={MAX_ID}):order_id>"


@bp.errorhandler(BadFilter)
def bad_filter(error: BadFilter) -> ResponseReturnValue:
    """A filter the desk cannot read is the operator's to fix: 400 with what was wrong."""
    return Response(f"Bad request: {error}\n", 400, mimetype="text/plain")


def _list_context() -> dict:
    filters = OrderFilters.from_args(request.args)
    now = datetime.now(UTC)
    today = now.date().isoformat()
    csv_args = {"from": filters.start.isoformat() if filters.start else today,
                "to": filters.end.isoformat() if filters.end else today}
    if filters.status:
        csv_args["status"] = filters.status
    return {"filters": filters, "page": orders.page_of(filters), "now": now, "statuses": ORDER_STATUSES,
            "csv_args": csv_args}


@bp.get("/dashboard/orders")
@login_required
def order_list() -> ResponseReturnValue:
    """The orders, newest first, filtered; the first page refreshes itself."""
    return render_template("orders.html", **_list_context())


@bp.get("/dashboard/orders/live")
@login_required
def orders_live() -> ResponseReturnValue:
    """The first page of the list alone, swapped in out of band by the page's one poll."""
    return render_template("_orders.html", oob=True, **_list_context())


@bp.get(f"/dashboard/orders/{ORDER_ID}")
@login_required
def order_detail(order_id: int) -> ResponseReturnValue:
    """One order: items, versions, the conversation, the shop, the ops actions and the status buttons."""
    return _order_page(order_id)


def _order_page(order_id: int, status: int = 200) -> ResponseReturnValue:
    view = orders.order_view(order_id)
    if view is None:
        abort(404)
    moves = [s for s in lifecycle.targets(view.order.status) if s in DESK_STATUSES]
    return render_template("order.html", view=view, order=view.order, moves=moves,
                           map_link=orders.map_link(view.shop), action_text=orders.action_text,
                           now=datetime.now(UTC)), status


@bp.post(f"/dashboard/orders/{ORDER_ID}/status")
@admin_required
def order_status(order_id: int) -> ResponseReturnValue:
    """Move the order (form fields ``status``, ``note``); 409 and no change when the move is not allowed."""
    new = request.form.get("status", "")
    if new not in ORDER_STATUSES:
        abort(400)
    try:
        moved = change_status(order_id, new, request.form.get("note"), current_user.id)
    except NoSuchOrder:
        abort(404)
    except NotAllowed as exc:
        flash(f"Nothing changed: {exc}.", "warn")
        return _order_page(order_id, 409)
    flash(f"Order #{order_id} is now {moved.new}; {notice_note(moved)}.",
          "warn" if moved.notice == ReplyStatus.NEEDS_TEMPLATE else "ok")
    return redirect(url_for("desk.order_detail", order_id=order_id))


@bp.get("/dashboard/orders.csv")
@login_required
def orders_csv() -> ResponseReturnValue:
    """The orders of the days from ``from`` to ``to`` (inclusive, UTC) as CSV, one row per item."""
    start, end = parse_day(request.args.get("from"), "from"), parse_day(request.args.get("to"), "to")
    if start is None or end is None:
        raise BadFilter("from and to are both required")
    status = parse_status(request.args.get("status"))
    day_range(start, end)
    name = f"orders-{start.isoformat()}-{end.isoformat()}{'-' + status if status else ''}.csv"
    return Response(stream_with_context(export.stream(start, end, status)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/dashboard/attention")
@login_required
def attention_page() -> ResponseReturnValue:
    """Media orders, unmatched lines (with the alias form for admins) and expired clarifications."""
    return render_template("attention.html", media=attention.media_messages(),
                           unmatched=attention.unmatched(), expired=attention.expired_clarifications(),
                           products=attention.active_products(),
                           now=datetime.now(UTC))


def _alias_request() -> tuple[str, Product]:
    words = search_text(request.values.get("words"))[:attention.MAX_ALIAS]
    try:
        product = db.session.get(Product, int(request.values.get("product_id", "")))
    except ValueError:
        product = None
    if not words or product is None or not product.active:
        abort(400)
    return words, product


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@bp.get("/dashboard/attention/alias")
@admin_required
def alias_confirm() -> ResponseReturnValue:
    """Before mapping: how many waiting messages (and lines) the new alias re-reads."""
    words, product = _alias_request()
    groups = attention.unmatched(words)
    return render_template("alias_confirm.html", words=words, product=product,
                           group=groups[0] if groups else None, now=datetime.now(UTC))


@bp.post("/dashboard/attention/alias")
@admin_required
def alias_learn() -> ResponseReturnValue:
    """Add the words as an alias of the product and re-read the waiting lines that say them, once."""
    words, product = _alias_request()
    learned = attention.learn_alias(words, product.id, current_user.id)
    flash(f"“{learned.words}” now means {learned.product.name}: "
          f"re-read {_count(learned.messages, 'waiting message')} "
          f"({_count(learned.lines, 'line')} in {_count(learned.orders, 'order')}).", "ok")
    return redirect(url_for("desk.attention_page"))


@bp.get("/dashboard/shops")
@login_required
def shop_list() -> ResponseReturnValue:
    """Every shop: name, phone, location, orders, last order and this month's total."""
    q = search_text(request.args.get("q"))
    try:
        offset = max(0, min(int(request.args.get("offset", 0)), 1_000_000))
    except ValueError:
        offset = 0
    rows, more = shops.shop_rows(q, offset)
    return render_template("shops.html", rows=rows, more=more, q=q, offset=offset, per_page=shops.PER_PAGE,
                           map_link=orders.map_link, now=datetime.now(UTC))
