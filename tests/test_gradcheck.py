"""Central finite-difference gradient checks (float64) for every public layer and loss, and
for the Tensor operators. A test enumerates nn's public Module classes so none is skipped."""

import inspect

import numpy as np
import pytest

import convnetpy as cp
from convnetpy import nn

# every test here runs on the reference kernels and on each compute path this CPU runs
pytestmark = pytest.mark.usefixtures("every_path")


def gradcheck(fn, inputs, tol=1e-6, seed=0):
    """fn(*tensors) -> Tensor: the public check (largest error within tol, or tol of the
    largest numeric gradient)."""
    assert cp.autograd.gradcheck(fn, inputs, eps=1e-6, atol=tol, rtol=tol, seed=seed)


def rand(*shape, seed=0, grad=True):
    return cp.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=grad)


def module_check(module, x, params=True, tol=1e-6):
    module.double()
    ps = [p for p in module.parameters()] if params else []

    def fn(x_, *ps_):
        return module(x_)

    gradcheck(fn, [x] + ps, tol)


# one constructor and input per public layer; the enumeration test below keeps it complete
def _distinct(*shape, seed=0, shift=0.0):
    """Well-separated values (none at 0 with shift), so a finite difference never crosses a
    max-pool tie or a ReLU kink."""
    n = int(np.prod(shape))
    vals = np.random.default_rng(seed).permutation(n).astype(np.float64) * 0.1 - shift
    return cp.tensor(vals.reshape(shape), requires_grad=True)


LAYERS = {
    "Conv2d": lambda: (nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=1), rand(2, 2, 5, 6)),
    "Conv2d_groups_reflect": lambda: (
        nn.Conv2d(4, 4, (3, 2), padding="same", groups=2, padding_mode="reflect"),
        rand(1, 4, 5, 5)),
    "Conv2d_circular": lambda: (nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular",
                                          bias=False), rand(1, 2, 4, 4)),
    "Conv2d_replicate": lambda: (nn.Conv2d(2, 2, 3, padding=2, padding_mode="replicate",
                                           dilation=2), rand(1, 2, 4, 4)),
    "MaxPool2d": lambda: (nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), _distinct(2, 2, 6, 5)),
    "AvgPool2d": lambda: (nn.AvgPool2d(3, 2, padding=1, ceil_mode=True,
                                       count_include_pad=False), rand(2, 2, 6, 5)),
    "AdaptiveAvgPool2d": lambda: (nn.AdaptiveAvgPool2d((3, 2)), rand(2, 2, 5, 7)),
    "AdaptiveMaxPool2d": lambda: (nn.AdaptiveMaxPool2d((3, 2)), _distinct(2, 2, 5, 7)),
    "Linear": lambda: (nn.Linear(5, 3), rand(4, 5)),
    "Flatten": lambda: (nn.Flatten(), rand(2, 3, 2, 2)),
    "Identity": lambda: (nn.Identity(), rand(2, 3)),
    "ReLU": lambda: (nn.ReLU(), _distinct(3, 4, shift=0.55)),
    "LeakyReLU": lambda: (nn.LeakyReLU(0.1), _distinct(3, 4, shift=0.55)),
    "Sigmoid": lambda: (nn.Sigmoid(), rand(3, 4)),
    "Tanh": lambda: (nn.Tanh(), rand(3, 4)),
    "GELU": lambda: (nn.GELU(), rand(3, 4)),
    "Softmax": lambda: (nn.Softmax(dim=1), rand(3, 4)),
    "LogSoftmax": lambda: (nn.LogSoftmax(dim=1), rand(3, 4)),
    "BatchNorm1d": lambda: (nn.BatchNorm1d(3), rand(4, 3, 2)),
    "BatchNorm2d": lambda: (nn.BatchNorm2d(3), rand(2, 3, 3, 2)),
    "SyncBatchNorm": lambda: (nn.SyncBatchNorm(3), rand(2, 3, 3, 2)),  # one process
    "TTA": lambda: (nn.TTA(nn.Sequential(nn.Conv2d(2, 2, 3), nn.Flatten()), "flip-translate"),
                    rand(2, 2, 5, 5)),
    "Dropout": lambda: (nn.Dropout(0.0), rand(3, 4)),
    "Sequential": lambda: (nn.Sequential(nn.Conv2d(2, 2, 3), nn.Tanh()), rand(1, 2, 4, 4)),
}
LOSSES = {
    "CrossEntropyLoss": lambda: (nn.CrossEntropyLoss(weight=cp.tensor([1.0, 2.0, 0.5]),
                                                     label_smoothing=0.1),
                                 rand(4, 3), cp.tensor([0, 2, 1, 2])),
    "NLLLoss": lambda: (nn.NLLLoss(reduction="sum"), rand(4, 3), cp.tensor([0, 2, 1, 2])),
    "MSELoss": lambda: (nn.MSELoss(), rand(4, 3), rand(4, 3, seed=1, grad=False)),
}
# containers and modes whose gradients are those of what they hold
NOT_LAYERS = {"Module", "ModuleList", "ModuleDict"}


