"""Training health ("babysitting the learning process", CS231n): every ``health_every``
steps ``HealthMonitor`` (monitor.py) records, per layer, the update/parameter norm ratio,
the gradient norm and a gradient histogram (histogram.py), per activation layer the share of
dead ReLUs and a histogram of the outputs, and at the first step the loss against ln(number
of classes); it prints a warning once per (kind, layer) when a number looks wrong, with a
hint (rules.py). Everything goes to ``run_dir/health.jsonl`` (log.py: its format and
``read_health``).

It costs no extra forward or backward: at the end of the step before a recording step it
copies the parameters and hooks the activation layers; at the end of the recording step the
update is the difference, the gradients are still the ones the optimizer used (they are
zeroed just before the next backward, clipped when ``grad_clip`` is set), and the hooks go.
"""

from .histogram import HIST_EDGES, histogram
from .log import read_health
from .monitor import ACTIVATIONS, HealthMonitor
from .rules import (
    DEAD_FRACTION,
    RATIO_HIGH,
    RATIO_LOW,
    WARNINGS,
    check,
    message,
)

__all__ = ["HealthMonitor", "read_health", "check", "message", "histogram", "HIST_EDGES",
           "ACTIVATIONS", "WARNINGS", "RATIO_HIGH", "RATIO_LOW", "DEAD_FRACTION"]
