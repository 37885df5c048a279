"""`ShardedOptimizer`: optimizer-state sharding (ZeRO stage 1).

Every rank holds the whole model and the averaged gradients, but AdamW's two moments
(twice the model's size) are split: each parameter is owned by one rank, which alone
keeps its state and updates it; the owner then broadcasts the new values. Per-rank
optimizer memory drops to about 1/world.

    opt = ShardedOptimizer(model.parameters(), torch.optim.AdamW, lr=1e-3)

Ownership is greedy by size in parameter order (each parameter to the rank owning the
fewest elements so far), identical on every rank. `param_groups` are the full groups
(schedulers may edit their hyperparameters); `state` is this rank's shard only.
`state_dict()` is collective and returns the unsharded state dict, in the format
``optimizer_cls(all params).state_dict()`` has, so checkpoints load into either.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch.optim import Optimizer


class ShardedOptimizer(Optimizer):
    def __init__(self, params, optimizer_cls: type[Optimizer], **kwargs: Any):
        self._rank, self._world = dist.get_rank(), dist.get_world_size()
        self._optimizer_cls, self._kwargs = optimizer_cls, kwargs
        self._owner: dict[torch.Tensor, int] = {}
        self._owned_numel = [0] * self._world
        self._local: Optimizer | None = None
        super().__init__(params, kwargs)  # calls add_param_group per group
        self.state = self._local.state

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            owner = min(range(self._world), key=self._owned_numel.__getitem__)
            self._owner[p] = owner
            self._owned_numel[owner] += p.numel()
        local = {**group, "params": [p for p in group["params"] if self._owner[p] == self._rank]}
        if self._local is None:
            self._local = self._optimizer_cls([local], **self._kwargs)
        else:
            self._local.add_param_group(local)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync_hyperparameters()
        self._local.step()
        pending = [
            dist.broadcast(p.data, src=self._owner[p], async_op=True)
            for group in self.param_groups
            for p in group["params"]
        ]
        for work in pending:
            work.wait()
        return loss

    def _sync_hyperparameters(self) -> None:
        """Carry edits of the full groups (an lr schedule) into the local optimizer."""
        for full, local in zip(self.param_groups, self._local.param_groups, strict=True):
            local.update({k: v for k, v in full.items() if k != "params"})

    def state_dict(self) -> dict[str, Any]:
        """Collective: every rank gets the full (unsharded) state dict, tensors on CPU."""
        self._sync_hyperparameters()
        index = self._full_index()
        local = self._local.state_dict()
        mine = {
            index[p]: {k: v.cpu() if torch.is_tensor(v) else v for k, v in s.items()}
            for p, s in zip(self._local_params(), _states(local), strict=True)
            if s is not None
        }
        gathered: list[dict] = [None] * self._world  # type: ignore[list-item]
        dist.all_gather_object(gathered, mine)
        state = dict(sorted(kv for part in gathered for kv in part.items()))
        groups = [
            {
                **{k: v for k, v in lg.items() if k != "params"},
                "params": [index[p] for p in g["params"]],
            }
            for g, lg in zip(self.param_groups, local["param_groups"], strict=True)
        ]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a full state dict (from `state_dict` or an unsharded optimizer): keep the
        hyperparameters and this rank's part of the state."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"state dict has {len(groups)} param groups, optimizer has {len(self.param_groups)}"
            )
        index = self._full_index()
        local_params = self._local_params()
        local_index = {p: i for i, p in enumerate(local_params)}
        for full, saved in zip(self.param_groups, groups, strict=True):
            full.update({k: v for k, v in saved.items() if k != "params"})
        self._local.load_state_dict(
            {
                "state": {
                    local_index[p]: state_dict["state"][index[p]]
                    for p in local_params
                    if index[p] in state_dict["state"]
                },
                "param_groups": [
                    {**saved, "params": [local_index[p] for p in lg["params"]]}
                    for saved, lg in zip(groups, self._local.param_groups, strict=True)
                ],
            }
        )

    def _full_index(self) -> dict[torch.Tensor, int]:
        """Parameter -> its index in an unsharded optimizer's state dict."""
        params = [p for g in self.param_groups for p in g["params"]]
        return {p: i for i, p in enumerate(params)}

    def _local_params(self) -> list[torch.Tensor]:
        return [p for g in self._local.param_groups for p in g["params"]]


def _states(local_state_dict: dict[str, Any]) -> list[dict | None]:
    """The local state dict's per-parameter states in local parameter order."""
    n = sum(len(g["params"]) for g in local_state_dict["param_groups"])
    return [local_state_dict["state"].get(i) for i in range(n)]
