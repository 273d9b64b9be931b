"""Files written whole or not at all: ``write_atomic`` writes through a temporary file in
the same folder (unique to the process and thread) and renames it into place, so that a
reader never sees a partial file, two writers never share a temporary file, and a failure
(a full disk, an exception while writing) leaves the old file, or none, and no temporary.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_atomic(folder / "a.json", '{"x": 1}')
>>> (folder / "a.json").read_text(), sorted(p.name for p in folder.iterdir())
('{"x": 1}', ['a.json'])
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes | str, fsync: bool = False) -> None:
    """Write ``data`` (text as UTF-8) at ``path`` atomically; ``fsync``: on disk before the
    rename (what must survive a power cut). A missing folder is a FileNotFoundError that
    names it."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {path.parent} does not "
                                "exist; create it first")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
