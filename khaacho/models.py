"""Database tables named in the public contract."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ColumnElement,
    Index,
    Integer,
    UniqueConstraint,
    event,
    literal_column,
)
from sqlalchemy import text as sa_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import NO_VALUE
from werkzeug.security import check_password_hash, generate_password_hash

from khaacho.extensions import db

# BIGINT on PostgreSQL, but SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# JSONB on PostgreSQL: the stats sum histogram elements in SQL, and jsonb is not re-parsed per access.
Json = JSON().with_variant(JSONB(), "postgresql")


class MessageStatus(StrEnum):
    """What became of a received message: ``webhook_messages.status``, for every layer to share."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"  # will retry
    DEAD = "dead"  # retries exhausted
    RATE_LIMITED = "rate_limited"
    STALE = "stale"
    IGNORED = "ignored"  # nothing to do; error_message says why
    NEEDS_ATTENTION = "needs_attention"  # for a person: a photo, voice note or document


MESSAGE_STATUSES = tuple(status.value for status in MessageStatus)
# A message in one of these may still take effect: a later message of its sender waits for it.
UNFINISHED = ("queued", "processing", "failed")
# What a replay (CLI, dashboard, one message or in bulk) may re-queue.
REPLAYABLE_STATUSES = tuple(s.value for s in (MessageStatus.DEAD, MessageStatus.FAILED,
                                               MessageStatus.RATE_LIMITED, MessageStatus.STALE))
# outbound_messages.kind: what a reply is.
REPLY_KINDS = ("confirmation", "clarification", "status_update", "acknowledgement", "help", "price")
CONFIRMATION, CLARIFICATION, STATUS_UPDATE, ACKNOWLEDGEMENT, HELP, PRICE = REPLY_KINDS
SOURCES = ("whatsapp", "twilio")
# PostgreSQL channel on which intake announces newly stored ``queued`` messages to the relay.
INTAKE_CHANNEL = "khaacho_intake"
ROLES = ("admin", "viewer")


class OrderStatus(StrEnum):
    """``orders.status``: pending until the shop confirms; the desk moves confirmed orders on."""

    PENDING = "pending"  # waiting for the shop's confirmation
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # not confirmed within ORDER_CONFIRM_HOURS
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"


ORDER_STATUSES = tuple(status.value for status in OrderStatus)


class ReplyStatus(StrEnum):
    """``outbound_messages.status``: where a reply is on its way to the shop."""

    PENDING = "pending"  # to send
    SENDING = "sending"  # in flight: never resent
    SENT = "sent"
    FAILED = "failed"  # permanent
    UNKNOWN = "unknown"  # a worker died mid-send
    HELD = "held"  # replies are paused
    NEEDS_TEMPLATE = "needs_template"  # outside the 24-hour window and no template configured


def utcnow() -> datetime:
    """Timezone-aware now in UTC (stored as naive UTC on SQLite)."""
    return datetime.now(UTC)


def dialect_insert(dialect: str, table):
    """An ``INSERT`` that takes ``on_conflict_do_*`` on both backends (PostgreSQL's unless SQLite)."""
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)


_NAME = re.compile(r"[a-z_]+")  # what one_of writes into SQL: a status, never input


def one_of(column: ColumnElement, values: Iterable[str]) -> ColumnElement[bool]:
    """``column IN ('a', 'b')``: fixed names (statuses) written into the SQL as constants.

    Not parameters, for two reasons. SQLAlchemy binds a plain list as one expanding parameter,
    whose SQL is rendered again on every execution: measurable on the worker's statements, which
    run for every message. And psycopg prepares a statement run five times on a connection;
    PostgreSQL's generic plan for it can use a partial index (``WHERE status IN (…)``) only when
    the statement names the same constants, not parameters whose values it does not know.
    """
    names = [str(value) for value in values]
    if not all(_NAME.fullmatch(name) for name in names):
        raise ValueError(f"not fixed names: {names!r}")
    return column.in_([literal_column(f"'{name}'", column.type) for name in names])


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


