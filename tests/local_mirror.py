"""A dataset mirror on 127.0.0.1 for the download tests and the README's commands: a
threaded HTTP server that serves small fake archives in the official formats, answering
good, truncated, corrupted or Range-ignoring, and records every request.

``Mirror.serve(files)`` returns the fakes' MD5 checksums, which the caller puts in place of
the published ones (``convnetpy.data.download.MD5``) for the length of its test."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import py2pickle


def idx(arr: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes (MNIST's format)."""
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big")
                                                     for s in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def fake_mnist(train: int = 30, test: int = 10) -> dict[str, bytes]:
    """The four official MNIST file names, gzipped IDX files of random digits."""
    rng = np.random.default_rng(0)
    files = {}
    for prefix, n in (("train", train), ("t10k", test)):
        files[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(
            idx(rng.integers(0, 256, (n, 28, 28))), mtime=0)
        files[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(
            idx(rng.integers(0, 10, n)), mtime=0)
    return files


def tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def fake_cifar(per_batch: int = 6, test: int = 4) -> bytes:
    """cifar-10-python.tar.gz in the official layout, with a few images per batch."""
    members = {f"cifar-10-batches-py/data_batch_{i}": py2pickle.cifar_batch(per_batch, seed=i)
               for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = py2pickle.cifar_batch(test, seed=9)
    members["cifar-10-batches-py/batches.meta"] = b"not read"
    return tar_gz(members)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        srv = self.server
        name = self.path.rsplit("/", 1)[-1]
        srv.requests.append((self.path, self.headers.get("Range")))
        if name not in srv.files:
            self.send_error(404)
            return
        data, mode = srv.files[name], srv.modes.get(name, "good")
        if mode == "corrupt":
            data = data[:10] + bytes([data[10] ^ 0xFF]) + data[11:]
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].split("-")[0]) if rng and mode != "ignore-range" else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if mode == "truncate-once":  # the connection drops halfway, the next answer is whole
            srv.modes[name] = "good"
            body = body[:len(body) // 2]
        self.wfile.write(body)


class Mirror:
    """The server, started on a free loopback port; ``url`` is the base to set as
    CONVNETPY_DATA_MIRROR. Use as a context manager (it stops on exit)."""

    def __init__(self) -> None:
        self._srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._srv.files, self._srv.modes, self._srv.requests = {}, {}, []
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}/data"
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)
        self._thread.start()

    @property
    def files(self) -> dict[str, bytes]:
        return self._srv.files

    @property
    def requests(self) -> list[tuple[str, str | None]]:
        return self._srv.requests

    def serve(self, files: dict[str, bytes], modes: dict[str, str] | None = None
              ) -> dict[str, str]:
        """Serve ``files`` (name -> bytes), each answered as ``modes`` says (default good);
        returns their MD5 checksums."""
        self._srv.files.update(files)
        self._srv.modes.update(modes or {})
        return {name: hashlib.md5(data).hexdigest() for name, data in files.items()}

    def close(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
