"""`DDPIndividualParameters`: data parallelism that all-reduces each gradient as soon
as backward has produced it, so communication overlaps the rest of backward.

    model = DDPIndividualParameters(model)      # broadcasts rank 0's weights
    loss_fn(model(x_shard)).backward()          # all-reduces launch during backward
    model.finish_gradient_synchronization()     # wait: grads are now the global mean
    optimizer.step()

Tied parameters are one tensor, so they get one hook and one all-reduce per backward
(autograd sums both uses before accumulating). Frozen parameters get no hook; a
parameter that gets no gradient in a step keeps ``grad=None`` on every rank, which
assumes every rank uses the same parameters (as `torch.nn.parallel.DistributedDataParallel`
with ``find_unused_parameters=False`` does).
"""

from __future__ import annotations

import torch.distributed as dist
from torch import Tensor, nn

from cs336_systems.ddp import _OverlappedDDP


class DDPIndividualParameters(_OverlappedDDP):
    def __init__(self, module: nn.Module):
        super().__init__(module)
        self._pending: list[dist.Work] = []

    def _grad_ready(self, p: Tensor) -> None:
        if not self._sync:  # accumulating locally (no_sync)
            return
        p.grad.div_(self._world)  # divide first: the sum could overflow in 16 bits
        self._pending.append(dist.all_reduce(p.grad, async_op=True))

    def finish_gradient_synchronization(self) -> None:
        """Block until every launched all-reduce is done: grads hold the rank mean."""
        for work in self._pending:
            work.wait()
        self._pending.clear()
