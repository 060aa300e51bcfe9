"""HTTP to the providers: kept-alive connections per thread, timeouts and the error classes.

A reply is one small POST, sent with urllib3 (the connection pool requests is built on): the
worker sends one per message, and requests' preparation of each call (merging settings, hooks,
cookies, its type checks) cost the worker more CPU than the send itself.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from typing import NamedTuple

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

# (connect, read): a provider that does not answer in time is a retryable failure.
TIMEOUT = urllib3.Timeout(connect=3.05, read=10.0)

_local = threading.local()


class SendError(Exception):
    """A reply could not be sent; ``code`` is the provider's error code when it gave one."""

    def __init__(self, reason: str, code: int | str | None = None) -> None:
        super().__init__(reason)
        self.code = code


class RetryableSendError(SendError):
    """The provider may accept the reply if asked again later."""


class PermanentSendError(SendError):
    """Sending this reply again cannot succeed."""


class Response(NamedTuple):
    """A provider's answer: its HTTP status and body."""

    status_code: int
    data: bytes

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json(self) -> object:
        """The body as JSON (``ValueError`` when it is not)."""
        return json.loads(self.data)


def pools() -> dict[str, urllib3.PoolManager]:
    """This thread's connection pools by URL scheme, so connections to the provider are kept alive.

    Proxy settings are read from the environment once per thread, not on every request.
    """
    found = getattr(_local, "pools", None)
    if found is None:
        proxies = urllib.request.getproxies()
        found = _local.pools = {
            scheme: urllib3.ProxyManager(proxies[scheme], timeout=TIMEOUT, retries=False) if scheme in proxies
            else urllib3.PoolManager(timeout=TIMEOUT, retries=False)
            for scheme in ("http", "https")
        }
    return found


def post(url: str, *, json_body: dict | None = None, form: dict[str, str] | None = None,
         headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None) -> Response:
    """POST a JSON or form body with the send timeouts; network failures become ``RetryableSendError``."""
    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body, allow_nan=False).encode()
        headers["Content-Type"] = "application/json"
    else:
        body = urllib.parse.urlencode(form or {}).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if auth is not None:
        headers.update(urllib3.make_headers(basic_auth=":".join(auth)))
    pool = pools().get(url.split(":", 1)[0])
    if pool is None:  # configuration refuses such a provider URL at start; no retry could mend it
        raise PermanentSendError(f"not an http or https URL: {url}")
    try:
        answer = pool.request("POST", url, body=body, headers=headers)
    except NewConnectionError as exc:  # refused or unresolvable (urllib3 counts it among the timeouts)
        raise RetryableSendError(f"provider unreachable: {exc.__class__.__name__}: {exc}") from exc
    except TimeoutError as exc:
        raise RetryableSendError(f"provider timed out: {exc.__class__.__name__}") from exc
    except (HTTPError, OSError) as exc:
        raise RetryableSendError(f"provider unreachable: {exc.__class__.__name__}: {exc}") from exc
    return Response(answer.status, answer.data)


def error_json(response: Response) -> dict:
    """The JSON body of an error response, or an empty dict when it is not JSON."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
