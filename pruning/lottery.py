"""The lottery ticket (Frankle & Carbin 2019) as Obando-Ceron et al. 2024 test it (Fig. 13): the final masks of a
finished run, applied to that run's initial weights, trained with the masks fixed. ``pruning=lottery
pruning.mask_from=<run dir>`` with the source run's ``sparsity``; the source must have been run with
``checkpoint.save_init=true`` (its ``init.pt``). The masks are the non-zeros of the source's final prunable weights.
The composition root reads the source (``suite.lottery_source``) and hands it over as ``source``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.errors import require
from core.protocols import TrainerView
from pruning.registry import METHODS
from pruning.sparse_training import SparseTraining, StaticConfig


@dataclass
class LotteryConfig(StaticConfig):
    name: str = "lottery"
    mask_from: str = ""  # a finished run folder of the same agent, env and network, run with checkpoint.save_init

    def validate(self) -> None:
        require(self.mask_from != "", "mask_from", self.mask_from,
                "pruning=lottery needs pruning.mask_from=<run dir> (a finished run with checkpoint.save_init=true)")


@dataclass
class TicketSource:
    initial: dict[str, dict[str, torch.Tensor]]  # the source's networks as built, by network name
    final: dict[str, dict[str, torch.Tensor]]  # and at the end of its run


@METHODS.register("lottery", config=LotteryConfig, sparse_from_start=True)
class Lottery(SparseTraining):
    source: TicketSource | None = None

    def on_train_start(self, trainer: TrainerView) -> None:
        if not trainer.resumed:  # a resumed run has its own weights and masks in the checkpoint
            agent, targets = trainer.agent, trainer.agent.target_networks()
            for name, net in agent.networks().items():
                net.load_state_dict(self.source.initial[name])
                if name in targets:
                    targets[name].load_state_dict(self.source.initial[name])
        super().on_train_start(trainer)

    def initial_masks(self, trainer: TrainerView) -> dict[str, torch.Tensor]:
        masks = {}
        for key, p in self.pruner.params.items():
            net, name = key.split("/", 1)
            masks[key] = (self.source.final[net][name] != 0).to(p)
        return masks
