"""Checks on the real data in ../shared/data (skipped, with the reason, where it is absent)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_mnist = pytest.mark.skipif(not (SHARED / "mnist").is_dir(),
                                 reason=f"the MNIST files are not in {SHARED / 'mnist'}")
needs_cifar = pytest.mark.skipif(not (SHARED / "cifar10-train-jpg.tar").is_file(),
                                 reason=f"the CIFAR-10 JPEG tar is not in {SHARED}")


@needs_mnist
def test_real_mnist_loads():
    from convnetpy.data import load_mnist

    ds = load_mnist(SHARED / "mnist")
    assert ds.images.shape == (60000, 1, 28, 28) and np.bincount(ds.labels).min() > 5000


@pytest.mark.slow
@needs_cifar
def test_real_cifar_batches_load_through_the_restricted_unpickler(tmp_path):
    pytest.importorskip("PIL")
    subprocess.run([sys.executable, str(SHARED / "make_cifar10_batches.py"),
                    str(SHARED / "cifar10-train-jpg.tar"), str(tmp_path)], check=True,
                   capture_output=True)
    from convnetpy.data import load_cifar10

    ds = load_cifar10(tmp_path)
    assert ds.images.shape == (50000, 3, 32, 32) and np.bincount(ds.labels).tolist() == [
        5000] * 10
