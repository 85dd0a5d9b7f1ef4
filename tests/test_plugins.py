"""A new pruning method and a new adapter, each written here in the test file, plug into a real CartPole run
through the seams alone: the method registry, the optimizer-step hooks, and the network transform. Nothing in
``training/`` or ``train.py`` names them."""

import json
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hydra.core.config_store import ConfigStore
from torch import nn

import suite
import train
from agents.registry import AGENTS
from core.callbacks import Callback
from core.errors import ConfigError, require
from core.protocols import Agent, OnPolicyAgent, UpdateResult
from pruning.health import HealthConfig, probe, srank
from pruning.measure import prunable_weights
from pruning.method import PruningMethod
from pruning.pruner import Distribution, MagnitudePruner
from pruning.registry import METHODS

TINY = ["env=classic", "total_env_steps=1500", "agent.learning_starts=500", "eval.episodes=1", "progress=false",
        "health.every_updates=250"]


@dataclass
class OneShotConfig:
    name: str = "one_shot"
    at_update: int = 100

    def validate(self) -> None:
        require(self.at_update >= 0, "at_update", self.at_update, "must be >= 0")


class OneShot(PruningMethod):
    """Prunes once, by magnitude and uniformly per layer, at update ``at_update``; after that, every optimizer step
    re-applies the masks and zeroes Adam's moments of the pruned weights (what SET, RigL and ReDo must do). Before
    each step it looks at the dense gradient of the pruned weights (what RigL grows by)."""

    def __init__(self, cfg: OneShotConfig, sparsity: float, log_every_updates: int, seed: int = 0):
        super().__init__(cfg, sparsity, log_every_updates, seed)
        self.dense_grad_seen, self.moments_zeroed = 0.0, 0

    def on_train_start(self, trainer) -> None:
        agent = trainer.agent
        self.pruner = MagnitudePruner(agent.networks(), Distribution.uniform)
        self.pruner.attach(agent.optimizers(), lambda nets, opt: self.prune(trainer.updates))
        for optimizer in agent.optimizers().values():
            optimizer.register_step_pre_hook(self.read_gradients)
            optimizer.register_step_post_hook(self.zero_moments)  # runs after the pruner's own post-step hook

    def prune(self, t: int) -> None:
        if t == self.cfg.at_update:
            self.target = self.sparsity
            self.pruner.prune_to(self.sparsity)

    def pruned(self, optimizer):
        for key, p in self.pruner.params.items():
            if self.pruner.masks is not None and any(p is q for g in optimizer.param_groups for q in g["params"]):
                yield p, self.pruner.masks[key] == 0

    def read_gradients(self, optimizer, args, kwargs) -> None:
        for p, pruned in self.pruned(optimizer):
            self.dense_grad_seen += float(p.grad[pruned].abs().sum())

    def zero_moments(self, optimizer, args, kwargs) -> None:
        for p, pruned in self.pruned(optimizer):
            state = optimizer.state[p]
            state["exp_avg"][pruned] = 0
            state["exp_avg_sq"][pruned] = 0
            self.moments_zeroed += 1

    def on_update_end(self, trainer, result: UpdateResult) -> None:
        if trainer.updates - 1 == self.cfg.at_update:
            self.log_sparsity(trainer)


@pytest.fixture
def one_shot():
    """Registered as a module of pruning/ registers itself, and with its schema as conf/pruning/one_shot.yaml would
    (here straight in Hydra's ConfigStore: this file is not in conf/)."""
    METHODS.register("one_shot", config=OneShotConfig)(OneShot)
    ConfigStore.instance().store(group="pruning", name="one_shot", node=OneShotConfig)
    yield
    METHODS.remove("one_shot")


class Grab(Callback):
    def on_train_start(self, trainer):
        self.agent, self.method = trainer.agent, trainer.callbacks[0]
        self.initial = {k: p.detach().clone() for k, p in trainer.agent.online.named_parameters()}


def test_a_pruning_method_from_a_test_file_trains_cartpole(compose_cfg, one_shot, tmp_path):
    cfg = compose_cfg(*TINY, "pruning=one_shot", "pruning.at_update=100", "sparsity=0.6")
    assert isinstance(cfg.pruning, OneShotConfig)
    grab = Grab()
    summary = train.train(cfg, tmp_path, callbacks=[grab])
    assert summary["updates"] == 1000 and summary["target_sparsity"] == 0.6
    for name, value in summary["sparsity_per_network"].items():
        assert value == pytest.approx(0.6, abs=1e-3), name
    method, optimizer = grab.method, grab.agent.optimizers()["online"]
    assert isinstance(method, OneShot) and method.dense_grad_seen > 0  # pruned weights still get dense gradients
    assert method.moments_zeroed == 3 * 900  # three weight tensors, every step from update 100 on
    for p, pruned in method.pruned(optimizer):
        assert pruned.any() and not p[pruned].any()
        assert not optimizer.state[p]["exp_avg"][pruned].any() and not optimizer.state[p]["exp_avg_sq"][pruned].any()
        assert optimizer.state[p]["exp_avg_sq"][~pruned].any()  # the kept weights' moments are Adam's own


