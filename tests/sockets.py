"""A Redmine that hangs: a real socket on 127.0.0.1 that accepts connections and never
answers, optionally turned into a relay to the real Redmine later (Redmine back). Used by
the unit and end-to-end tests of the timeouts (issue 14)."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit


class HangingRedmine:
    """Accepts every connection; holds it in silence until ``answer_from(url)``, after which
    new connections are relayed to ``url``. Connections accepted before stay silent (a hung
    connection does not recover by itself)."""

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._target: tuple[str, int] | None = None
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def answer_from(self, url: str) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname, parts.port or 80)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self._target is None:
                self._held.append(conn)
            else:
                threading.Thread(target=self._relay, args=(conn, self._target), daemon=True).start()

    def _relay(self, client: socket.socket, target: tuple[str, int]) -> None:
        upstream = socket.create_connection(target, timeout=30)
        upstream.settimeout(None)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def drop_held(self) -> None:
        """Close the connections held in silence (their clients see the connection end)."""
        held, self._held = self._held, []
        for conn in held:
            conn.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for conn in self._held:
            conn.close()
