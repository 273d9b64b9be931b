"""One library's side of the benchmark, run in its own process:

    python benchmarks/worker.py convnetpy|torch --reps 5 [--cases conv,pool,...]

Prints one JSON object: {case: [seconds per repetition, ...]} after an untimed warm-up of each
case, with the thread count fixed by the driver (OMP/OPENBLAS/MKL_NUM_THREADS and, for torch,
torch.set_num_threads). ``--train NET`` instead runs training steps and reports img/s and the
peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np

CONV_SHAPES = [  # (name, C_in, C_out, kernel, stride, padding, H=W), batch 64
    ("conv 3->16 5x5 s1 p2 @32", 3, 16, 5, 1, 2, 32),
    ("conv 16->32 3x3 s1 p1 @32", 16, 32, 3, 1, 1, 32),
    ("conv 64->64 3x3 s1 p1 @8", 64, 64, 3, 1, 1, 8),
    ("conv 64->128 3x3 s2 p1 @16", 64, 128, 3, 2, 1, 16),
    ("conv 64->256 1x1 @16", 64, 256, 1, 1, 0, 16),
]


NETS = ["convnetjs", "resnet20", "airbench"]  # the training cases (airbench: cifar10-fast's)


class Lib:
    """The few calls the benchmark needs, for either library."""

    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        if name == "torch":
            import torch
            import torch.nn.functional as F

            torch.set_num_threads(threads)
            self.t, self.F, self.nn, self.optim = torch, F, torch.nn, torch.optim
        else:
            import convnetpy as cp
            import convnetpy.functional as F

            self.t, self.F, self.nn, self.optim = cp, F, cp.nn, cp.optim

    def tensor(self, a: np.ndarray, grad: bool = False):
        if self.name == "torch":
            return self.t.tensor(a, requires_grad=grad)
        return self.t.tensor(a, requires_grad=grad)

    def no_grad(self):
        return self.t.no_grad()


def timed(fn, reps: int) -> list[float]:
    fn()  # warm-up, not counted
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def layer_cases(lib: Lib, reps: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    F, res = lib.F, {}
    for name, cin, cout, k, s, p, hw in CONV_SHAPES:
        x = rng.standard_normal((64, cin, hw, hw)).astype(np.float32)
        w = (rng.standard_normal((cout, cin, k, k)) * 0.1).astype(np.float32)
        b = rng.standard_normal(cout).astype(np.float32)
        xt, wt, bt = lib.tensor(x, True), lib.tensor(w, True), lib.tensor(b, True)

        def fwd():
            with lib.no_grad():
                F.conv2d(xt, wt, bt, stride=s, padding=p)

        def fwd_bwd():
            xt.grad = wt.grad = bt.grad = None
            F.conv2d(xt, wt, bt, stride=s, padding=p).sum().backward()

        res[name + " fwd"] = timed(fwd, reps)
        res[name + " fwd+bwd"] = timed(fwd_bwd, reps)
    x = lib.tensor(rng.standard_normal((64, 32, 32, 32)).astype(np.float32), True)

    def pool_fwd():
        with lib.no_grad():
            F.max_pool2d(x, 2, 2)

    def pool_bwd():
        x.grad = None
        F.max_pool2d(x, 2, 2).sum().backward()

    res["maxpool 2x2 s2 64x32x32x32 fwd"] = timed(pool_fwd, reps)
    res["maxpool 2x2 s2 64x32x32x32 fwd+bwd"] = timed(pool_bwd, reps)
    x = lib.tensor(rng.standard_normal((128, 64, 16, 16)).astype(np.float32), True)
    bn = lib.nn.BatchNorm2d(64)

    def bn_fwd_bwd():
        x.grad = None
        bn(x).sum().backward()

    def relu_fwd_bwd():
        x.grad = None
        F.relu(x).sum().backward()

    res["batchnorm2d 128x64x16x16 fwd+bwd"] = timed(bn_fwd_bwd, reps)
    res["relu 128x64x16x16 fwd+bwd"] = timed(relu_fwd_bwd, reps)
    return res


def build(lib: Lib, net: str):
    from convnetpy.models import portable

    if net == "convnetjs":
        return portable.convnetjs_cifar10(lib.nn)
    if net == "airbench":
        return portable.airbench(lib.nn)
    return portable.resnet20(lib.nn, lib.F)


def train_case(lib: Lib, net: str, reps: int, steps: int = 5) -> dict[str, float]:
    rng = np.random.default_rng(0)
    model = build(lib, net)
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = lib.tensor(rng.standard_normal((128, 3, 32, 32)).astype(np.float32))
    y = lib.tensor(rng.integers(0, 10, 128))

    def step():
        for _ in range(steps):
            opt.zero_grad()
            lib.F.cross_entropy(model(x), y).backward()
            opt.step()

    train = timed(step, reps)
    model.eval()
    xi = lib.tensor(rng.standard_normal((256, 3, 32, 32)).astype(np.float32))

    def infer():
        with lib.no_grad():
            model(xi)

    inf = timed(infer, reps)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"train_img_s": [128 * steps / t for t in train], "infer_img_s": [256 / t for t in inf],
            "peak_rss_mib": peak_kib / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("lib", choices=["convnetpy", "torch"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train", choices=NETS)
    args = ap.parse_args()
    lib = Lib(args.lib, args.threads)
    out = train_case(lib, args.train, args.reps) if args.train else layer_cases(lib, args.reps)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
