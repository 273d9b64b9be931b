"""Train data-parallel and make rank 1 fail at step 3: raise (``raise``) or be killed
(``kill``). tests/test_distributed.py checks that every rank ends, non-zero, in time.

usage: python faulty.py OUT_DIR raise|kill
"""

import os
import signal
import sys

from convnetpy.train import Callback, TrainConfig, fit


class Fail(Callback):
    def on_step_end(self, state):
        if state.world.rank == 1 and state.step == 3:
            if sys.argv[2] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("rank 1 fails on purpose")


cfg = TrainConfig(model="convnetjs_cifar10", data="synthetic:512", epochs=3, batch_size=16,
                  progress=False, out=sys.argv[1], checkpoint_every=1)
fit(config=cfg, callbacks=[Fail()])
