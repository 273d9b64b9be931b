"""``convnetpy data download`` and ``load_mnist/load_cifar10(download=True)`` against a local
HTTP server that the tests start: good, truncated (then resumed with a Range request),
corrupted and Range-ignoring answers, with small fake archives whose checksums replace the
published ones in the module's table (tests/local_mirror.py)."""

import pytest
from local_mirror import Mirror, fake_cifar, fake_mnist, tar_gz

from convnetpy.cli import main
from convnetpy.data import download as dl
from convnetpy.data import get_dataset, load_cifar10, load_mnist


@pytest.fixture
def server(monkeypatch):
    with Mirror() as mirror:
        def serve(files: dict[str, bytes], modes: dict[str, str] | None = None) -> None:
            # the fakes' checksums stand for the published ones
            for name, md5 in mirror.serve(files, modes).items():
                monkeypatch.setitem(dl.MD5, name, md5)

        mirror.serve_checked = serve
        monkeypatch.setenv("CONVNETPY_DATA_MIRROR", mirror.url)
        yield mirror


def test_good_download_is_in_place_and_loads(server, tmp_path):
    files = fake_mnist()
    server.serve_checked(files)
    ds = load_mnist(tmp_path / "m", download=True)
    assert ds.images.shape == (30, 1, 28, 28) and len(load_mnist(tmp_path / "m", False)) == 10
    for name, data in files.items():
        assert (tmp_path / "m" / name).read_bytes() == data
    assert not list((tmp_path / "m").glob("*.part"))
    # CONVNETPY_DATA_MIRROR is the base URL: every file was fetched as MIRROR/FILENAME
    assert sorted(p for p, _ in server.requests) == sorted(f"/data/{n}" for n in files)


def test_an_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    files = fake_mnist()
    name = "train-images-idx3-ubyte.gz"
    server.serve_checked(files, {name: "truncate-once"})
    with pytest.raises(OSError, match=f"could not download {server.url}/{name}.*IncompleteRead"
                                      ".*Run again to resume.*CONVNETPY_DATA_MIRROR"):
        load_mnist(tmp_path, download=True)
    part = tmp_path / (name + ".part")
    kept = part.stat().st_size
    assert 0 < kept < len(files[name]) and not (tmp_path / name).exists()
    with pytest.raises(FileNotFoundError, match="convnetpy data download mnist"):
        load_mnist(tmp_path)  # the half download is never used
    server.requests.clear()
    ds = load_mnist(tmp_path, download=True)
    assert ds.images.shape == (30, 1, 28, 28)
    assert (f"/data/{name}", f"bytes={kept}-") in server.requests
    assert (tmp_path / name).read_bytes() == files[name] and not part.exists()


def test_a_server_that_ignores_range_restarts_the_file(server, tmp_path):
    files = fake_mnist()
    name = "t10k-labels-idx1-ubyte.gz"
    server.serve_checked(files, {name: "ignore-range"})
    (tmp_path / (name + ".part")).write_bytes(b"stale bytes from another file")
    dl.download_mnist(tmp_path, progress=False)
    assert (f"/data/{name}", "bytes=29-") in server.requests  # asked, answered 200
    assert (tmp_path / name).read_bytes() == files[name]


def test_a_corrupt_download_is_deleted_with_a_clear_error(server, tmp_path):
    files = fake_mnist()
    name = "train-images-idx3-ubyte.gz"
    server.serve_checked(files, {name: "corrupt"})
    expected = dl.MD5[name]
    with pytest.raises(dl.ChecksumError, match=f"{server.url}/{name}: .*expected MD5 "
                                               f"{expected}, got [0-9a-f]{{32}}"):
        dl.download_mnist(tmp_path, progress=False)
    assert not (tmp_path / name).exists() and not list(tmp_path.glob("*.part"))


def test_complete_files_are_not_downloaded_again(server, tmp_path):
    server.serve_checked(fake_mnist())
    dl.download_mnist(tmp_path, progress=False)
    server.requests.clear()
    assert dl.download_mnist(tmp_path, progress=False) == tmp_path
    load_mnist(tmp_path, download=True)
    assert server.requests == []


