"""HTTP to the providers: one kept-alive session per thread, timeouts and the error classes."""

from __future__ import annotations

import threading
import urllib.request

import requests

# (connect, read): a provider that does not answer in time is a retryable failure.
TIMEOUTS = (3.05, 10.0)

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


def http_session() -> requests.Session:
    """A per-thread session, so connections to the provider are kept alive between replies."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        # Proxy settings are read from the environment once, not on every request (which scans
        # the whole environment and ~/.netrc each time).
        session.trust_env = False
        session.proxies = {scheme: url for scheme, url in urllib.request.getproxies().items()
                           if scheme in ("http", "https")}
    return session


def post(url: str, **kwargs) -> requests.Response:
    """POST with the send timeouts; network failures become ``RetryableSendError``."""
    try:
        return http_session().post(url, timeout=TIMEOUTS, **kwargs)
    except requests.Timeout as exc:
        raise RetryableSendError(f"provider timed out: {exc.__class__.__name__}") from exc
    except requests.RequestException as exc:
        raise RetryableSendError(f"provider unreachable: {exc.__class__.__name__}: {exc}") from exc


def error_json(response: requests.Response) -> dict:
    """The JSON body of an error response, or an empty dict when it is not JSON."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
