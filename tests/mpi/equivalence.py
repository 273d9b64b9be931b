"""Train a small net for STEPS steps data-parallel (under mpiexec) or in one process, from
the same seed and data order, and save rank 0's parameters: tests/test_distributed.py
compares 2 ranks x batch B with 1 process x batch 2B.

usage: python equivalence.py OUT.npz PER_RANK_BATCH plain|syncbn STEPS [overlap|no-overlap]
"""

import sys

import numpy as np

import convnetpy as cp
import convnetpy.functional as F
from convnetpy import distributed as dist
from convnetpy import nn, optim
from convnetpy.data import DistributedSampler

out, batch, kind, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
overlap = len(sys.argv) < 6 or sys.argv[5] == "overlap"
world = dist.init() if dist.launched()[1] > 1 else dist.world()

rng = np.random.default_rng(7)
n = 64 * steps
images = rng.standard_normal((n, 3, 12, 12)).astype(np.float32)
labels = rng.integers(0, 5, n)

cp.manual_seed(0)
layers = [nn.Conv2d(3, 8, 3, padding=1)]
if kind == "syncbn":
    layers.append(nn.BatchNorm2d(8))
layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(),
           nn.Linear(8 * 4 * 4, 5)]
net = nn.Sequential(*layers)
if kind == "syncbn":
    net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
model = dist.DistributedDataParallel(net, bucket_cap_mb=0.001, overlap=overlap)
opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
sampler = DistributedSampler(n, world.size, world.rank, shuffle=True, seed=3)
order = sampler.indices(0)
for b in range(steps):
    idx = order[b * batch:(b + 1) * batch]
    loss = F.cross_entropy(model(cp.tensor(images[idx])), cp.tensor(labels[idx]))
    opt.zero_grad()
    loss.backward()
    opt.step()
if world.rank == 0:
    np.savez(out, **{k: v.numpy() for k, v in net.state_dict().items()})
