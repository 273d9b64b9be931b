"""The dashboard's HTTP server (standard library only).

Routes: ``/`` (the page) and ``/static/<file>`` (its own files, nothing else);
``/api/state?since=STEP`` (status, curves, newest steps), ``/api/events`` (the same as
server-sent events, about once a second), ``/api/snapshot`` (per-layer pictures and numbers),
``/api/unit?layer=I&c=C&y=Y&x=X`` (how one unit was computed), ``/api/summary``;
state-changing ``POST /api/control`` (``{"action": "pause"|"resume"|"lr", "lr": 0.01}``) and
``POST /api/upload`` (a JPEG or PNG as the body) need the token printed in the URL, as
``?token=`` or an ``X-Token`` header.

Safety: binds 127.0.0.1 unless told otherwise (then with a warning, and any Host header is
accepted); on 127.0.0.1 a request whose Host header is not this server's address gets 403
(DNS rebinding); uploads over 10 MB get 413, other types than
JPEG/PNG 415, undecodable images 400, and the server keeps serving.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .monitor import Monitor, state

MAX_UPLOAD = 10 * 1024 * 1024
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: training prints
        pass

    # ----- helpers -----
    def _send(self, code: int, body: bytes, ctype: str = "application/json",
              extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, code: int = 200) -> None:
        self._send(code, json.dumps(obj).encode())

    def _error(self, code: int, message: str) -> None:
        self._json({"error": message}, code)

    def _host_ok(self) -> bool:
        if self.server.allowed_hosts is None:  # --allow-remote: reached by any name
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        return host in self.server.allowed_hosts

    def _token_ok(self, query: dict) -> bool:
        given = self.headers.get("X-Token") or (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.server.token.encode())

    # ----- verbs -----
    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        try:
            self._get()
        except ValueError as e:  # a malformed query parameter
            self._error(400, str(e))

    def _get(self) -> None:
        if not self._host_ok():
            return self._error(403, "unexpected Host header")
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        path = url.path
        m = self.server.monitor
        if path in ("/", "/index.html"):
            return self._send(200, _static("index.html"), STATIC["index.html"])
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            if name not in STATIC:  # only our own files, by exact name
                return self._error(404, "not found")
            return self._send(200, _static(name), STATIC[name])
        if path == "/api/state":
            return self._json(state(m, _int(q, "since", 0)))
        if path == "/api/summary":
            return self._json({"summary": m.summary, "config": m.config,
                               "classes": m.classes, "input_shape": m.meta["input_shape"]})
        if path == "/api/snapshot":
            m.touch()
            with m.lock:
                snap = m.snapshot
            return self._json(snap or {"version": 0, "pending": True})
        if path == "/api/unit":
            return self._unit(q)
        if path == "/diagram.svg":
            return self._send(200, m.diagram().encode(), "image/svg+xml; charset=utf-8")
        if path == "/api/events":
            return self._events()
        return self._error(404, "not found")

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        self.close_connection = True  # an unread body must not reach the next request
        if not self._host_ok():
            return self._error(403, "unexpected Host header")
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        if url.path not in ("/api/control", "/api/upload", "/api/class_images"):
            return self._error(404, "not found")
        if not self._token_ok(q):
            return self._error(403, "missing or wrong token (use the URL printed at start)")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            return self._error(400, "bad Content-Length")
        if length > MAX_UPLOAD:
            # read and drop a moderately large body so the client sees the answer, not a
            # reset; a huge one is cut off
            left = length if length <= 4 * MAX_UPLOAD else 0
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
            return self._error(413, f"the body is {length:,} bytes; the limit is "
                                    f"{MAX_UPLOAD:,} (10 MB)")
        body = self.rfile.read(length) if length else b""
        if url.path == "/api/control":
            return self._control(body)
        if url.path == "/api/class_images":
            return self._class_images()
        return self._upload(body)

    # ----- endpoints -----
    def _control(self, body: bytes) -> None:
        m = self.server.monitor
        try:
            req = json.loads(body or b"{}")
            action = req.get("action")
            if action == "pause":
                m.pause(True)
            elif action == "resume":
                m.pause(False)
            elif action == "lr":
                m.request_lr(req.get("lr"))
            else:
                raise ValueError(f"unknown action {action!r} (pause, resume or lr)")
        except (ValueError, AttributeError) as e:
            return self._error(400, str(e))
        return self._json({"ok": True, "paused": m.paused})

    def _upload(self, body: bytes) -> None:
        m = self.server.monitor
        if not (body.startswith(b"\xff\xd8\xff") or body.startswith(b"\x89PNG\r\n\x1a\n")):
            return self._error(415, "only JPEG and PNG images are accepted")
        try:
            pixels = decode_image(body, m.meta["input_shape"])
        except Exception as e:  # noqa: BLE001 - any decoder failure is the file's fault
            return self._error(400, f"cannot decode the image: {e}")
        probs = m.predict(pixels[None])[0]
        top = [{"class": m.classes[i], "p": float(probs[i])} for i in np.argsort(-probs)[:5]]
        m.set_example(pixels, "uploaded image")
        return self._json({"top": top})

    def _class_images(self) -> None:
        try:  # seconds of work: a POST with the token, so that no other page can ask for it
            return self._json(self.server.monitor.class_images())
        except Exception as e:  # noqa: BLE001 - the page shows why, the server goes on
            return self._error(500, f"the class images failed: {type(e).__name__}: {e}")

    def _unit(self, q: dict) -> None:
        from ..viz.probe import explain_unit

        m = self.server.monitor
        try:
            with m.view_lock:
                layers = m.layers
                if not layers:
                    raise ValueError("no snapshot yet")
                info = explain_unit(layers, _int(q, "layer", -1), _int(q, "c", 0),
                                    _int(q, "y", 0), _int(q, "x", 0))
        except (ValueError, IndexError) as e:
            return self._error(400, str(e))
        return self._json(info)

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        m, since = self.server.monitor, 0
        try:
            while not self.server.stopping.is_set():
                m.touch()
                st = state(m, since)
                if st["steps"]:
                    since = st["steps"][-1]["step"]
                self.wfile.write(b"data: " + json.dumps(st).encode() + b"\n\n")
                self.wfile.flush()
                self.server.stopping.wait(self.server.event_every)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def _int(q: dict, key: str, default: int) -> int:
    try:
        return int((q.get(key) or [default])[0])
    except ValueError as e:
        raise ValueError(f"{key} must be an integer") from e


def decode_image(data: bytes, input_shape) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 (C, H, W) at the model's size, by the image-folder decoder
    (Pillow restricted to JPEG/PNG, pixel cap)."""
    import io

    from ..data import decode_image as decode

    c, h, w = input_shape
    return decode(io.BytesIO(data), (h, w), "L" if c == 1 else "RGB")


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, monitor: Monitor, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, event_every: float = 1.0,
                 check_host: bool = True) -> None:
        super().__init__((host, port), Handler)
        self.monitor = monitor
        self.token = token or secrets.token_urlsafe(16)
        self.event_every = event_every
        self.stopping = threading.Event()
        real_port = self.server_address[1]
        names = {"127.0.0.1", "localhost", host.lower()}
        self.allowed_hosts: set[str] | None = (
            {f"{n}:{real_port}" for n in names} | names if check_host else None)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.server_address[0]
        return f"http://{host}:{self.server_address[1]}/?token={self.token}"

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True,
                                        name="convnetpy-dashboard")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self.monitor.close()


def serve(monitor: Monitor, host: str = "127.0.0.1", port: int = 8765,
          allow_remote: bool = False, log=print) -> DashboardServer:
    """Start the server in a thread; refuses a non-local ``host`` unless ``allow_remote``,
    and then says so through ``log``."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        if not allow_remote:
            raise ValueError(f"refusing to serve the dashboard on {host}: it would be "
                             "reachable from other machines; pass --allow-remote if you mean it")
        log(f"WARNING: the dashboard listens on {host}: anyone who can reach this machine "
            "can see it, by any host name (changes still need the token)")
    remote = host not in ("127.0.0.1", "localhost", "::1")
    srv = DashboardServer(monitor, host, port, check_host=not remote).start()
    time.sleep(0)  # let the thread start listening
    return srv