def test_a_bad_value_of_the_new_method_is_one_line(compose_cfg, one_shot):
    with pytest.raises(ConfigError, match=r"pruning.at_update=-1 is not allowed; must be >= 0"):
        compose_cfg(*TINY, "pruning=one_shot", "pruning.at_update=-1")


class LoRALinear(nn.Linear):
    """The head with a low-rank side path (h = W x + b + up(relu(down(x)))), added without renaming ``weight``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.lora(x)


def lora_head(net: nn.Module) -> nn.Module:
    """A toy adapter: freeze the network, give its head a rank-4 path whose up-projection starts at zero."""
    net.requires_grad_(False)
    head = net.head
    head.__class__ = LoRALinear
    head.lora = nn.Sequential(OrderedDict(down=nn.Linear(head.in_features, 4, bias=False), relu=nn.ReLU(),
                                          up=nn.Linear(4, head.out_features, bias=False)))
    nn.init.zeros_(head.lora.up.weight)
    return net


def test_an_adapter_trains_alone_and_is_never_pruned_or_probed(compose_cfg, tmp_path):
    """With the backbone frozen by the transform, the optimizer holds only the adapter; GMP still prunes the
    builder's weights (and only those) on its schedule; the health probe measures the declared features."""
    cfg = compose_cfg(*TINY, "sparsity=0.5", "pruning.update_freq_updates=100")
    grab = Grab()
    summary = train.train(cfg, tmp_path, callbacks=[grab], transform=lora_head)
    online = grab.agent.online
    lora = {id(p) for p in online.head.lora.parameters()}
    optimizer = grab.agent.optimizers()["online"]
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == lora
    assert set(prunable_weights(online)) == {"features.fc1.weight", "features.fc2.weight", "head.weight"}
    assert summary["sparsity"] == pytest.approx(0.5, abs=1e-3)
    masks = grab.method.pruner.masks
    for name, p in online.named_parameters():
        if id(p) in lora:
            assert p.all() and not torch.equal(p, grab.initial[name])  # trained, never masked
        elif f"online/{name}" in masks:  # frozen: the kept weights are the initial ones, the rest zero
            kept = masks[f"online/{name}"] == 1
            assert torch.equal(p[kept], grab.initial[name][kept]) and not p[~kept].any()
        else:
            assert torch.equal(p, grab.initial[name])  # frozen biases
    tags = {k for line in (tmp_path / "metrics.jsonl").read_text().splitlines() for k in json.loads(line)}
    assert "dormant/online/features.relu2/tau_0" in tags and not any("lora" in t for t in tags)
    obs = torch.randn(64, 4)
    m = probe("online", online, obs, HealthConfig())
    with torch.no_grad():
        assert m["health/online/srank"] == srank(online.features(obs))  # the head's input, not the adapter's


@pytest.mark.parametrize("name", AGENTS.names())
def test_every_agent_keeps_the_protocol(compose_cfg, name):
    """Each registered agent, built as train.py builds it on its env: the protocol's methods, one optimizer entry
    for every trainable parameter, an update result the loop can read, and an RNG state that replays acting. An
    on-policy agent (PPO) learns from a rollout of its vector env instead of replay."""
    env = "env=classic" if name != "sac" else "env=dmc"
    on_policy = AGENTS.get(name).on_policy
    sizes = ["agent.num_envs=2", "agent.num_steps=16"] if on_policy else ["agent.batch_size=8"]
    cfg = compose_cfg(f"agent={name}", env, *sizes, "network.hidden_sizes=[16]")
    env = suite.build_vector_env(cfg) if on_policy else suite.build_env(cfg, "train")
    agent = suite.build_agent(cfg, env, np.random.default_rng(0), torch.device("cpu"))
    assert isinstance(agent, Agent) and isinstance(agent, OnPolicyAgent) == on_policy
    stepped = [id(p) for opt in agent.optimizers().values() for g in opt.param_groups for p in g["params"]]
    assert len(stepped) == len(set(stepped))
    trainable = {id(p) for net in agent.networks().values() for p in net.parameters() if p.requires_grad}
    assert trainable <= set(stepped)
    obs, _ = env.reset(seed=0)
    if on_policy:
        agent.start(obs)
        for _ in range(agent.num_steps):
            obs, reward, terminated, truncated, _ = env.step(agent.collect(obs))
            agent.record(reward, terminated, truncated, obs, {})
        results = list(agent.learn(obs, 1, 1))
        assert len(results) == agent.updates_per_iteration()
        result, obs = results[-1], obs[0]
    else:
        replay = suite.build_replay(cfg, env, np.random.default_rng(1), torch.device("cpu"))
        for step in range(64):
            action = agent.act(obs, step)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            replay.add(obs, action, reward, terminated, terminated or truncated, next_obs)
            obs = env.reset()[0] if terminated or truncated else next_obs
        result = agent.update(replay.sample(8))
    assert result.losses and all(t.startswith("losses/") and torch.isfinite(v) for t, v in result.losses.items())
    assert (result.priorities is not None) == bool(getattr(cfg.agent, "prioritized", False))
    state = agent.rng_state()
    first = [agent.act(obs, 0) for _ in range(5)]
    agent.set_rng_state(state)
    assert all(np.array_equal(a, b) for a, b in zip(first, [agent.act(obs, 0) for _ in range(5)], strict=True))
    env.close()
