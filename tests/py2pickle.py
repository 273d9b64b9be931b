"""Write pickles the way the official CIFAR-10 python batches were written (Python 2,
protocol 2: 8-bit strings and arrays through numpy.core.multiarray._reconstruct)."""

import pickle

import numpy as np


class Py2Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_str8(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)

    def save_ndarray(self, arr):
        w = self.write
        w(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
        w(pickle.GLOBAL + b"numpy\nndarray\n")
        self.save((0,))
        self.save("b")
        w(pickle.TUPLE3 + pickle.REDUCE + pickle.MARK)
        self.save(1)
        self.save(tuple(int(s) for s in arr.shape))
        w(pickle.GLOBAL + b"numpy\ndtype\n")
        self.save(arr.dtype.str[1:])
        self.save(0)
        self.save(1)
        w(pickle.TUPLE3 + pickle.REDUCE)
        self.save((3, "|", None, None, None, -1, -1, 0))
        w(pickle.BUILD)
        self.save(False)
        self.save(np.ascontiguousarray(arr).tobytes())
        w(pickle.TUPLE + pickle.BUILD)

    dispatch[str] = save_str8
    dispatch[bytes] = save_str8
    dispatch[np.ndarray] = save_ndarray


def dumps(obj) -> bytes:
    import io

    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def cifar_batch(n: int, seed: int = 0, labels=None) -> bytes:
    rng = np.random.default_rng(seed)
    return dumps({"batch_label": "training batch", "labels": list(
        labels if labels is not None else rng.integers(0, 10, n).tolist()),
        "data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
        "filenames": [f"img_{i}.png" for i in range(n)]})
