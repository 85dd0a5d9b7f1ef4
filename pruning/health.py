"""Network-health metrics on a batch of replay states: dormant neurons (Sokar et al. 2023), srank (Kumar et al.
2021), units whose whole fan-in is pruned, parameter and gradient norms, and output statistics (``q_mean`` for value
networks, ``output_mean`` for others, e.g. a policy); and the callback that probes every network periodically.

The probe reads the layers a network declares: the ReLUs inside its ``features`` and the input of its ``head``
(the penultimate features), so layers an adapter adds beside them are not measured."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from core.activations import NONLINEARITIES, captured
from core.callbacks import Callback
from core.errors import require
from core.protocols import BuiltNetwork, TrainerView, UpdateResult
from pruning.measure import prunable_weights


@dataclass
class HealthConfig:
    every_updates: int = 1_000  # gradient updates between probes: about 0.3% of DQN's training time on Atari
    batch_size: int = 256  # replay states per probe, as Sokar et al.
    # dormancy thresholds τ of the dormant-neuron fractions
    taus: list[float] = field(default_factory=lambda: [0.0, 0.025, 0.1])
    srank_delta: float = 0.01  # δ of the effective rank srank_δ (Kumar et al. 2021)

    def validate(self) -> None:
        require(self.every_updates >= 1, "every_updates", self.every_updates, "must be >= 1")
        require(self.batch_size >= 2, "batch_size", self.batch_size, "must be >= 2")
        require(all(t >= 0 for t in self.taus), "taus", list(self.taus), "thresholds must be >= 0")
        require(0 < self.srank_delta < 1, "srank_delta", self.srank_delta, "must be in (0, 1)")


def neuron_scores(activation: torch.Tensor) -> torch.Tensor:
    """Sokar et al.'s s_i = E|h_i| / (mean_k E|h_k| + 1e-9) for one layer's post-ReLU output, as their code and
    Dopamine's ``estimate_neuron_score`` compute it: the one score of the health probe and of ReDo. A conv channel is
    one neuron, averaged over the batch and H×W; a layer silent everywhere scores 0 for every neuron."""
    dims = [0, *range(2, activation.dim())]
    score = activation.abs().mean(dim=dims)
    return score / (score.mean() + 1e-9)


def srank(features: torch.Tensor, delta: float = 0.01) -> int:
    """Effective rank: min k such that the top-k singular values hold ≥ 1 − δ of their sum. In float64 on the CPU
    (a GPU's float64 SVD is slow, and the probe is rare)."""
    sv = torch.linalg.svdvals(features.detach().to("cpu", torch.float64))
    total = sv.sum()
    if total <= 0:
        return 0
    return int((sv.cumsum(0) / total < 1.0 - delta).sum()) + 1


def fanin_pruned_fraction(weight: torch.Tensor) -> float:
    """Fraction of output units (rows; conv output channels) whose every incoming weight is zero."""
    return float((weight.detach().flatten(1) == 0).all(dim=1).float().mean())


def _feature_relus(net: BuiltNetwork) -> dict[str, nn.Module]:
    """The ReLUs (or tanhs) of the network's ``features``, by their name in the whole network (``features.relu1``)."""
    inside = set(net.features.modules())
    return {name: m for name, m in net.named_modules() if isinstance(m, NONLINEARITIES) and m in inside}


@torch.inference_mode()
def probe(name: str, net: BuiltNetwork, obs: torch.Tensor, cfg: HealthConfig) -> dict[str, float]:
    """All health metrics of one network (one with ``features`` and ``head``), tagged ``dormant/<name>/…`` and
    ``health/<name>/…``. The network runs in eval mode (noisy layers at their means), so a probe neither measures
    noise nor draws from the training RNG."""
    with captured(net, _feature_relus(net), {"_penultimate": net.head}) as acts:
        out = net.q_values(obs) if hasattr(net, "q_values") else net(obs)
    metrics: dict[str, float] = {}
    penultimate = acts.pop("_penultimate")
    scores = {layer: neuron_scores(a) for layer, a in acts.items()}
    n_total = sum(s.numel() for s in scores.values())
    for tau in cfg.taus:
        dormant = {layer: int((s <= tau).sum()) for layer, s in scores.items()}
        for layer, count in dormant.items():
            metrics[f"dormant/{name}/{layer}/tau_{tau:g}"] = count / scores[layer].numel()
        if n_total:
            metrics[f"dormant/{name}/tau_{tau:g}"] = sum(dormant.values()) / n_total
    for pname, w in prunable_weights(net).items():
        metrics[f"dormant/{name}/fanin_pruned/{pname}"] = fanin_pruned_fraction(w)
    metrics[f"health/{name}/srank"] = srank(penultimate.flatten(1), cfg.srank_delta)
    params = list(net.parameters())
    metrics[f"health/{name}/param_norm"] = float(torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(p) for p in params])))
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        metrics[f"health/{name}/grad_norm"] = float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])))
    kind = "q" if hasattr(net, "q_values") else "output"  # a policy's outputs are not values
    metrics[f"health/{name}/{kind}_mean"] = float(out.float().mean())
    metrics[f"health/{name}/{kind}_var"] = float(out.float().var())
    return metrics


class HealthCallback(Callback):
    """Every ``every_updates`` updates, probes each network on ``batch_size`` replay states drawn with its own RNG
    (so probing does not change which batches the learner sees) and logs the metrics and the probe's own time."""

    def __init__(self, cfg: HealthConfig, seed: int):
        self.cfg = cfg
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4EA1]))

    def on_update_end(self, trainer: TrainerView, result: UpdateResult) -> None:
        if trainer.updates % self.cfg.every_updates == 0:
            self.measure(trainer)

    def measure(self, trainer: TrainerView) -> dict[str, float]:
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
