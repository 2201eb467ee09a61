"""A local HTTP file server for the weights tests (no network).

Serves ``files`` (name → bytes) on 127.0.0.1 at an ephemeral port, in a thread.
Behaviour is switchable per test through :class:`ServerControl`:

- ``honour_range``: answer ``Range: bytes=N-`` with ``206`` + ``Content-Range``
  (``False``: ignore it and send ``200`` with the whole file, as some servers do);
- ``cut_after``: close the connection after sending this many body bytes
  (an interrupted transfer; ``Content-Length`` still announces the full length);
- ``fail_status``: answer every request with this status (500, 404, ...).

Every request's path and ``Range`` header is recorded in ``requests``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from box2mask.weights import Catalog, WeightsEntry


@dataclass
class ServerControl:
    files: dict[str, bytes]
    honour_range: bool = True
    cut_after: int | None = None
    fail_status: int | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def make_handler(control: ServerControl) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            rng = self.headers.get("Range")
            control.requests.append((self.path, rng))
            if control.fail_status is not None:
                body = b"server trouble"
                self.send_response(control.fail_status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            data = control.files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m and control.honour_range:
                start = int(m.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            if control.cut_after is not None:
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body[: control.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.end_headers()
            self.wfile.write(body)

    return Handler


class LocalServer:
    """Context manager: ``with LocalServer(control) as base_url: ...``."""

    def __init__(self, control: ServerControl) -> None:
        self.control = control
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(control))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def random_entry(name: str, data: bytes, *, sha256: str | None = None) -> WeightsEntry:
    """A registry entry for ``data`` (or for a wrong hash, when ``sha256`` is given)."""
    file_name = name.replace("-", "_") + ".pth"
    return WeightsEntry(
        name=name,
        kind="sam",
        arch="vit_b",
        file_name=file_name,
        url=f"https://example.invalid/weights/{file_name}",
        size=len(data),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        sha256_source="computed by the test",
    )


def catalog_of(*entries: WeightsEntry) -> Catalog:
    return Catalog(entries)
