"""The comparison methods on real networks, real Adam steps and real short runs: static, SET, RigL, the lottery
ticket, ReDo, the last-layer reset and weight decay."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import train
from agents.dqn import DQN, DQNConfig
from agents.networks import MinAtarCNNConfig, MLPConfig
from core.callbacks import Callback
from pruning.dynamic_sparse import SET, RigL, RigLConfig, SETConfig, drop_and_grow, drop_fraction
from pruning.measure import prunable_weights, weight_sparsity
from pruning.pruner import MagnitudePruner
from pruning.redo import ReDo, ReDoConfig
from pruning.reset import Reset, ResetConfig
from tests.conftest import run_train
from tests.test_pruner import random_batch

CARTPOLE = ["env=classic", "total_env_steps=1200", "agent.learning_starts=200", "eval.episodes=1",
            "eval.every_env_steps=600", "health.every_updates=500", "progress=false"]


def nonzeros(networks):
    return {f"{n}/{k}": (p != 0).clone() for n, net in networks.items() for k, p in prunable_weights(net).items()}


class Watch(Callback):
    """Records the networks' non-zero patterns (and the targets') at the start, before the first action, and at
    the end."""

    def on_train_start(self, trainer):
        agent = trainer.agent
        self.start = nonzeros(agent.networks())
        self.targets = nonzeros(agent.target_networks())
        self.first = {n: {k: v.clone() for k, v in net.state_dict().items()} for n, net in agent.networks().items()}
        self.counts = MagnitudePruner(agent.networks(), sparsity=0.9).keep_counts()

    def on_train_end(self, trainer):
        self.end = nonzeros(trainer.agent.networks())


def train_in_process(compose_cfg, tmp_path, *overrides):
    watch = Watch()
    summary = train.train(compose_cfg(*CARTPOLE, *overrides), tmp_path, callbacks=[watch])
    return summary, watch


# --- static ----------------------------------------------------------------------------------------------------


def test_static_is_sparse_from_the_first_action_with_exact_erk_counts_and_never_changes(compose_cfg, tmp_path):
    summary, w = train_in_process(compose_cfg, tmp_path, "pruning=static", "sparsity=0.9")
    assert summary["updates"] == 1000
    # JaxPruner's ERK by hand for CartPole's [120, 84] MLP at 0.9: the head (raw 86/168) is made dense, then
    # eps = (48 + 1,008 − ⌊0.9·168⌋) / (124 + 204) = 2.7591 keeps round(124·eps) = 342 and round(204·eps) = 563
    expected = {"online/features.fc1.weight": 342, "online/features.fc2.weight": 563, "online/head.weight": 168}
    assert {k: int(v.sum()) for k, v in w.start.items()} == expected
    assert w.counts == {k: int(v.sum()) for k, v in w.start.items()}
    assert all(torch.equal(w.start[k], w.end[k]) for k in w.start)  # 1,000 real updates later: same mask
    assert all(torch.equal(w.targets[k], w.start[k]) for k in w.start)  # the target holds the zeros from step 0


def test_static_sac_targets_hold_the_same_zeros_at_step_0(compose_cfg, tmp_path):
    summary, w = train_in_process(compose_cfg, tmp_path, "agent=sac", "env.id=Pendulum-v1",
                                  "network.hidden_sizes=[32,32]", "pruning=static", "sparsity=0.9",
                                  "total_env_steps=400")
    for net in ("critic1", "critic2"):
        keys = [k for k in w.start if k.startswith(f"{net}/")]
        assert keys and all(torch.equal(w.targets[k], w.start[k]) for k in keys)
    assert summary["sparsity_per_network"]["actor"] == pytest.approx(0.9, abs=0.01)


def test_static_masks_differ_by_seed(compose_cfg, tmp_path):
    _, a = train_in_process(compose_cfg, tmp_path / "a", "pruning=static", "sparsity=0.9", "total_env_steps=201")
    _, b = train_in_process(compose_cfg, tmp_path / "b", "pruning=static", "sparsity=0.9", "total_env_steps=201",
                            "seed=1")
    assert any(not torch.equal(a.start[k], b.start[k]) for k in a.start)


# --- SET and RigL ----------------------------------------------------------------------------------------------


def test_drop_fraction_is_a_cosine_from_d0_to_0():
    assert drop_fraction(0, 1000, 0.3) == 0.3
    assert drop_fraction(500, 1000, 0.3) == pytest.approx(0.15)
    assert drop_fraction(1000, 1000, 0.3) == pytest.approx(0.0, abs=1e-12)
    assert drop_fraction(5000, 1000, 0.3) == drop_fraction(1000, 1000, 0.3)


def test_rigl_grows_the_largest_gradients_among_the_inactive_and_keeps_the_count():
    mask = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.float32)
    weight = torch.tensor([0.5, -0.1, 0.3, 0.05, 0, 0, 0, 0, 0, 0])
    grad = torch.tensor([9.0, 0.0, 0, 0, 0.2, -0.7, 0.1, 0.6, 0, 0])
    new, dropped, grown = drop_and_grow(mask, weight, grad.abs(), 0.5)  # ⌊0.5·4⌋ = 2 dropped: |w| 0.05 and 0.1
    assert dropped == 2 and int(new.sum()) == 4
    assert new.tolist() == [True, False, True, False, False, True, False, True, False, False]
    assert grown.tolist() == [False] * 5 + [True, False, True, False, False]
    # a just-dropped weight may grow again (largest gradient), keeping its place: not counted as grown
    new, dropped, grown = drop_and_grow(mask, weight, torch.tensor([0, 5.0, 0, 0, 0.2, 0.1, 0, 0, 0, 0]), 0.5)
    assert new.tolist() == [True, True, True, False, True, False, False, False, False, False]
    assert dropped == 2 and int(grown.sum()) == 1
    assert drop_and_grow(mask, weight, grad, 0.2)[1] == 0  # ⌊0.2·4⌋ = 0: nothing changes


def make_agent(seed=0, lr=1e-2):
    cfg = DQNConfig(update_period=1, target_update_period=5, lr=lr)
    torch.manual_seed(seed)
    return DQN(cfg, MLPConfig(hidden_sizes=[64, 64]), (4,), 2, np.random.default_rng(0), torch.device("cpu"))


class Logged:
    def __init__(self):
        self.rows = []

    def log(self, metrics, step):
        self.rows.append(dict(metrics))


def run_method(method, agent, updates, total, check=None):
    """``updates`` real Adam steps with ``method`` hooked in as the loop does; ``check(t, method, rows)`` after each
    (``rows``: what the method logged during that update)."""
    view = SimpleNamespace(agent=agent, replay=None, logger=Logged(), updates=0, total_updates=total, resumed=False,
                           env_step=0)
    agent.seen = {}  # the weights and dense gradients right before each step, from a hook that runs before the method's
    agent.optimizer.register_step_pre_hook(lambda *_: agent.seen.update(
        {n: (p.detach().clone(), p.grad.clone()) for n, p in agent.online.named_parameters()}))
    method.on_train_start(view)
    g = torch.Generator().manual_seed(0)
    for _ in range(updates):
        agent.update(random_batch(g))
        view.updates += 1
        seen = len(view.logger.rows)
        method.on_update_end(view, None)
        if check is not None:
            check(view.updates - 1, method, view.logger.rows[seen:])
    return view


@pytest.mark.parametrize("cls, cfg", [(SET, SETConfig), (RigL, RigLConfig)])
def test_mask_updates_keep_counts_drop_the_floor_and_zero_grown_weights_and_moments(cls, cfg):
    agent = make_agent()
    assert agent.optimizer.defaults["fused"]
    method = cls(cfg(update_freq_updates=10, drop_fraction=0.3, end_frac=0.5), 0.9, 1000, seed=0)
    previous, changes = {}, []

    def check(t, m, rows):
        masks = m.pruner.masks
        if not previous:  # the masks the first update started from
            previous.update(first)
        assert {k: int(v.sum()) for k, v in masks.items()} == {k: int(v.sum()) for k, v in previous.items()}
        stats = [r for r in rows if "sparse/drop_fraction" in r]
        if 0 < t <= 50 and t % 10 == 0:
            d = drop_fraction(t, 50, 0.3)
            assert stats == [{"sparse/drop_fraction": d, "sparse/online/dropped":
                              sum(math.floor(d * int(v.sum())) for v in previous.values()),
                              "sparse/online/grown": sum(int(((masks[k] != 0) & (previous[k] == 0)).sum())
                                                         for k in masks)}]
            for k, p in m.pruner.params.items():
                grown = (masks[k] != 0) & (previous[k] == 0)
                state = agent.optimizer.state[p]
                assert torch.count_nonzero(p[grown]) == 0  # grown weights start at 0
                assert torch.count_nonzero(state["exp_avg"][grown]) == 0
                assert torch.count_nonzero(state["exp_avg_sq"][grown]) == 0
                weight, grad = agent.seen[k.split("/", 1)[1]]
                if cls is RigL:  # the real hook grew by the dense gradient, dropped by |w| before the step
                    new, _, _ = drop_and_grow(previous[k], weight, grad.abs(), d)
                    assert torch.equal(new.view(masks[k].shape), masks[k] != 0)
                assert torch.equal(p, weight * masks[k])  # the step was skipped: only the masks changed
            for name, p in agent.online.named_parameters():
                if p.ndim == 1:
                    assert torch.equal(p, agent.seen[name][0])  # biases too
            if any(not torch.equal(masks[k], previous[k]) for k in masks):
                changes.append(t)
        else:
            assert stats == [] and all(torch.equal(masks[k], previous[k]) for k in masks)
        previous.update({k: v.clone() for k, v in masks.items()})

    first = {}
    original = cls.on_train_start

    def start(self, trainer):
        original(self, trainer)
        first.update({k: v.clone() for k, v in self.pruner.masks.items()})

    cls.on_train_start = start
    try:
        run_method(method, agent, 100, 100, check)
    finally:
        cls.on_train_start = original
    assert changes == [10, 20, 30, 40]  # t = 50 = T_end has d = 0: nothing to drop


def test_masks_are_fixed_after_t_end_and_set_growth_follows_the_seed():
    def masks_after(seed, updates):
        m = SET(SETConfig(update_freq_updates=5, drop_fraction=0.5, end_frac=0.5), 0.9, 1000, seed=seed)
        run_method(m, make_agent(), updates, 40)
        return {k: v.clone() for k, v in m.pruner.masks.items()}

    a, b, c = masks_after(0, 21), masks_after(0, 21), masks_after(1, 21)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert all(torch.equal(a[k], v) for k, v in masks_after(0, 40).items())  # T_end = 20: no change after it


# --- ReDo and reset --------------------------------------------------------------------------------------------


class States:
    """A replay stand-in for the probe: fixed states (the unit under test is the recycling, not the sampling)."""

    def __init__(self, obs):
        self.obs = obs

    def sample_states(self, n, rng):
        return self.obs, torch.zeros(len(self.obs), dtype=torch.long)


def snapshot(agent):
    return ({k: v.clone() for k, v in agent.online.state_dict().items()},
            {id(p): {k: v.clone() for k, v in agent.optimizer.state[p].items()} for p in agent.online.parameters()})


@pytest.mark.parametrize("masked", [False, True])
def test_redo_recycles_a_forced_dead_unit_and_nothing_else(masked):
    agent = make_agent(seed=3, lr=1e-4)  # a seed where no other unit is dead on these states
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        agent.update(random_batch(g))
    pruner = MagnitudePruner(agent.networks())
    if masked:
        pruner.prune_to(0.5)
    fc1, fc2 = agent.online.features.fc1, agent.online.features.fc2
    unit = 5
    with torch.no_grad():
        fc1.weight[unit] = 0
        fc1.bias[unit] = -1.0  # its ReLU output is 0 on every state
    obs = torch.randn(256, 4, generator=g)
    view = SimpleNamespace(agent=agent, replay=States(obs), logger=Logged(), updates=0, env_step=0)
    redo = ReDo(ReDoConfig(tau=0.0), seed=0, masks=lambda: pruner.masks if masked else None)
    redo.on_train_start(view)
    before, moments = snapshot(agent)
    sparsity = weight_sparsity(agent.networks())["total"]
    assert redo.recycle(view) == {"online": 1}  # τ = 0: only the dead unit
    after = agent.online.state_dict()
    row = after["features.fc1.weight"][unit]
    keep = pruner.masks["online/features.fc1.weight"][unit] != 0 if masked else torch.ones_like(row, dtype=bool)
    assert torch.count_nonzero(row[keep]) == int(keep.sum()) and torch.count_nonzero(row[~keep]) == 0
    assert after["features.fc1.bias"][unit] == 0
    assert torch.count_nonzero(after["features.fc2.weight"][:, unit]) == 0
    s1, s2 = agent.optimizer.state[fc1.weight], agent.optimizer.state[fc2.weight]
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.count_nonzero(s1[key][unit]) == 0 and torch.count_nonzero(s2[key][:, unit]) == 0
    for name, value in after.items():  # everything else bitwise unchanged, the head included
        other = torch.ones_like(value, dtype=torch.bool)
        if name in ("features.fc1.weight", "features.fc1.bias"):
            other[unit] = False
        if name == "features.fc2.weight":
            other[:, unit] = False
        assert torch.equal(value[other], before[name][other]), name
    for p in agent.online.parameters():
        for key, v in agent.optimizer.state[p].items():
            if p is fc1.weight and key != "step":
                v, old = torch.cat([v[:unit], v[unit + 1:]]), torch.cat([moments[id(p)][key][:unit],
                                                                          moments[id(p)][key][unit + 1:]])
            elif p is fc2.weight and key != "step":
                keep_cols = torch.arange(v.shape[1]) != unit
                v, old = v[:, keep_cols], moments[id(p)][key][:, keep_cols]
            else:
                old = moments[id(p)][key]
            assert torch.equal(v, old)
    if masked:  # the masks hold: every pruned weight is still 0 (outgoing kept weights are 0 until trained)
        for k, p in pruner.params.items():
            assert torch.count_nonzero(p[pruner.masks[k] == 0]) == 0
        assert weight_sparsity(agent.networks())["total"] >= sparsity


def test_redo_zeroes_a_conv_units_flattened_columns_in_channel_major_order():
    torch.manual_seed(0)
    agent = DQN(DQNConfig(update_period=1), MinAtarCNNConfig(), (4, 10, 10), 3, np.random.default_rng(0),
                torch.device("cpu"))
    conv, fc1 = agent.online.features.conv1, agent.online.features.fc1
    with torch.no_grad():
        conv.weight[5] = 0
        conv.bias[5] = -1.0
    obs = (torch.rand(64, 4, 10, 10) > 0.7).to(torch.uint8)
    view = SimpleNamespace(agent=agent, replay=States(obs), logger=Logged(), updates=0, env_step=0)
    redo = ReDo(ReDoConfig(tau=0.0), seed=0)
    redo.on_train_start(view)
    before = fc1.weight.detach().clone()
    assert redo.recycle(view) == {"online": 1}
    cols = torch.arange(fc1.weight.shape[1]) // 64  # 16 channels of 8x8: column j belongs to channel j // 64
    assert torch.count_nonzero(fc1.weight[:, cols == 5]) == 0
    assert torch.equal(fc1.weight[:, cols != 5], before[:, cols != 5])
    assert torch.count_nonzero(conv.weight[5]) > 0 and conv.bias[5] == 0


def test_reset_redraws_the_head_at_its_period_and_nothing_else():
    agent = make_agent()
    reset = Reset(ResetConfig(every_updates=4), seed=0)

    view = SimpleNamespace(agent=agent, logger=Logged(), updates=0, env_step=0)
    reset.on_train_start(view)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        agent.update(random_batch(g))
        before = {k: v.clone() for k, v in agent.online.state_dict().items()}
        view.updates += 1
        reset.on_update_end(view, None)
        after = agent.online.state_dict()
        changed = {k for k in after if not torch.equal(after[k], before[k])}
        assert changed == ({"head.weight", "head.bias"} if view.updates - 1 == 4 else set())
    state = agent.optimizer.state[agent.online.head.weight]
    assert torch.count_nonzero(state["exp_avg"]) == 0 and reset.count == 1
    assert view.logger.rows == [{"reset/online/count": 1}]


# --- lottery ticket --------------------------------------------------------------------------------------------


def test_lottery_ticket_starts_from_the_source_init_under_its_final_mask(compose_cfg, tmp_path):
    src, run = tmp_path / "src", tmp_path / "lottery"
    out = run_train(*CARTPOLE, "sparsity=0.9", "pruning.update_freq_updates=50", "checkpoint.save_init=true",
                    f"hydra.run.dir={src}")
    assert out.returncode == 0, out.stderr[-2000:]
    initial = torch.load(src / "init.pt", weights_only=True)["online"]
    final = torch.load(sorted((src / "checkpoints").iterdir())[-1] / "state.pt", weights_only=True)["agent"]["online"]
    summary, w = train_in_process(compose_cfg, run, "pruning=lottery", "sparsity=0.9", f"pruning.mask_from={src}")
    for k, kept in w.start.items():
        name = k.split("/", 1)[1]
        assert torch.equal(kept, final[name] != 0)  # the source's final mask
        assert torch.equal(w.first["online"][name], initial[name] * kept)  # on the source's first weights
        assert torch.equal(w.end[k] | kept, kept)  # trained with the mask fixed
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3)
    bad = run_train(*CARTPOLE, "pruning=lottery", "sparsity=0.9", f"pruning.mask_from={src}",
                    "network.hidden_sizes=[64,64]", f"hydra.run.dir={tmp_path / 'bad'}", timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "pruning.mask_from" in bad.stderr and "network" in bad.stderr


# --- the tags of a real run ------------------------------------------------------------------------------------


def test_a_run_with_every_addition_logs_its_tags(tmp_path):
    out = run_train(*CARTPOLE, "pruning=rigl", "sparsity=0.9", "pruning.update_freq_updates=100", "redo.enabled=true",
                    "redo.every_updates=200", "reset.enabled=true", "reset.every_updates=300",
                    "agent.weight_decay=1e-5", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    tags = {k for r in rows for k in r}
    for tag in ("sparse/drop_fraction", "sparse/online/grown", "sparse/online/dropped", "redo/online/recycled",
                "reset/online/count", "sparsity/total"):
        assert tag in tags, tag
    assert [r["step"] for r in rows if "reset/online/count" in r] == [501, 801, 1101]  # updates 300, 600, 900
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sparsity"] == pytest.approx(0.9, abs=0.01)


def test_redo_and_reset_on_rainbows_noisy_dueling_head():
    """ReDo's outgoing columns include the noisy head's σ (the unit would otherwise still feed every output through
    the noise); a reset re-draws μ and σ of both streams."""
    from agents.rainbow import Rainbow, RainbowConfig

    torch.manual_seed(0)
    agent = Rainbow(RainbowConfig(noisy=True, dueling=True, num_atoms=11), MLPConfig(hidden_sizes=[32, 32]), (4,),
                    2, np.random.default_rng(0), torch.device("cpu"))
    fc2, head = agent.online.features.fc2, agent.online.head
    with torch.no_grad():
        fc2.weight[3] = 0
        fc2.bias[3] = -1.0
    obs = torch.randn(256, 4, generator=torch.Generator().manual_seed(1))
    view = SimpleNamespace(agent=agent, replay=States(obs), logger=Logged(), updates=0, env_step=0)
    redo = ReDo(ReDoConfig(tau=0.0), seed=0)
    redo.on_train_start(view)
    assert redo.recycle(view)["online"] >= 1  # the forced unit (and any other silent one)
    assert fc2.bias[3] == 0 and torch.count_nonzero(fc2.weight[3]) > 0
    for layer in (head.advantage, head.value):
        assert torch.count_nonzero(layer.weight[:, 3]) == 0 and torch.count_nonzero(layer.weight_sigma[:, 3]) == 0
        assert torch.count_nonzero(layer.weight[:, :3]) > 0
    before = {k: v.clone() for k, v in agent.online.state_dict().items()}
    Reset(ResetConfig(every_updates=1), seed=0).reset(view)
    after = agent.online.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {f"head.{s}.{p}" for s in ("advantage", "value") for p in ("weight", "bias", "weight_sigma")}
    sigma0 = 0.5 / math.sqrt(32)
    assert torch.all(head.value.weight_sigma == sigma0) and torch.all(head.value.bias_sigma == sigma0)


def test_sac_with_set_redo_and_reset_runs_on_all_three_networks(compose_cfg, tmp_path):
    summary, w = train_in_process(compose_cfg, tmp_path, "agent=sac", "env.id=Pendulum-v1",
                                  "network.hidden_sizes=[32,32]", "pruning=set", "sparsity=0.9",
                                  "pruning.update_freq_updates=100", "redo.enabled=true", "redo.every_updates=100",
                                  "reset.enabled=true", "reset.every_updates=300", "agent.weight_decay=1e-5",
                                  "total_env_steps=800")
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    tags = {k for r in rows for k in r}
    for net in ("actor", "critic1", "critic2"):
        for tag in (f"sparse/{net}/dropped", f"redo/{net}/recycled", f"reset/{net}/count"):
            assert tag in tags, tag
        assert summary["sparsity_per_network"][net] == pytest.approx(0.9, abs=0.01)
