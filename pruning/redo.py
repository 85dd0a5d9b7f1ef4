"""ReDo (Sokar et al. 2023), as Dopamine's ``labs/redo/weight_recyclers.py`` (``NeuronRecycler``).

Every ``every_updates`` updates (at update indices t > 0 with t % F == 0, after the step), each hidden unit is scored
on ``batch_size`` replay states drawn with ReDo's own generator: s_i = E|h_i| / (mean_k E|h_k| + 1e-9) over the
post-ReLU outputs (a conv channel averaged over the batch and H×W). The τ-dormant units (s_i ≤ τ) are recycled:
incoming weights re-drawn with the network's own init, bias 0, outgoing weights 0 (the flattened H·W columns of a
conv unit included; in a noisy head both μ and σ), and the optimizer's moments of those incoming and outgoing weights
zeroed (Dopamine leaves the bias's moments). The output layer is never scored. Under pruning masks only kept entries
are re-drawn, so the masks hold, and a unit whose whole fan-in is pruned (dead by construction, nothing to re-draw)
is left alone. Combinable with any pruning method: ``redo.enabled=true``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.activations import captured
from core.callbacks import Callback
from core.errors import require
from core.protocols import TrainerView, UpdateResult
from pruning.health import neuron_scores
from pruning.pruner import zero_optimizer_state
from pruning.recycling import optimizer_of, outgoing_columns, unit_layers
from pruning.sparse_training import method_generator

MasksFn = Callable[[], dict[str, torch.Tensor] | None]


@dataclass
class ReDoConfig:
    enabled: bool = False  # ReDo: recycle τ-dormant units (Sokar et al. 2023) beside any method
    tau: float = 0.1  # dormancy threshold (Obando-Ceron et al. 2024, Fig. 12; Sokar et al.: 0.1 on Atari)
    every_updates: int = 1_000  # gradient updates between recycling steps
    batch_size: int = 256  # replay states scored per recycling step

    def validate(self) -> None:
        require(self.tau >= 0, "tau", self.tau, "must be >= 0")
        require(self.every_updates >= 1, "every_updates", self.every_updates, "must be >= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")


class ReDo(Callback):
    def __init__(self, cfg: ReDoConfig, seed: int, masks: MasksFn = lambda: None):
        """``masks``: the pruning method's current masks by ``<network>/<parameter>`` (None when dense)."""
        self.cfg, self.masks = cfg, masks
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4ED0]))
        self.generator = method_generator(seed, 0x4ED0)
        self.total: dict[str, int] = {}

    def on_train_start(self, trainer: TrainerView) -> None:
        self.plans = {name: unit_layers(net) for name, net in trainer.agent.networks().items()}

    def on_update_end(self, trainer: TrainerView, result: UpdateResult) -> None:
        t = trainer.updates - 1
        if t > 0 and t % self.cfg.every_updates == 0:
            counts = self.recycle(trainer)
            trainer.logger.log({f"redo/{net}/recycled": n for net, n in counts.items()}, trainer.env_step)

    @torch.no_grad()
    def recycle(self, trainer: TrainerView) -> dict[str, int]:
        agent = trainer.agent
        inputs = agent.network_inputs(*trainer.replay.sample_states(self.cfg.batch_size, self.rng))
        optimizers, masks = agent.optimizers(), self.masks() or {}
        counts = {}
        for name, net in agent.networks().items():
            plan = self.plans[name]
            with captured(net, {i: u.relu for i, u in enumerate(plan)}) as acts:  # noisy layers at their means
                net(inputs[name])
            dead = {i: neuron_scores(acts[i]) <= self.cfg.tau for i in range(len(plan))}  # all scored first
            params = dict(net.named_parameters())
            pname = {id(p): n for n, p in params.items()}
            counts[name] = 0
            for i, unit in enumerate(plan):
                w, b = unit.layer.weight, unit.layer.bias
                mask = masks.get(f"{name}/{pname[id(w)]}")
                d = dead[i] if mask is None else dead[i] & (mask.flatten(1) != 0).any(dim=1)  # revivable units
                if not bool(d.any()):
                    continue
                counts[name] += int(d.sum())
                rows = d.view(-1, *([1] * (w.dim() - 1))).expand_as(w)
                fresh = net.fresh_parameters(unit.layer, self.generator)["weight"]
                w.copy_(torch.where(rows, fresh if mask is None else fresh * mask, w))
                if b is not None:
                    b.masked_fill_(d, 0)
                self._zero_moments(w, rows, optimizers)
                for out in unit.outgoing:
                    cols = outgoing_columns(d, out)
                    for attr in ("weight", "weight_sigma"):  # a noisy layer's σ columns carry the unit too
                        param = getattr(out, attr, None)
                        if param is None:
                            continue
                        where = cols.view(1, -1, *([1] * (param.dim() - 2))).expand_as(param)
                        param.masked_fill_(where, 0)
                        self._zero_moments(param, where, optimizers)
        return counts

    @staticmethod
    def _zero_moments(param, where, optimizers) -> None:
        optimizer = optimizer_of(param, optimizers)
        if optimizer is not None:
            zero_optimizer_state(optimizer, param, where)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
