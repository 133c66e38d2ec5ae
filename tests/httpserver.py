"""A real HTTP server on 127.0.0.1 for download tests (a plain module: ``from httpserver import ...``).

``serve(directory)`` serves a folder on a free port in a background thread. Its ``mode`` makes the
server misbehave the way networks do:

- ``"ok"``: a normal static file server (404 for a missing file);
- ``"truncate"``: announces the full ``Content-Length`` but sends only half the body, then closes;
- ``"chunked-truncate"``: sends half the body as one chunk of a chunked response, then closes;
- ``"garbage"``: answers with a line that is not HTTP.

``closed_port()`` gives a port on 127.0.0.1 where nothing listens (for "unreachable" tests).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

MODES = ("ok", "truncate", "chunked-truncate", "garbage")


class _Handler(http.server.SimpleHTTPRequestHandler):
    mode = "ok"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep tests quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.mode == "ok":
            super().do_GET()
            return
        if self.mode == "garbage":
            self.wfile.write(b"this is not HTTP\r\n\r\n")
            self.close_connection = True
            return
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404, "File not found")
            return
        body = path.read_bytes()
        half = body[: len(body) // 2]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if self.mode == "truncate":
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(half)
        else:  # chunked-truncate
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(f"{len(half):x}\r\n".encode() + half + b"\r\n")
        self.wfile.flush()
        self.close_connection = True


class Server:
    """A running server; ``url`` is its base URL (no trailing slash)."""

    def __init__(self, httpd: http.server.ThreadingHTTPServer) -> None:
        self.httpd = httpd
        host, port = httpd.server_address[:2]
        self.port = int(port)
        self.url = f"http://{host}:{port}"


@contextlib.contextmanager
def serve(directory: str | os.PathLike, mode: str = "ok") -> Iterator[Server]:
    """Serve ``directory`` on ``127.0.0.1:<free port>`` while the ``with`` block runs."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    handler_cls = type("Handler", (_Handler,), {"mode": mode, "protocol_version": "HTTP/1.1"})
    handler = functools.partial(handler_cls, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Server(httpd)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