class WebhookMessage(db.Model):
    """One row per distinct provider message, however often it was delivered."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        UniqueConstraint("webhook_source", "message_id"),
        CheckConstraint(f"status IN {_in(MESSAGE_STATUSES)}", name="status"),
        Index("ix_webhook_messages_status_created_at", "status", "created_at"),
        # Append-only in created_at order: a BRIN index is a few pages and nearly free to maintain.
        Index("ix_webhook_messages_created_at", "created_at", postgresql_using="brin"),
        # An order's conversation: its sender's messages in time order.
        Index("ix_webhook_messages_sender_id_created_at", "sender_id", "created_at"),
        # The relay's claim: queued rows not yet handed to the queue, oldest first; small, since
        # a row leaves it as soon as it is relayed.
        Index("ix_webhook_messages_unrelayed", "id",
              postgresql_where=sa_text("status = 'queued' AND relayed_at IS NULL"),
              sqlite_where=sa_text("status = 'queued' AND relayed_at IS NULL")),
        # Per-shop order: a message waits while an older one of its sender is unfinished.
        Index("ix_webhook_messages_sender_unfinished", "sender_id", "id",
              postgresql_where=sa_text(f"status IN {_in(UNFINISHED)}"),
              sqlite_where=sa_text(f"status IN {_in(UNFINISHED)}")),
    )

    id = db.Column(BigId, primary_key=True)
    message_id = db.Column(db.String(255), nullable=False)
    webhook_source = db.Column(db.String(16), nullable=False)
    phone_number = db.Column(db.String(32))
    sender_id = db.Column(db.String(128), nullable=False)  # E.164 phone, or Meta's user id
    message_type = db.Column(db.String(32), nullable=False, default="text")
    message_text = db.Column(db.Text)
    payload = db.Column(db.JSON)
    status = db.Column(db.String(16), nullable=False, default="queued")
    response_time_ms = db.Column(db.Float)
    duplicate_count = db.Column(db.Integer, nullable=False, default=0)
    message_timestamp = db.Column(db.DateTime(timezone=True))
    first_received_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    last_duplicate_at = db.Column(db.DateTime(timezone=True))
    attempts = db.Column(db.Integer, nullable=False, default=0)
    error_message = db.Column(db.Text)
    error_count = db.Column(db.Integer, nullable=False, default=0)
    next_attempt_at = db.Column(db.DateTime(timezone=True))  # when a `failed` message is retried
    request_id = db.Column(db.String(64))
    # The provider id of the message this one replies to, edits, deletes or reacts to (set by the worker).
    context_message_id = db.Column(db.String(255))
    processed_at = db.Column(db.DateTime(timezone=True))
    relayed_at = db.Column(db.DateTime(timezone=True))  # when the relay (or the sweep) queued it
    updated_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)

    order = db.relationship("Order", back_populates="message", uselist=False)
    reply = db.relationship("OutboundMessage", back_populates="message", uselist=False)


class WebhookSignatureLog(db.Model):
    """Audit of webhook requests; repeated invalid ones from one IP fold into a counted row."""

    __tablename__ = "webhook_signature_log"
    __table_args__ = (
        Index("ix_webhook_signature_log_created_at", "created_at", postgresql_using="brin"),
        # Only invalid rows are looked up by IP (folding, suspicious IPs): valid ones skip this index.
        # The predicate is spelled as SQLAlchemy renders ``is_valid.is_(False)`` so planners match it.
        Index("ix_webhook_signature_log_client_ip_created_at", "client_ip", "created_at",
              postgresql_where=sa_text("is_valid IS false"), sqlite_where=sa_text("is_valid IS 0")),
    )

    id = db.Column(BigId, primary_key=True)
    webhook_source = db.Column(db.String(16), nullable=False)
    endpoint = db.Column(db.String(255), nullable=False)
    is_valid = db.Column(db.Boolean, nullable=False)
    reason = db.Column(db.String(255))
    client_ip = db.Column(db.String(64))
    request_count = db.Column(db.Integer, nullable=False, default=1)
    response_ms = db.Column(db.Float)  # an accepted request's time until its store; None when rejected
    last_seen_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)


class WebhookRateLimit(db.Model):
    """Requests and blocks per sender and rate-limit window."""

    __tablename__ = "webhook_rate_limits"
    __table_args__ = (
        UniqueConstraint("phone_number", "window_start"),
        Index("ix_webhook_rate_limits_window_start", "window_start"),
    )

    id = db.Column(BigId, primary_key=True)
    phone_number = db.Column(db.String(128), nullable=False)  # the sender key
    window_start = db.Column(db.DateTime(timezone=True), nullable=False)
    request_count = db.Column(db.Integer, nullable=False, default=0)
    blocked_count = db.Column(db.Integer, nullable=False, default=0)
    updated_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)


class WebhookPerformanceMetric(db.Model):
    """Per-minute rollup of request timings for one endpoint, flushed by each web worker."""

    __tablename__ = "webhook_performance_metrics"
    __table_args__ = (
        Index("ix_webhook_performance_metrics_bucket_start", "bucket_start"),
        Index("ix_webhook_performance_metrics_created_at", "created_at"),
    )

    id = db.Column(BigId, primary_key=True)
    endpoint_path = db.Column(db.String(255), nullable=False)
    webhook_source = db.Column(db.String(16), nullable=False)
    bucket_start = db.Column(db.DateTime(timezone=True), nullable=False)
    request_count = db.Column(db.Integer, nullable=False, default=0)
    success_count = db.Column(db.Integer, nullable=False, default=0)
    total_ms = db.Column(db.Float, nullable=False, default=0.0)
    max_ms = db.Column(db.Float, nullable=False, default=0.0)
    histogram = db.Column(Json, nullable=False, default=list)  # counts per latency bucket
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)


class Shop(db.Model):
    """One WhatsApp customer, known by phone, by business-scoped user id, or both.

    Upserted by the worker for every message it processes (see ``khaacho.processing.shops``).
    """

    __tablename__ = "shops"

    id = db.Column(BigId, primary_key=True)
    phone_number = db.Column(db.String(32), unique=True)  # E.164; NULLs do not collide
    user_id = db.Column(db.String(128), unique=True)
    profile_name = db.Column(db.String(255))
    latitude = db.Column(db.Float)
    longitude = db.Column(db.Float)
    address = db.Column(db.Text)
    last_inbound_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)


class Product(db.Model):
    """A catalog item a shopkeeper can order."""

    __tablename__ = "products"
    # The newest change is the catalog's version, read with every message (orders.catalog).
    __table_args__ = (Index("ix_products_updated_at", "updated_at"),)

    id = db.Column(db.Integer, primary_key=True)
    sku = db.Column(db.String(64), nullable=False, unique=True)
    name = db.Column(db.String(255), nullable=False)
    aliases = db.Column(db.Text, nullable=False, default="")  # separated by "|"
    unit = db.Column(db.String(16), nullable=False)
    price = db.Column(db.Numeric(10, 2), nullable=False)
    active = db.Column(db.Boolean, nullable=False, default=True)
    updated_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)


class Order(db.Model):
    """The order a message started; unique per message, so retries cannot double it.

    Later messages of the shop amend it while it is ``pending`` (``version`` counts them);
    transitions go through :mod:`khaacho.orders.lifecycle`.
    """

    __tablename__ = "orders"
    # The order desk pages newest first by (created_at, id): alone, within a status, or for a shop.
    # The worker finds a shop's newest order in a status (its pending one) by (shop_id, status, id).
    __table_args__ = (
        Index("ix_orders_shop_id_status_id", "shop_id", "status", "id"),
        Index("ix_orders_created_at_id", "created_at", "id"),
        Index("ix_orders_status_created_at_id", "status", "created_at", "id"),
        Index("ix_orders_shop_id_created_at_id", "shop_id", "created_at", "id"),
        Index("ix_orders_status_updated_at", "status", "updated_at"),
        CheckConstraint(f"status IN {_in(ORDER_STATUSES)}", name="status"),
    )

    id = db.Column(BigId, primary_key=True)
    webhook_message_id = db.Column(
        BigId, db.ForeignKey("webhook_messages.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    shop_id = db.Column(BigId, db.ForeignKey("shops.id", ondelete="SET NULL"))
    phone_number = db.Column(db.String(128))
    status = db.Column(db.String(16), nullable=False, default=OrderStatus.PENDING.value)
    version = db.Column(db.Integer, nullable=False, default=1, server_default="1")
    language = db.Column(db.String(8), nullable=False, default="en", server_default="en")  # en or ne
    total = db.Column(db.Numeric(12, 2), nullable=False, default=0)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)

    message = db.relationship("WebhookMessage", back_populates="order")
    items = db.relationship(
        "OrderItem", back_populates="order", cascade="all, delete-orphan", order_by="OrderItem.id"
    )


class OrderItem(db.Model):
    """One line of an order; unmatched lines are kept with no product for the reply."""

    __tablename__ = "order_items"
    # The attention page's lines no product matched; a small index, since most lines match.
    __table_args__ = (
        Index("ix_order_items_unmatched", "order_id",
              postgresql_where=sa_text("product_id IS NULL"), sqlite_where=sa_text("product_id IS NULL")),
    )

    id = db.Column(BigId, primary_key=True)
    order_id = db.Column(BigId, db.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True)
    product_id = db.Column(db.Integer, db.ForeignKey("products.id", ondelete="SET NULL"))
    quantity = db.Column(db.Numeric(12, 3), nullable=False)
    unit = db.Column(db.String(16))
    unit_price = db.Column(db.Numeric(10, 2))
    raw_text = db.Column(db.Text, nullable=False)
    # The message the line came from (an edit of it re-reads its lines).
    webhook_message_id = db.Column(BigId, db.ForeignKey("webhook_messages.id", ondelete="SET NULL"),
                                   index=True)
    # Product ids the shop is asked to choose from while ``product_id`` is NULL.
    candidates = db.Column(db.JSON)

    order = db.relationship("Order", back_populates="items")
    product = db.relationship("Product")


class OutboundMessage(db.Model):
    """A message to a shop: the one reply to a processed message, or a notice; and its delivery status.

    A reply is unique per message it answers; a notice (no message) is unique by ``dedup_key``
    (its order and status), so each is sent once per trigger.
    """

    __tablename__ = "outbound_messages"
    __table_args__ = (
        Index("ix_outbound_messages_provider_message_id", "provider_message_id"),
        Index("ix_outbound_messages_created_at", "created_at"),
    )

    id = db.Column(BigId, primary_key=True)
    webhook_message_id = db.Column(
        BigId, db.ForeignKey("webhook_messages.id", ondelete="CASCADE"), unique=True
    )
    dedup_key = db.Column(db.String(128), unique=True)
    order_id = db.Column(BigId, db.ForeignKey("orders.id", ondelete="SET NULL"), index=True)
    shop_id = db.Column(BigId, db.ForeignKey("shops.id", ondelete="SET NULL"), index=True)
    kind = db.Column(db.String(32))  # one of REPLY_KINDS; NULL for replies sent before kinds were kept
    provider = db.Column(db.String(16), nullable=False)
    recipient = db.Column(db.String(128), nullable=False)
    body = db.Column(db.Text, nullable=False)
    # What goes with the text: reply buttons, a list, or a template (see khaacho.replies.interactive).
    payload = db.Column(db.JSON)
    provider_message_id = db.Column(db.String(255))
    status = db.Column(db.String(16), nullable=False, default=ReplyStatus.PENDING.value)  # a ReplyStatus
    delivery_status = db.Column(db.String(16))  # sent, delivered, read, failed (from callbacks)
    delivery_error = db.Column(db.Text)
    attempts = db.Column(db.Integer, nullable=False, default=0)
    last_error = db.Column(db.Text)
    sent_at = db.Column(db.DateTime(timezone=True))
    updated_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)

    message = db.relationship("WebhookMessage", back_populates="reply")


class User(UserMixin, db.Model):
    """An ops user: admins may act, viewers may look."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN {_in(ROLES)}", name="role"),)

    id = db.Column(db.Integer, primary_key=True)
    email = db.Column(db.String(255), nullable=False, unique=True)
    password_hash = db.Column(db.String(255), nullable=False)
    role = db.Column(db.String(16), nullable=False, default="viewer")
    active = db.Column(db.Boolean, nullable=False, default=True)
    # Kept in the session at sign-in; a session whose number differs is no longer valid.
    session_generation = db.Column(db.Integer, nullable=False, default=1, server_default="1")
    last_login_at = db.Column(db.DateTime(timezone=True))
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)

    tokens = db.relationship("ApiToken", back_populates="user", cascade="all, delete-orphan")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def end_sessions(self) -> None:
        """Invalidate every session signed in before now (the caller commits)."""
        self.session_generation = (self.session_generation or 0) + 1

    @property
    def is_active(self) -> bool:
        return self.active

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)
        if self.id is not None:
            self.end_sessions()

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class ApiToken(db.Model):
    """A bearer token for the stats API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    token_hash = db.Column(db.String(64), nullable=False, unique=True)
    last_used_at = db.Column(db.DateTime(timezone=True))
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)

    user = db.relationship("User", back_populates="tokens")

    @staticmethod
    def hash(token: str) -> str:
        # Tokens are 256-bit random strings, so a fast unsalted hash is safe to look up by.
        return hashlib.sha256(token.encode()).hexdigest()


@event.listens_for(User.role, "set", active_history=True)
@event.listens_for(User.active, "set", active_history=True)
def _role_or_activity_changed(user: User, value: object, old: object, _initiator: object) -> None:
    # A demoted or deactivated user must not keep what an older session allowed.
    if user.id is not None and old is not NO_VALUE and value != old:
        user.end_sessions()


class LoginAttempt(db.Model):
    """A failed (or in-progress) sign-in, the shared state of login throttling across workers."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_created_at", "email", "created_at"),
        Index("ix_login_attempts_client_ip_created_at", "client_ip", "created_at"),
    )

    id = db.Column(BigId, primary_key=True)
    email = db.Column(db.String(255), nullable=False)
    client_ip = db.Column(db.String(64), nullable=False)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)


