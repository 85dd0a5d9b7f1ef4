"""The pruning schedule and the health probe as loop callbacks. Both work on ``trainer.agent.networks()`` and
nothing else of the agent, so any agent that lists its networks gets pruned and measured."""

from __future__ import annotations

import time

import numpy as np

from pruning.health import HealthConfig, probe
from pruning.measure import weight_sparsity
from pruning.pruner import MagnitudePruner, PruningConfig
from pruning.schedule import gmp_sparsity, is_mask_update, pruning_window
from training.callbacks import Callback


def sparsity_metrics(networks, target: float) -> dict[str, float]:
    measured = weight_sparsity(networks, per_layer=True)
    return {"sparsity/target": target, **{f"sparsity/{k}": v for k, v in measured.items()}}


class PruningCallback(Callback):
    """Gradual magnitude pruning to ``sparsity`` over the run's gradient updates. With ``sparsity=0`` it runs the
    same schedule, every target is 0, and no mask is ever created."""

    def __init__(self, cfg: PruningConfig, sparsity: float, log_every_updates: int):
        self.cfg, self.sparsity, self.log_every_updates = cfg, sparsity, log_every_updates
        self.target = 0.0
        self.last_mask_update: int | None = None  # schedule position: index of the last mask update
        self._state: dict | None = None

    def on_train_start(self, trainer) -> None:
        c = self.cfg
        self.t_start, self.t_end = pruning_window(trainer.total_updates, c.start_frac, c.end_frac)
        targets = trainer.agent.target_networks() if c.mask_targets else None
        self.pruner = MagnitudePruner(trainer.agent.networks(), c.distribution, c.scope, c.prune_output_layer, targets)
        if self._state is not None:
            self.pruner.load_state_dict(self._state["pruner"])
            self.target, self.last_mask_update = self._state["target"], self._state["last_mask_update"]
        if not trainer.resumed:  # a resumed run logged this at its start already
            trainer.logger.log(sparsity_metrics(trainer.agent.networks(), self.target), trainer.env_step)

    def on_update_end(self, trainer, metrics) -> None:
        t = trainer.updates - 1  # index of the update just taken
        mask_update = is_mask_update(t, self.t_start, self.t_end, self.cfg.update_freq_updates)
        if mask_update:
            self.target, self.last_mask_update = gmp_sparsity(t, self.t_start, self.t_end, self.sparsity), t
            if self.target > 0:
                self.pruner.prune_to(self.target)
        self.pruner.apply()
        if mask_update or trainer.updates % self.log_every_updates == 0:
            trainer.logger.log(sparsity_metrics(trainer.agent.networks(), self.target), trainer.env_step)

    def state_dict(self) -> dict:
        return {"pruner": self.pruner.state_dict(), "target": self.target, "last_mask_update": self.last_mask_update}

    def load_state_dict(self, state: dict) -> None:
        self._state = state  # applied in on_train_start, once the networks exist


class HealthCallback(Callback):
    """Every ``every_updates`` updates, probes each network on ``batch_size`` replay states drawn with its own RNG
    (so probing does not change which batches the learner sees) and logs the metrics and the probe's own time."""

    def __init__(self, cfg: HealthConfig, seed: int):
        self.cfg = cfg
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4EA1]))

    def on_update_end(self, trainer, metrics) -> None:
        if trainer.updates % self.cfg.every_updates == 0:
            self.measure(trainer)

    def measure(self, trainer) -> dict[str, float]:
        t0 = time.perf_counter()
        inputs = trainer.agent.network_inputs(*trainer.replay.sample_states(self.cfg.batch_size, self.rng))
        out: dict[str, float] = {}
        for name, net in trainer.agent.networks().items():
            out.update(probe(name, net, inputs[name], self.cfg))
        trainer.logger.log({**out, "health/probe_seconds": time.perf_counter() - t0}, trainer.env_step)
        return out

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