def test_the_mirror_defaults_to_torchvisions_and_errors_name_the_url(server, tmp_path,
                                                                    monkeypatch):
    monkeypatch.delenv("CONVNETPY_DATA_MIRROR")
    assert dl.mirrors(dl.MNIST_MIRRORS)[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    monkeypatch.setenv("CONVNETPY_DATA_MIRROR", server.url + "/")  # a trailing / is fine
    with pytest.raises(dl.DownloadError, match=f"{server.url}/train-images-idx3-ubyte.gz: "
                                               "HTTP 404.*CONVNETPY_DATA_MIRROR"):
        dl.download_mnist(tmp_path, progress=False)
    assert server.requests == [("/data/train-images-idx3-ubyte.gz", None)]


def test_cli_downloads_into_root_and_train_data_reads_it(server, tmp_path, capsys):
    server.serve_checked(fake_mnist())
    assert main(["data", "download", "mnist", "--root", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert f"the files are in {(tmp_path / 'm').resolve()}" in out
    assert len(get_dataset(f"mnist:{tmp_path / 'm'}")) == 30
    server.files.clear()  # nothing to serve: one error line, exit code 2
    assert main(["data", "download", "cifar10", "--root", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convnetpy data: error: could not download") and "404" in err


def test_the_cache_is_used_without_a_path(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVNETPY_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="run: convnetpy data download mnist"):
        get_dataset("mnist")
    with pytest.raises(FileNotFoundError, match="run: convnetpy data download cifar10"):
        get_dataset("cifar10")
    server.serve_checked(fake_mnist())
    assert main(["data", "download", "mnist"]) == 0
    assert (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").is_file()
    assert len(get_dataset("mnist")) == 30 and len(get_dataset("mnist", split="test")) == 10


def test_cifar10_download_extracts_and_loads(server, tmp_path, monkeypatch):
    server.serve_checked({"cifar-10-python.tar.gz": fake_cifar()})
    ds = load_cifar10(tmp_path, download=True)
    assert ds.images.shape == (30, 3, 32, 32) and ds.classes[0] == "airplane"
    assert len(load_cifar10(tmp_path, train=False)) == 4
    assert (tmp_path / "cifar-10-batches-py" / "batches.meta").read_bytes() == b"not read"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    monkeypatch.setenv("CONVNETPY_DATA", str(tmp_path / "cache"))
    assert main(["data", "download", "cifar10", "--quiet"]) == 0
    assert len(get_dataset("cifar10")) == 30
    assert (tmp_path / "cache" / "cifar10" / "cifar-10-python.tar.gz").is_file()
    server.requests.clear()  # the batches' folder itself as the root: nothing to fetch
    assert len(load_cifar10(tmp_path / "cifar-10-batches-py", download=True)) == 30
    assert server.requests == []


@pytest.mark.parametrize("members,links,why", [
    ({"../evil": b"x"}, {}, "a '..' component"),
    ({"cifar-10-batches-py/../../evil": b"x"}, {}, "a '..' component"),
    ({"/tmp/evil": b"x"}, {}, "an absolute path"),
    ({}, {"cifar-10-batches-py/data_batch_1": "/etc/passwd"}, "a link"),
    ({"elsewhere/data_batch_1": b"x"}, {}, "outside cifar-10-batches-py/"),
    ({"cifar-10-batches-py": b"x"}, {}, "outside cifar-10-batches-py/"),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink", "other-folder", "top-as-file"])
def test_unsafe_tar_members_are_refused(server, tmp_path, members, links, why):
    good = {f"cifar-10-batches-py/data_batch_{i}": b"x" for i in range(1, 6)}
    server.serve_checked({"cifar-10-python.tar.gz": tar_gz({**good, **members}, links)})
    root = tmp_path / "root"
    with pytest.raises(ValueError, match=f"unsafe member .*{why}"):
        load_cifar10(root, download=True)
    assert not (root / "cifar-10-batches-py").exists() and not (tmp_path / "evil").exists()
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-python.tar.gz"]
