"""Write convnetpy/data/digits.npz, the small real dataset bundled with the package so that
`convnetpy train` runs offline: the first N digits of each class from the MNIST training
file (a stratified, fixed subset), stored as uint8.

    python scripts/make_bundled_digits.py ../shared/data/mnist [N_PER_CLASS]
"""

import sys
from pathlib import Path

import numpy as np

from convnetpy.data.mnist import load_mnist

root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist")
per_class = int(sys.argv[2]) if len(sys.argv) > 2 else 800
ds = load_mnist(root)
index = np.sort(np.concatenate([np.flatnonzero(ds.labels == c)[:per_class] for c in range(10)]))
out = Path(__file__).resolve().parents[1] / "convnetpy" / "data" / "digits.npz"
np.savez_compressed(out, images=ds.images[index], labels=ds.labels[index].astype(np.uint8),
                    source=np.array("MNIST training set (LeCun, Cortes, Burges), "
                                    f"first {per_class} digits of each class"))
print(f"wrote {out}: {len(index)} digits, {out.stat().st_size:,} bytes")
