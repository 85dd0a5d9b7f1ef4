"""Periodic reset of the last layer (Nikishin et al. 2022's primacy-bias reset, as Dopamine's ``LayerReset`` that
Obando-Ceron et al. 2024 compare with in Fig. 13): every ``every_updates`` updates (at update indices t > 0,
t % F == 0, after the step) each network's head is re-drawn with the network's own init from the reset's own
generator, and the optimizer's moments of the reset tensors are zeroed. Under pruning masks the re-drawn weights are
masked, so the sparsity does not change. Combinable with any pruning method: ``reset.enabled=true``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.callbacks import Callback
from core.errors import require
from core.protocols import TrainerView, UpdateResult
from pruning.pruner import zero_optimizer_state
from pruning.recycling import head_layers, optimizer_of
from pruning.redo import MasksFn
from pruning.sparse_training import method_generator


@dataclass
class ResetConfig:
    enabled: bool = False  # re-initialise the last layer every every_updates, beside any method
    every_updates: int = 100_000  # gradient updates between resets (Obando-Ceron et al. 2024: every 100k)

    def validate(self) -> None:
        require(self.every_updates >= 1, "every_updates", self.every_updates, "must be >= 1")


class Reset(Callback):
    def __init__(self, cfg: ResetConfig, seed: int, masks: MasksFn = lambda: None):
        self.cfg, self.masks = cfg, masks
        self.generator = method_generator(seed, 0x5E7)
        self.count = 0

    def on_update_end(self, trainer: TrainerView, result: UpdateResult) -> None:
        t = trainer.updates - 1
        if t > 0 and t % self.cfg.every_updates == 0:
            self.reset(trainer)
            self.count += 1
            trainer.logger.log({f"reset/{net}/count": self.count for net in trainer.agent.networks()},
                               trainer.env_step)

    @torch.no_grad()
    def reset(self, trainer: TrainerView) -> None:
        agent = trainer.agent
        optimizers, masks = agent.optimizers(), self.masks() or {}
        for name, net in agent.networks().items():
            pname = {id(p): n for n, p in net.named_parameters()}
            for layer in head_layers(net):
                for key, value in net.fresh_parameters(layer, self.generator).items():
                    param = getattr(layer, key)
                    mask = masks.get(f"{name}/{pname[id(param)]}")
                    param.copy_(value if mask is None else value * mask)
                    optimizer = optimizer_of(param, optimizers)
                    if optimizer is not None:
                        zero_optimizer_state(optimizer, param, torch.ones_like(param, dtype=torch.bool))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.count = state["count"]