class TwilioTombstone(db.Model):
    """A Twilio MessageSid the retention cleanup deleted: 8 bytes of its hash, so a replay is stale."""

    __tablename__ = "twilio_tombstones"

    sid_hash = db.Column(db.BigInteger, primary_key=True, autoincrement=False)


class OpsAction(db.Model):
    """Something a person (or the CLI, with no user) did to messages or orders."""

    __tablename__ = "ops_actions"
    __table_args__ = (Index("ix_ops_actions_created_at", "created_at"),)

    id = db.Column(BigId, primary_key=True)
    user_id = db.Column(db.Integer, db.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    action = db.Column(db.String(32), nullable=False)
    order_id = db.Column(BigId, db.ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    detail = db.Column(db.Text)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)

    user = db.relationship("User")


class Switch(db.Model):
    """A pause switch shared by every process (``processing``, ``replies``)."""

    __tablename__ = "switches"

    name = db.Column(db.String(32), primary_key=True)
    paused = db.Column(db.Boolean, nullable=False, default=False)
    changed_by = db.Column(db.String(255))
    changed_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)


class Alert(db.Model):
    """One episode of an alert kind: raised, possibly posted, then cleared."""

    __tablename__ = "alerts"
    __table_args__ = (
        # At most one open episode per kind, whichever consumer evaluates.
        Index("uq_alerts_open_kind", "kind", unique=True,
              postgresql_where=sa_text("cleared_at IS NULL"), sqlite_where=sa_text("cleared_at IS NULL")),
        Index("ix_alerts_raised_at", "raised_at"),
    )

    id = db.Column(BigId, primary_key=True)
    kind = db.Column(db.String(32), nullable=False)
    summary = db.Column(db.Text, nullable=False)
    value = db.Column(db.Float, nullable=False, default=0.0)
    raised_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    last_seen_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    cleared_at = db.Column(db.DateTime(timezone=True))
    posted_at = db.Column(db.DateTime(timezone=True))  # when the raise was posted to ALERT_WEBHOOK_URL
    clear_posted_at = db.Column(db.DateTime(timezone=True))


