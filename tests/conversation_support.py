"""A shop talking to us: each step a signed webhook through the test client, each reply recorded.

The test client relays what a webhook stored and Huey runs in immediate mode, so by the time a
POST returns its message has been processed and any reply has reached the loopback provider.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from sqlalchemy import select
from werkzeug import Response

from khaacho.extensions import db
from khaacho.models import Order
from tests.kinds_support import post_kind
from tests.processing_support import META_PATH, TWILIO_PATH


@dataclass
class Sent:
    """One message we sent, as the provider received it."""

    provider: str
    body: str
    buttons: list[str] = field(default_factory=list)  # reply button ids (Meta)
    rows: list[tuple[str, str]] = field(default_factory=list)  # list rows (id, title) (Meta)
    raw: dict = field(default_factory=dict)
    provider_id: str = ""


class Chat:
    """One shop on one provider: ``say``, ``tap``… post signed webhooks; ``replies`` is what came back."""

    def __init__(self, app, httpserver, source: str = "whatsapp") -> None:
        self.app, self.source = app, source
        self.sent: list[Sent] = []
        self._seen = 0
        self._count = 0
        self._lock = threading.Lock()
        httpserver.expect_request(META_PATH, method="POST").respond_with_handler(self._meta)
        httpserver.expect_request(TWILIO_PATH, method="POST").respond_with_handler(self._twilio)

    def _record(self, sent: Sent) -> str:
        with self._lock:
            self.sent.append(sent)
            sent.provider_id = f"{'wamid.OUT' if sent.provider == 'whatsapp' else 'SMOUT'}{len(self.sent)}"
            return sent.provider_id

    def _meta(self, request) -> Response:
        message = request.get_json()
        interactive = message.get("interactive") or {}
        action = interactive.get("action") or {}
        body = (message.get("text") or {}).get("body") or (interactive.get("body") or {}).get("text") or ""
        sent = Sent("whatsapp", body, [b["reply"]["id"] for b in action.get("buttons", [])],
                    [(r["id"], r["title"]) for s in action.get("sections", []) for r in s["rows"]], message)
        return Response(json.dumps({"messages": [{"id": self._record(sent)}]}),
                        content_type="application/json")

    def _twilio(self, request) -> Response:
        form = request.form.to_dict()
        sid = self._record(Sent("twilio", form.get("Body", ""), raw=form))
        return Response(json.dumps({"sid": sid}), status=201, content_type="application/json")

    def replies(self) -> list[Sent]:
        """What we sent since the last call."""
        new, self._seen = self.sent[self._seen:], len(self.sent)
        return new

    def _next_id(self) -> str:
        self._count += 1
        return f"{'wamid.SHOP' if self.source == 'whatsapp' else 'SMSHOP'}{self._count:04d}"

    def say(self, text: str, context: str | None = None) -> str:
        """The shop writes ``text`` (replying to our message ``context``); its provider message id."""
        message_id = self._next_id()
        if self.source == "whatsapp":
            fields = {"context": {"from": "9779801000000", "id": context}} if context else {}
            post_kind(self.app, "whatsapp", "text", id=message_id, text={"body": text}, **fields)
        else:
            fields = {"OriginalRepliedMessageSid": context} if context else {}
            post_kind(self.app, "twilio", "text", MessageSid=message_id, Body=text, **fields)
        return message_id

    def tap(self, tapped_id: str, title: str = "Confirm") -> str:
        """The shop taps a reply button (or template quick reply) whose id is ``tapped_id``."""
        message_id = self._next_id()
        if self.source == "whatsapp":
            post_kind(self.app, "whatsapp", "button_reply", id=message_id,
                      interactive={"type": "button_reply", "button_reply": {"id": tapped_id, "title": title}})
        else:
            post_kind(self.app, "twilio", "button", MessageSid=message_id, ButtonPayload=tapped_id,
                      ButtonText=title, Body=title)
        return message_id

    def pick(self, row_id: str, title: str = "row") -> str:
        """The shop picks a list row (Meta)."""
        message_id = self._next_id()
        post_kind(self.app, "whatsapp", "list_reply", id=message_id,
                  interactive={"type": "list_reply", "list_reply": {"id": row_id, "title": title}})
        return message_id

    def edit(self, original: str, text: str) -> str:
        """The shop edits its message ``original`` to ``text`` (Meta)."""
        message_id = self._next_id()
        post_kind(self.app, "whatsapp", "edit", id=message_id,
                  edit={"original_message_id": original, "message": {"type": "text", "text": {"body": text}}})
        return message_id

    def delete(self, original: str) -> str:
        """The shop deletes its message ``original`` for everyone (Meta)."""
        message_id = self._next_id()
        post_kind(self.app, "whatsapp", "revoke", id=message_id, revoke={"original_message_id": original})
        return message_id

    def orders(self) -> list[tuple[int, str, int, str]]:
        """Every order as (id, status, version, total)."""
        with self.app.app_context():
            return [(o.id, o.status, o.version, str(o.total))
                    for o in db.session.scalars(select(Order).order_by(Order.id))]
