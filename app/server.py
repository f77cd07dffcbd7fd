"""The HTTP server of `recouvrement serve`: uvicorn, with the two timeouts it lacks.

uvicorn (0.54) bounds neither the time a client takes to send its request line and headers
(data received re-arms nothing; keep-alive's timer is even cancelled by each byte) nor the
time to send the body: a client sending a byte a second holds a connection for ever. Hence
our own, smallest, pieces (no maintained library offers them for uvicorn):
- ``header_timeout_protocol``: uvicorn's h11 protocol, closing a connection whose request
  head is not complete within N seconds of the connection (or of the previous response);
- ``BodyTimeout``: an ASGI middleware answering 408 when the whole body has not arrived
  within N seconds of the head.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import urllib.parse

import h11
import uvicorn.config
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.config import Settings

log = logging.getLogger(__name__)


def uvicorn_options(settings: Settings) -> dict:
    """How `serve` runs uvicorn: with the request-head timeout of the settings (the body's is
    the app's middleware, ``app/main.py``), and webhook tokens hidden from its access log."""
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    tokens = [token.get_secret_value() for token in settings.webhook_tokens.values()]
    log_config["filters"] = {"hidden_tokens": {"()": HiddenWebhookTokens, "tokens": tokens}}
    log_config["handlers"]["access"]["filters"] = ["hidden_tokens"]
    return {"log_level": "info", "log_config": log_config,
            "http": header_timeout_protocol(settings.http_header_timeout_seconds)}


class HiddenWebhookTokens(logging.Filter):
    """uvicorn's access log line without a webhook token (a secret, issue 16): the path
    ``/webhooks/redmine/<anything>`` is shown as ``/webhooks/redmine/***``, and a path or
    query naming a configured token anywhere else (a mistyped URL, ``?token=``), in any case
    and percent-encoded any number of times, as ``***``."""

    _TOKEN_PATH = re.compile(r"^(/webhooks/redmine/)[^?]*")

    def __init__(self, tokens: list[str] | None = None):
        super().__init__()
        self.tokens = [t for t in tokens or [] if t]

    def _names_a_token(self, path: str) -> bool:
        """A token in the path, in any case, percent-encoded any number of times."""
        for _ in range(8):
            if any(token.casefold() in path.casefold() for token in self.tokens):
                return True
            decoded = urllib.parse.unquote(path)
            if decoded == path:
                return False
            path = decoded
        return True  # encoded deeper than any client would: hidden

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = self._TOKEN_PATH.sub(r"\1***", args[2])
            if self._names_a_token(path):
                path = "***"
            record.args = (*args[:2], path, *args[3:])
        return True


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's ``http`` protocol class closing a connection that has not sent a complete
    request head (request line and headers) ``seconds`` after it opened or after the
    previous response."""

    class HeaderTimeoutProtocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _await_head(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            self._head_timer = self.loop.call_later(seconds, self._head_overdue)

        def _head_overdue(self) -> None:
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("connexion fermée : en-têtes non reçus en %s s (%s)", seconds, self.client)
                self.transport.close()

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

    return HeaderTimeoutProtocol


class _BodyOverdue(Exception):
    pass


class BodyTimeout:
    """ASGI middleware: a request whose whole body has not arrived within ``seconds`` of its
    head gets 408 (French message) and its connection closed."""

    def __init__(self, app, seconds: float):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_done = False
        started = False

        async def bounded_receive():
            nonlocal body_done
            if body_done:  # after the body, only a disconnect comes: unbounded
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                raise _BodyOverdue from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracked_send)
        except _BodyOverdue:
            if started:
                raise
            log.info("requête abandonnée : corps non reçu en %s s (%s)", self.seconds, scope.get("client"))
            body = json.dumps({"detail": f"corps de la requête non reçu en {self.seconds:g} s"},
                              ensure_ascii=False).encode()
            await send({"type": "http.response.start", "status": 408,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