class WorkerHeartbeat(db.Model):
    """One row per consumer process, touched every few seconds while it lives."""

    __tablename__ = "worker_heartbeats"

    consumer_id = db.Column(db.String(128), primary_key=True)
    hostname = db.Column(db.String(255), nullable=False)
    pid = db.Column(db.Integer, nullable=False)
    started_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    last_seen_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    stopped_at = db.Column(db.DateTime(timezone=True))
    tasks_done = db.Column(BigInteger, nullable=False, default=0)


class TaskTiming(db.Model):
    """Queue wait or run time of tasks, one histogram per consumer, kind and minute."""

    __tablename__ = "task_timings"
    __table_args__ = (Index("ix_task_timings_bucket_start", "bucket_start"),)

    id = db.Column(BigId, primary_key=True)
    consumer_id = db.Column(db.String(128), nullable=False)
    kind = db.Column(db.String(16), nullable=False)  # wait or run
    bucket_start = db.Column(db.DateTime(timezone=True), nullable=False)
    count = db.Column(db.Integer, nullable=False, default=0)
    total_ms = db.Column(db.Float, nullable=False, default=0.0)
    max_ms = db.Column(db.Float, nullable=False, default=0.0)
    histogram = db.Column(Json, nullable=False, default=list)


class RequestTotal(db.Model):
    """Webhook requests since the deployment began, folded in from the audit log by the worker."""

    __tablename__ = "webhook_request_totals"

    webhook_source = db.Column(db.String(16), primary_key=True)
    outcome = db.Column(db.String(16), primary_key=True)  # accepted or rejected
    bucket = db.Column(db.Integer, primary_key=True)  # ack-time bucket index; -1 for untimed requests
    request_count = db.Column(BigInteger, nullable=False, default=0)
    total_ms = db.Column(db.Float, nullable=False, default=0.0)


class MetricSnapshot(db.Model):
    """Counts too costly to take per scrape (rows by status), refreshed each minute by the worker."""

    __tablename__ = "metric_snapshots"

    name = db.Column(db.String(64), primary_key=True)
    label = db.Column(db.String(64), primary_key=True)
    value = db.Column(db.Float, nullable=False, default=0.0)
    taken_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
