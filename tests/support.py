"""Helpers for building and signing provider webhooks in tests."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path

from twilio.request_validator import RequestValidator

SAMPLES = Path(__file__).resolve().parent / "data" / "samples"
META_PATH = "/api/v1/whatsapp-hardened/webhook"
TWILIO_PATH = "/api/v1/whatsapp-hardened/twilio/webhook"
META_TEXT = {
    "object": "whatsapp_business_account",
    "entry": [{"id": "103984562201876", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "9779801000000", "phone_number_id": "112233445566778"},
        "contacts": [{"profile": {"name": "Hari Kirana Pasal"}, "wa_id": "9779841234567"}],
        "messages": [],
    }}]}],
}


def meta_signature(body: bytes, secret: str = "test-app-secret") -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def meta_text_payload(text: str, message_id: str, sender: str = "9779841234567",
                      timestamp: int | None = None) -> dict:
    """A Meta webhook with one text message."""
    payload = copy.deepcopy(META_TEXT)
    payload["entry"][0]["changes"][0]["value"]["messages"] = [{
        "from": sender, "id": message_id, "timestamp": str(timestamp or int(time.time())),
        "type": "text", "text": {"body": text},
    }]
    return payload


def signed_meta(payload: dict | bytes, secret: str = "test-app-secret") -> tuple[bytes, dict]:
    """Body bytes and headers of a correctly signed Meta webhook."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body, secret)}


def signed_twilio(url: str, params: dict, token: str = "test-twilio-token") -> dict:
    """Headers of a Twilio form POST signed for the public ``url``."""
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20, logs: list | None = None) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` (with the tail of ``logs``' output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    detail = "\n".join(proc.output()[-3000:] for proc in logs or [])
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail}")
