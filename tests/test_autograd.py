"""Tensor and autograd semantics: accumulation, shared nodes, deep graphs, grad mode,
dtypes, determinism, non-contiguous inputs."""

import numpy as np
import pytest

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import nn


def test_python_floats_default_to_float32_and_ints_to_int64():
    assert cp.tensor([1.0, 2.0]).dtype == np.float32
    assert cp.tensor([1, 2]).dtype == np.int64
    assert cp.tensor(np.zeros(2)).dtype == np.float64
    assert (cp.tensor([1.0]) * 2.0).dtype == np.float32
    assert cp.tensor([1.0]).double().dtype == np.float64
    assert cp.tensor([1.0], dtype=np.float64).to(np.float32).dtype == np.float32


def test_tensor_copies_but_from_numpy_shares():
    a = np.zeros(3)
    t, s = cp.tensor(a), cp.from_numpy(a)
    a[0] = 5
    assert t.numpy()[0] == 0 and s.numpy()[0] == 5


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype"):
        cp.tensor([1, 2], requires_grad=True)


def test_gradients_accumulate_across_backward_calls():
    x = cp.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3 + 2, 3 + 4])


def test_shared_node_and_residual_add():
    x = cp.tensor([[1.0, -2.0]], requires_grad=True)
    h = x * 2          # used three times below
    y = (h * h + h + F.relu(h)).sum()
    y.backward()
    # d/dx = (2h + 1 + 1[h>0]) * 2
    np.testing.assert_array_equal(x.grad.numpy(), [[(4 + 1 + 1) * 2, (-8 + 1) * 2]])


def test_thousand_layer_chain_does_not_hit_recursion_limit():
    x = cp.tensor([1.0], requires_grad=True, dtype=np.float64)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000], rtol=1e-9)


def test_no_grad_records_nothing_and_is_a_decorator():
    x = cp.tensor([1.0], requires_grad=True)
    with cp.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None

    @cp.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert cp.is_grad_enabled()


def test_second_backward_needs_retain_graph():
    x = cp.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_backward_needs_scalar_or_grad():
    x = cp.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="only for scalar outputs"):
        (x * 2).backward()
    (x * 2).backward(np.array([1.0, 10.0], dtype=np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 20.0])


def test_detach_and_retain_grad():
    x = cp.tensor([3.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    d = h.detach()
    assert not d.requires_grad and d.numpy() is h.numpy()
    (h * h).sum().backward()
    assert h.grad.item() == 12.0 and x.grad.item() == 24.0


def test_max_with_dim_returns_values_and_indices():
    x = cp.tensor([[1.0, 5.0, 5.0], [7.0, 0.0, 2.0]], requires_grad=True)
    values, indices = x.max(dim=1)
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    y = cp.tensor([2.0, 2.0, 1.0], requires_grad=True)
    y.max().backward()  # ties share the gradient evenly, as PyTorch
    assert y.grad.tolist() == [0.5, 0.5, 0.0]


def test_max_pool_ties_send_whole_gradient_to_first_maximum():
    x = cp.tensor(np.array([[[[1.0, 1.0, 0.0, 2.0],
                              [1.0, 1.0, 2.0, 2.0]]]]), requires_grad=True)
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.tolist() == [[[[0, 3]]]]
    out.sum().backward()
    assert x.grad.tolist() == [[[[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]]]


def test_nan_propagates_through_max_pool():
    x = np.array([[[[1.0, np.nan], [3.0, 2.0]]]])
    assert np.isnan(F.max_pool2d(cp.tensor(x), 2).item())


@pytest.mark.parametrize("op", [
    lambda x: F.conv2d(x, cp.tensor(np.ones((2, 3, 3, 3))), padding=1, stride=2),
    lambda x: F.max_pool2d(x, 3, 2, 1),
    lambda x: F.avg_pool2d(x, 2),
    lambda x: F.adaptive_avg_pool2d(x, 3),
    lambda x: F.adaptive_max_pool2d(x, (2, 3)),
    lambda x: F.batch_norm(x, None, None, training=True),
    lambda x: F.pad(x, (1, 2, 2, 1), mode="reflect"),
    lambda x: F.log_softmax(x, dim=1),
    lambda x: F.linear(x, cp.tensor(np.ones((5, 4)))),
    lambda x: F.leaky_relu(x, 0.2),
])
def test_non_contiguous_inputs_give_identical_results(op):
    base = np.random.default_rng(0).standard_normal((2, 8, 7, 3))
    strided = base.transpose(0, 3, 2, 1)[:, :, ::1, ::2]  # (2, 3, 7, 4), not contiguous
    assert not strided.flags.c_contiguous
    a = cp.tensor(np.ascontiguousarray(strided), requires_grad=True)
    b = cp.from_numpy(strided).requires_grad_()
    ya, yb = op(a), op(b)
    np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    proj = cp.tensor(np.random.default_rng(1).standard_normal(ya.shape))
    (ya * proj).sum().backward()
    (yb * proj).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_running_backward_twice_gives_bit_identical_gradients():
    from convnetpy.models import portable as nets

    cp.manual_seed(0)
    net = nets.convnetjs_cifar10(nn)
    x = cp.tensor(np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32))
    y = cp.tensor([1, 2, 3, 4])
    grads = []
    for _ in range(2):
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
        grads.append([p.grad.numpy().copy() for p in net.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_indexing_with_repeated_indices_accumulates():
    x = cp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2]].sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 1.0]


def test_cat_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="sizes must match except along dim 1"):
        cp.cat([cp.zeros(1, 2, 4, 4), cp.zeros(1, 3, 5, 4)], dim=1)


def test_ndarray_on_the_left_defers_to_tensor():
    x = cp.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0], dtype=np.float32) * x
    assert isinstance(y, cp.Tensor) and y.requires_grad


def test_reshape_error_names_shapes():
    with pytest.raises(ValueError, match=r"shape \(4, 4\) is invalid for input of size 6"):
        cp.zeros(2, 3).reshape(4, 4)


def test_leaf_gradients_never_share_memory():
    a = cp.tensor([1.0, 2.0], requires_grad=True)
    b = cp.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()  # Add hands the same gradient array to both parents
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.data *= 2  # e.g. clip_grad_norm_ scales in place
    assert b.grad.tolist() == [1.0, 1.0]
    c = cp.tensor([1.0, 2.0], requires_grad=True)
    (c * 1.0).sum().backward()  # a broadcast (read-only) view is copied
    assert c.grad.numpy().flags.writeable


def test_post_accumulate_grad_hooks_and_backward_callbacks():
    from convnetpy.autograd import queue_callback

    x = cp.tensor(np.ones(3), requires_grad=True)
    seen = []

    def hook(t):
        seen.append(("hook", t.grad.numpy().tolist()))
        queue_callback(lambda: seen.append("end"))

    handle = x.register_post_accumulate_grad_hook(hook)
    (x * 2 + x * 3).sum().backward()  # x used twice: its gradient is summed first, one call
    assert seen == [("hook", [5.0, 5.0, 5.0]), "end"]
    handle.remove()
    (x * 2).sum().backward()
    assert len(seen) == 2
    with pytest.raises(RuntimeError, match="during a backward pass"):
        queue_callback(lambda: None)
    with pytest.raises(RuntimeError, match="leaf tensors"):
        (x * 2).register_post_accumulate_grad_hook(hook)