def test_every_public_layer_is_gradchecked():
    public = {name for name in nn.__all__
              if inspect.isclass(getattr(nn, name)) and issubclass(getattr(nn, name), nn.Module)}
    covered = {k.split("_")[0] for k in LAYERS} | set(LOSSES) | NOT_LAYERS
    assert public - covered == set(), f"layers without a gradcheck: {public - covered}"


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_gradcheck(name):
    cp.manual_seed(0)
    module, x = LAYERS[name]()
    module_check(module, x)


def test_batchnorm_eval_gradcheck():
    bn = nn.BatchNorm2d(3).double()
    bn.running_mean.data[:] = [0.1, -0.2, 0.3]
    bn.running_var.data[:] = [0.5, 2.0, 1.5]
    bn.eval()
    module_check(bn, rand(2, 3, 2, 2))


def test_dropout_training_gradcheck_with_fixed_mask():
    d = nn.Dropout(0.4)
    x = rand(5, 6)
    cp.manual_seed(3)
    out = d(x)
    mask = out.numpy() / x.numpy()
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), mask, rtol=1e-12)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_gradcheck(name):
    loss, x, t = LOSSES[name]()
    loss.double()
    gradcheck(lambda x_: loss(x_, t), [x])


OPS = {
    "add_broadcast": (lambda a, b: a + b, [(3, 4), (4,)]),
    "sub": (lambda a, b: a - b, [(3, 1), (1, 4)]),
    "mul": (lambda a, b: a * b, [(2, 3), (2, 3)]),
    "div": (lambda a, b: a / (b * b + 1), [(2, 3), (3,)]),
    "pow_scalar": (lambda a: (a * a + 1) ** 1.5, [(2, 3)]),
    "pow_tensor": (lambda a, b: (a * a + 1) ** b, [(2, 3), (2, 3)]),
    "matmul": (lambda a, b: a @ b, [(3, 4), (4, 2)]),
    "matmul_batched": (lambda a, b: a @ b, [(2, 3, 4), (4, 2)]),
    "matmul_vec": (lambda a, b: a @ b, [(4,), (4, 2)]),
    "neg_exp_log": (lambda a: (-a).exp() + (a * a + 1).log(), [(2, 3)]),
    "sqrt_abs": (lambda a: (a.abs() + 1).sqrt(), [(2, 3)]),
    "sum_mean": (lambda a: a.sum(dim=1) + a.mean(dim=(0, 1), keepdim=True).reshape(1), [(3, 4)]),
    "max_dim": (lambda a: a.max(dim=1).values + a.min(dim=0, keepdim=True).values.sum(),
                [(3, 4)]),
    "max_all": (lambda a: a.max() * a, [(3, 4)]),
    "reshape_transpose_permute": (lambda a: a.reshape(4, 6).transpose(0, 1).permute(1, 0)
                                  .flatten(), [(2, 3, 4)]),
    "unsqueeze_squeeze_T": (lambda a: a.unsqueeze(0).squeeze(0).T, [(2, 3)]),
    "index": (lambda a: a[1:, ::2] * 2 + a[[0, 0, 1]].sum(), [(3, 4)]),
    "cat": (lambda a, b: cp.cat([a, b], dim=1), [(2, 3), (2, 2)]),
    "stack": (lambda a, b: cp.stack([a, b], dim=1), [(2, 3), (2, 3)]),
    "clamp": (lambda a: a.clamp(-0.5, 0.5), [(3, 4)]),
}


@pytest.mark.parametrize("name", list(OPS))
def test_tensor_op_gradcheck(name):
    fn, shapes = OPS[name]
    inputs = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    gradcheck(fn, inputs)


def test_cast_passes_gradient_back_in_the_source_dtype():
    a = rand(3)
    (a.float() * cp.tensor(np.float32([1, 2, 3]))).sum().backward()
    assert a.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad.numpy(), [1, 2, 3])


def test_the_public_gradcheck_catches_a_wrong_backward_and_names_the_input():
    from convnetpy.autograd import Function, GradcheckError, gradcheck

    class Cube(Function):
        factor = 1.0  # d(x^3)/dx = 3x^2, times this

        def forward(self, x):
            self.x = x
            return x ** 3

        def backward(self, g):
            return (g * 3 * self.x ** 2 * self.factor,)

    class Bad(Cube):
        factor = 1.01  # a 1% error in the gradient

    x = rand(3, 4)
    w = rand(3, 4, seed=1, grad=False)
    assert gradcheck(lambda a: Cube.apply(a), [x])
    with pytest.raises(GradcheckError, match=r"gradient of input 1 \(shape \(3, 4\)\) is off"):
        gradcheck(lambda b, a: Bad.apply(a) + b, [w, x])
    assert gradcheck(lambda a: Bad.apply(a), [x], raise_exception=False) is False
    with pytest.raises(ValueError, match="input 0 is float32; use float64"):
        gradcheck(lambda a: Cube.apply(a), [cp.tensor(np.ones(3, np.float32),
                                                      requires_grad=True)])
