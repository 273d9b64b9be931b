"""Download the official MNIST and CIFAR-10 archives, as torchvision does: the same files
and published MD5 checksums, the same mirrors.

One mechanism for every file (``fetch``): urllib streams into ``NAME.part``; an existing
``.part`` is resumed with an HTTP Range request (a server that ignores Range and answers
200 restarts it); the finished file is checked against its checksum, fsynced and renamed
into place, so a half or corrupt download is never used. A corrupt one is deleted and the
error names the URL and both checksums. ``CONVNETPY_DATA_MIRROR`` replaces the base URL
(files are fetched as MIRROR/FILENAME) for machines without internet; ``CONVNETPY_DATA``
moves the cache (default ``~/.cache/convnetpy``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

MIRROR_ENV = "CONVNETPY_DATA_MIRROR"
ROOT_ENV = "CONVNETPY_DATA"

MNIST_MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"]
MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
CIFAR10_MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]

# torchvision's published checksums of the official files
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    CIFAR10_ARCHIVE: "c58f30108f718f92721af3b95e74349a",
}
CHUNK = 1 << 16
MAX_MEMBER_BYTES = 256 * 2**20  # an official batch is ~31 MB
MAX_MEMBERS = 64  # the official archive holds eight files and a folder


class DownloadError(OSError):
    """The file could not be fetched (network, HTTP error, interrupted transfer)."""


class ChecksumError(ValueError):
    """A downloaded file does not match its published checksum (it was deleted)."""


def cache_root() -> Path:
    """``CONVNETPY_DATA``, default ``~/.cache/convnetpy``."""
    return Path(os.environ.get(ROOT_ENV) or Path.home() / ".cache" / "convnetpy")


def default_root(dataset: str) -> Path:
    """Where ``dataset`` ("mnist" or "cifar10") lives in the cache."""
    if dataset not in ("mnist", "cifar10"):
        raise ValueError(f"no download for {dataset!r}: choose mnist or cifar10")
    return cache_root() / dataset


def mirrors(defaults: list[str]) -> list[str]:
    """The base URLs to try: ``CONVNETPY_DATA_MIRROR`` alone when set, else ``defaults``."""
    env = os.environ.get(MIRROR_ENV, "").strip()
    return [env.rstrip("/") + "/"] if env else list(defaults)


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fetch(filename: str, root: Path, bases: list[str], progress: bool = True,
          timeout: float = 30) -> Path:
    """``root/filename``, downloaded from the first base URL that answers (resuming a
    ``.part``) and verified against ``MD5[filename]``. An existing file is kept: only
    verified files are ever renamed into place."""
    root = Path(root)
    dest = root / filename
    if dest.is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    errors = []
    for base in bases:
        url = base + filename
        try:
            _download(url, dest, MD5[filename], progress, timeout)
            return dest
        except DownloadError as e:
            errors.append(str(e))
    raise DownloadError("; ".join(errors) + f". Run again to resume; without internet, set "
                        f"{MIRROR_ENV} to a server that holds {filename} (fetched as "
                        f"MIRROR/{filename}) or copy the file into {root}")


def _download(url: str, dest: Path, md5: str, progress: bool, timeout: float) -> None:
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "convnetpy"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            if have and r.status != 206:  # the server ignored Range: start again
                have = 0
            elif have and not r.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
                raise DownloadError(f"{url}: the server resumed at the wrong offset "
                                    f"({r.headers.get('Content-Range')!r})")
            length = r.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            _stream(r, part, have, total, dest.name, progress)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:  # 416: the .part may hold the whole file already
            raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # ValueError: a bad URL
        if isinstance(e, DownloadError):
            raise
        reason = getattr(e, "reason", None) or e
        kept = part.stat().st_size if part.is_file() else 0
        raise DownloadError(f"could not download {url} ({type(e).__name__}: {reason})"
                            + (f"; {kept:,} bytes kept in {part}" if kept else "")) from None
    actual = md5sum(part)
    if actual != md5:
        part.unlink()
        raise ChecksumError(f"{url}: the download does not match its published checksum "
                            f"(expected MD5 {md5}, got {actual}); it was deleted. A mirror "
                            f"({MIRROR_ENV}) may serve a different file")
    os.replace(part, dest)
    _fsync_dir(dest.parent)


def _stream(r, part: Path, have: int, total: int | None, name: str, progress: bool) -> None:
    bar = None
    if progress and sys.stderr.isatty():
        try:
            from tqdm.auto import tqdm
        except ImportError:  # the plain line below instead
            print(f"downloading {name}", file=sys.stderr)
        else:
            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=name,
                       leave=False, file=sys.stderr, disable=None)
    done = have
    try:
        with open(part, "ab" if have else "wb") as f:
            while chunk := r.read(CHUNK):
                f.write(chunk)
                done += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    finally:
        if bar is not None:
            bar.close()
    if total is not None and done < total:
        raise http.client.IncompleteRead(b"", total - done)


def _fsync_dir(folder: Path) -> None:
    try:  # the rename's directory entry reaches the disk too (not possible everywhere)
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def download_mnist(root: str | Path | None = None, progress: bool = True) -> Path:
    """The four official MNIST files (``*-idx?-ubyte.gz``) in ``root`` (default the
    cache's ``mnist`` folder); files already there are kept. Returns the folder."""
    root = Path(root) if root is not None else default_root("mnist")
    for name in MNIST_FILES:
        if not (root / name.removesuffix(".gz")).is_file():
            fetch(name, root, mirrors(MNIST_MIRRORS), progress)
    return root


def download_cifar10(root: str | Path | None = None, progress: bool = True) -> Path:
    """The official CIFAR-10 archive in ``root`` (default the cache's ``cifar10``
    folder), extracted into ``root/cifar-10-batches-py``. Returns that folder."""
    root = Path(root) if root is not None else default_root("cifar10")
    for folder in (root / CIFAR10_FOLDER, root):  # root may be the batches' folder itself
        if all((folder / n).is_file() for n in CIFAR10_BATCHES):
            return folder
    folder = root / CIFAR10_FOLDER
    archive = fetch(CIFAR10_ARCHIVE, root, mirrors(CIFAR10_MIRRORS), progress)
    extract_tar(archive, root, CIFAR10_FOLDER)
    return folder


def extract_tar(archive: Path, root: Path, top: str) -> None:
    """Extract ``archive``'s regular files under ``top/`` into ``root/top``: a member
    with an absolute path, ``..``, a link, a device or another top folder is refused
    before anything is written. Files go to a temporary folder first, then each is
    renamed into place."""
    root = Path(root)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            if len(members) > MAX_MEMBERS:
                raise ValueError(f"{archive}: {len(members)} members; the official archive "
                                 f"holds a few")
            files = [m for m in members if _checked_member(archive, m, top)]
            tmp = root / f".{top}.extracting"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                for m in files:
                    rel = PurePosixPath(m.name).relative_to(top)
                    out = tmp.joinpath(*rel.parts)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(m) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
                        dst.flush()
                        os.fsync(dst.fileno())
                for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
                    target = root / top / src.relative_to(tmp)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError) as e:
        raise ValueError(f"{archive}: not a readable tar archive ({e})") from None


def _checked_member(archive: Path, m: tarfile.TarInfo, top: str) -> bool:
    path = PurePosixPath(m.name)
    bad = None
    if not path.parts:
        bad = "an empty name"
    elif m.name.startswith(("/", "\\")) or path.is_absolute() or ":" in path.parts[0]:
        bad = "an absolute path"
    elif ".." in path.parts:
        bad = "a '..' component"
    elif m.issym() or m.islnk():
        bad = "a link"
    elif not (m.isfile() or m.isdir()):
        bad = "not a regular file"
    elif path.parts[0] != top or (m.isfile() and len(path.parts) < 2):
        bad = f"outside {top}/"
    elif m.size > MAX_MEMBER_BYTES:
        bad = f"{m.size:,} bytes, larger than any CIFAR-10 file"
    if bad:
        raise ValueError(f"{archive}: unsafe member {m.name!r} ({bad}); refusing to extract")
    return m.isfile()


__all__ = ["ChecksumError", "DownloadError", "MD5", "cache_root", "default_root",
           "download_cifar10", "download_mnist", "extract_tar", "fetch", "md5sum", "mirrors"]
