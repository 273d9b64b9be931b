"""The memory of one training step, played out op by op from what each op declares.

The shape pass records every op call (``OpCall``): the bytes of its output, which inputs a
gradient flows back into, and its ``Cost`` (new arrays kept for backward, the workspace of
its forward and backward kernels on the current compute path). ``training_peak`` then
walks the step as the autograd engine runs it:

- forward, in call order: each output stays alive (the graph holds it until backward
  ends), with whatever its op keeps beside it; a kernel's workspace lives during its call;
- backward, in reverse: an op's output gradient, the gradients it returns, its workspace,
  the gradients still waiting for other ops and the parameters' gradients made so far, on
  top of every output of the forward pass (still held); an op's kept arrays go when its
  backward has run.

Parameters, buffers and optimizer state are there throughout. The highest point is the
estimate; the summary prints it with where it falls and what it is made of.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..autograd import Cost


@dataclass
class OpCall:
    """One recorded op call, at the batch size of the estimate."""
    path: str  # the innermost module running it
    out: int  # id of the output tensor
    out_bytes: int
    view: bool  # the output shares its input's memory (its gradient does not)
    tracked: bool  # a gradient flows back through it in training
    inputs: list[tuple[int, int, bool, bool]] = field(default_factory=list)
    # per tensor input: (id, bytes, a gradient flows into it, it is a parameter)
    cost: Cost = Cost()


@dataclass
class Peak:
    """The highest point of a step: its total over ``persistent`` bytes, and its parts."""
    bytes: int = 0
    phase: str = "forward"
    path: str = ""
    activations: int = 0  # outputs held for backward
    saved: int = 0  # other arrays the ops keep for backward
    gradients: int = 0  # gradients in flight and the parameters' so far
    workspace: int = 0  # the running kernel's temporaries


def training_peak(calls: list[OpCall]) -> Peak:
    """The highest memory of a training step above parameters, buffers and optimizer state
    (see the module docstring)."""
    best = Peak()

    def seen(phase: str, call: OpCall, act: int, saved: int, grads: int, work: int) -> None:
        nonlocal best
        total = act + saved + grads + work
        if total > best.bytes:
            best = Peak(total, phase, call.path, act, saved, grads, work)

    act = saved = 0
    for c in calls:
        own = 0 if c.view else c.out_bytes
        seen("forward", c, act + own, saved + c.cost.saved, 0, c.cost.workspace[0])
        if c.tracked:
            act += own
            saved += c.cost.saved
    pending: dict[int, int] = {}
    if calls and calls[-1].tracked:
        pending[calls[-1].out] = max(calls[-1].out_bytes, 1)  # the loss's gradient: ones
    params: set[int] = set()
    param_grads = 0
    for c in reversed(calls):
        grad = pending.pop(c.out, None)
        if grad is None:  # no gradient reaches it
            continue
        flows = [(key, nbytes, is_param) for key, nbytes, need, is_param in c.inputs if need]
        made = sum(nbytes for _, nbytes, _ in flows)
        waiting = sum(pending.values())
        seen("backward", c, act, saved, param_grads + waiting + grad + made,
             c.cost.workspace[1])
        saved -= c.cost.saved
        for key, nbytes, is_param in flows:
            if is_param:
                if key not in params:
                    params.add(key)
                    param_grads += nbytes
            else:  # a second gradient for the same tensor is added into the first
                pending.setdefault(key, nbytes)
    return best
