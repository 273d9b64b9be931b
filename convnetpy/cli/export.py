"""``convnetpy export CKPT -o model.onnx``: a trained model as an ONNX file.

The checkpoint's model is rebuilt from its recipe (``train.load_trained``) and exported
with its class names and input shape in the metadata; the file is checked with
``onnx.checker`` (full check) and run once in ONNX Runtime against convnetpy on a random
batch, and the largest difference (relative to the largest output) is printed.
"""

from __future__ import annotations

HELP = "export a trained checkpoint to ONNX (checked against ONNX Runtime)"


def add_arguments(p) -> None:
    from ..io.onnx_export import DEFAULT_OPSET

    p.add_argument("checkpoint", help="a run folder or checkpoint folder")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET}; circular padding needs 19)")
    p.add_argument("--batch", type=int, default=2,
                   help="batch size of the random input the check runs (default 2; the "
                        "file takes any batch size)")


def run(args) -> int:
    import numpy as np

    from ..io.onnx_export import compare, export
    from ..train import load_trained
    from .common import usage_error

    if args.batch < 1:
        raise usage_error("--batch must be at least 1")
    trained = load_trained(args.checkpoint)
    meta = trained.checkpoint.meta
    shape = tuple(int(v) for v in meta["input_shape"])
    x = np.random.default_rng(0).standard_normal((args.batch,) + shape).astype(np.float32)
    proto = export(trained.model, x, args.output, opset=args.opset, name=trained.config.model,
                   classes=meta.get("classes"))
    diff = compare(proto, trained.model, x)
    dims = ", ".join(map(str, shape))
    weights = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    print(f"wrote {args.output}: {trained.config.model}, input (batch, {dims}), "
          f"opset {args.opset}, {len(proto.graph.node)} nodes, {weights:,} weights")
    print(f"onnx.checker: passed; ONNX Runtime vs convnetpy on a random batch of {args.batch}: "
          f"max relative difference {diff:.2e}")
    return 0
