"""Masks on real networks and real Adam steps."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from agents.dqn import DQN, DQNConfig
from agents.networks import MLPConfig, NatureCNNConfig, build_network
from core.protocols import Batch, UpdateResult
from pruning.gmp import GMP, GMPConfig
from pruning.measure import weight_sparsity
from pruning.pruner import Distribution, MagnitudePruner, Scope, top_k_mask
from pruning.schedule import gmp_fraction, is_mask_update, pruning_window
from training.logger import Logger


def test_top_k_breaks_ties_by_lowest_index():
    assert top_k_mask(torch.tensor([1.0, 3.0, 1.0, 1.0, 0.5]), 3).tolist() == [True, True, True, False, False]
    assert top_k_mask(torch.ones(4), 0).sum() == 0 and top_k_mask(torch.ones(4), 4).all()


def test_each_layer_hits_its_exact_target_count_keeping_the_largest_weights():
    net = build_network(NatureCNNConfig(), (4, 84, 84), 6)
    before = {n: p.detach().abs().clone() for n, p in net.named_parameters()}
    pruner = MagnitudePruner({"online": net})
    pruner.prune_to(0.9)
    s = weight_sparsity({"online": net}, per_layer=True)
    assert abs(s["total"] - 0.9) * sum(p.numel() for p in pruner.params.values()) <= len(pruner.params)
    counts = pruner.keep_counts()
    assert all(int((p != 0).sum()) == counts[k] for k, p in pruner.params.items())
    assert s["online/head.weight"] < s["online/features.fc1.weight"]  # ERK keeps the small head denser
    for name, p in net.named_parameters():
        if p.ndim == 1:
            assert torch.equal(p.detach().abs(), before[name])  # biases are never pruned
            continue
        kept = pruner.masks[f"online/{name}"] != 0
        assert torch.equal(p != 0, kept)
        if not kept.all():
            assert before[name][kept].min() >= before[name][~kept].max()


def make_agent():
    cfg = DQNConfig(update_period=1, target_update_period=5, lr=1e-2)
    return DQN(cfg, MLPConfig(hidden_sizes=[64, 64]), (4,), 2, np.random.default_rng(0), torch.device("cpu"))


def random_batch(g, n=32):
    return Batch(torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g), torch.randn(n, generator=g),
                 torch.randn(n, 4, generator=g), torch.full((n,), 0.99), torch.ones(n), np.arange(n))


def test_pruned_weights_stay_zero_through_adam_and_targets_inherit_them():
    agent = make_agent()
    pruner = MagnitudePruner(agent.networks())
    pruner.prune_to(0.8)
    handles, frozen = pruner.attach(agent.optimizers())  # masks re-applied after every Adam step, inside it
    assert len(handles) == 1 and frozen == []
    g = torch.Generator().manual_seed(0)
    pruned = {k: m == 0 for k, m in pruner.masks.items()}
    for _ in range(12):
        agent.update(random_batch(g))
        grads = {k: p.grad for k, p in pruner.params.items()}
        assert any(float(grads[k][pruned[k]].abs().sum()) > 0 for k in grads)  # gradients do flow to them
        for k, p in pruner.params.items():
            assert torch.count_nonzero(p[pruned[k]]) == 0
    # 12 updates with a copy every 5: the last copy (end of update 10) saw masked online weights
    for name, p in agent.target.named_parameters():
        if p.ndim > 1:
            assert torch.equal(p == 0, pruner.masks[f"online/{name}"] == 0)


def test_without_reapplying_adam_regrows_pruned_weights():
    agent = make_agent()
    pruner = MagnitudePruner(agent.networks())
    pruner.prune_to(0.8)
    agent.update(random_batch(torch.Generator().manual_seed(0)))
    assert weight_sparsity(agent.networks())["total"] < 0.8


def test_global_scope_and_unpruned_output_layer():
    net = build_network(MLPConfig(hidden_sizes=[64, 32]), (8,), 3)
    pruner = MagnitudePruner({"q": net}, scope=Scope["global"], prune_output_layer=False)
    head = net.head.weight.detach().clone()
    pruner.prune_to(0.7)
    assert torch.equal(net.head.weight, head)
    n = sum(p.numel() for p in pruner.params.values())
    zeros = sum(int((p == 0).sum()) for p in pruner.params.values())
    assert zeros == round(0.7 * n)
    per_layer = {k: float((p == 0).float().mean()) for k, p in pruner.params.items()}
    assert max(per_layer.values()) - min(per_layer.values()) > 0.05  # one ranking, unequal layers

    uniform = MagnitudePruner({"q": build_network(MLPConfig(hidden_sizes=[64, 32]), (8,), 3)}, Distribution.uniform)
    uniform.prune_to(0.7)
    for p in uniform.params.values():
        assert abs(int((p == 0).sum()) - 0.7 * p.numel()) <= 1


def test_state_dict_round_trip_and_plain_parameters():
    net = build_network(MLPConfig(), (4,), 2)
    names = [n for n, _ in net.named_parameters()]
    pruner = MagnitudePruner({"online": net})
    pruner.prune_to(0.5)
    assert [n for n, _ in net.named_parameters()] == names  # unlike torch.nn.utils.prune: no weight_orig
    clone = copy.deepcopy(net)
    assert torch.equal(clone.features.fc1.weight, net.features.fc1.weight)
    other = build_network(MLPConfig(), (4,), 2)
    restored = MagnitudePruner({"online": other})
    restored.load_state_dict(pruner.state_dict())
    for k, m in pruner.masks.items():
        assert torch.equal(restored.masks[k], m)
        assert torch.count_nonzero(restored.params[k][m == 0]) == 0


def test_callback_state_dict_continues_the_schedule_exactly(tmp_path):
    """Two runs of the same updates, one interrupted halfway and rebuilt from state_dicts, end identical."""
    cfg = GMPConfig(start_frac=0.2, end_frac=0.8, update_freq_updates=4)

    def start(agent, state=None, updates=0):
        cb = GMP(cfg, sparsity=0.9, log_every_updates=1000)
        if state is not None:
            cb.load_state_dict(state)
        trainer = SimpleNamespace(agent=agent, total_updates=40, updates=updates, env_step=updates, resumed=bool(state),
                                  logger=Logger(tmp_path / str(id(cb))))
        cb.on_train_start(trainer)
        return cb, trainer

    def step(agent, cb, trainer, g):
        agent.update(random_batch(g))  # masks are recomputed and re-applied inside its optimizer step
        trainer.updates += 1
        cb.on_update_end(trainer, UpdateResult(losses={}))

    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    a = make_agent()
    torch.manual_seed(0)
    b = make_agent()
    cb_a, tr_a = start(a)
    cb_b, tr_b = start(b)
    for _ in range(18):
        step(a, cb_a, tr_a, g1)
        step(b, cb_b, tr_b, g2)
    assert 0 < cb_b.target_sparsity < 0.9 and cb_b.last_mask_update == 16  # t_start 8, multiples of 4: 8, 12, 16
    resumed = make_agent()
    resumed.load_state_dict(copy.deepcopy(b.state_dict()))
    cb_r, tr_r = start(resumed, copy.deepcopy(cb_b.state_dict()), updates=18)
    step(a, cb_a, tr_a, g1)
    step(resumed, cb_r, tr_r, g2)  # not a mask update: only the restored masks keep the zeros
    assert weight_sparsity(resumed.networks()) == weight_sparsity(a.networks())
    for _ in range(21):
        step(a, cb_a, tr_a, g1)
        step(resumed, cb_r, tr_r, g2)
    assert cb_r.target_sparsity == cb_a.target_sparsity == 0.9
    for (n, p), (_, q) in zip(a.online.named_parameters(), resumed.online.named_parameters(), strict=True):
        assert torch.equal(p, q), n


def test_per_layer_sparsity_mid_window_follows_jaxpruner():
    """MLP [120, 84] on CartPole, s_F 0.9, at s_t 0.7875 (fraction 0.875): JaxPruner scales each layer's final ERK
    sparsity, {0.287, 0.944, 0} -> {0.251, 0.826, 0}; re-solving ERK at 0.7875 would give {0, 0.838, 0}."""
    net = build_network(MLPConfig(), (4,), 2)
    pruner = MagnitudePruner({"q": net}, sparsity=0.9)
    pruner.prune_scaled(0.875)
    s = weight_sparsity({"q": net}, per_layer=True)
    assert abs(s["q/features.fc1.weight"] - 0.251) < 2e-3
    assert abs(s["q/features.fc2.weight"] - 0.826) < 2e-3
    assert s["q/head.weight"] == 0.0


@pytest.mark.parametrize("distribution", [Distribution.erk, Distribution.uniform])
def test_kept_counts_never_increase_over_the_paper_schedule(distribution):
    """Nature CNN (SAME, 6 actions), s_F 0.9, 2.5M updates pruned from 20% to 80% every 1,000: no layer's kept count
    goes up between mask updates (re-solving ERK at each s_t re-admitted a conv1 weight at update 1,916,000)."""
    net = build_network(NatureCNNConfig(), (4, 84, 84), 6)
    pruner = MagnitudePruner({"online": net}, distribution, sparsity=0.9)
    t_start, t_end = pruning_window(2_500_000, 0.2, 0.8)
    previous = pruner.keep_counts(0.0)
    for t in range(t_start, t_end + 1):
        if is_mask_update(t, t_start, t_end, 1_000):
            counts = pruner.keep_counts(gmp_fraction(t, t_start, t_end))
            assert all(counts[k] <= previous[k] for k in counts), t
            previous = counts
    total = sum(p.numel() for p in pruner.params.values())
    assert abs(sum(previous.values()) - 0.1 * total) <= len(previous)


@pytest.mark.parametrize("scope", [Scope.layer, Scope["global"]])
def test_gmp_masks_only_shrink_during_training(scope):
    """Real Adam steps with GMP's schedule inside the optimizer step: each new mask is inside the previous one."""
    agent = make_agent()
    gmp = GMP(GMPConfig(start_frac=0.0, end_frac=1.0, update_freq_updates=2, scope=scope), 0.9, 1000)
    view = SimpleNamespace(agent=agent, updates=0, total_updates=20, resumed=True, env_step=0)
    gmp.on_train_start(view)
    g, previous = torch.Generator().manual_seed(0), None
    for _ in range(20):
        agent.update(random_batch(g))
        view.updates += 1
        if gmp.pruner.masks is not None:
            if previous is not None:
                assert all(bool((gmp.pruner.masks[k] <= previous[k]).all()) for k in previous)
            previous = {k: m.clone() for k, m in gmp.pruner.masks.items()}
    assert weight_sparsity(agent.networks())["total"] == pytest.approx(0.9, abs=0.01)


def test_gmp_scores_the_weights_as_they_were_before_the_step():
    """JaxPruner computes a mask update inside the wrapped optimizer, from the parameters the step is about to
    change: the kept weights are the top |w| before the step (here they differ from the top |w| after it)."""
    torch.manual_seed(0)
    agent = make_agent()
    before = {}
    agent.optimizer.register_step_pre_hook(lambda *_: before.update(  # registered first: runs before GMP's
        {n: q.detach().clone() for n, q in agent.online.named_parameters()}))
    gmp = GMP(GMPConfig(start_frac=0.0, end_frac=0.5, update_freq_updates=100), 0.9, 1000)
    view = SimpleNamespace(agent=agent, updates=0, total_updates=10, resumed=True, env_step=0)
    gmp.on_train_start(view)
    g = torch.Generator().manual_seed(0)
    agent.update(random_batch(g))  # t = 0: a mask update at s = 0.9·(1 − (1 − 1/5)³)
    counts = gmp.pruner.keep_counts(gmp_fraction(0, 0, 5))
    torch.manual_seed(0)
    unmasked = make_agent()  # the same init and batch without GMP: the weights right after the step
    assert all(torch.equal(before[n], p) for n, p in unmasked.online.named_parameters())
    unmasked.update(random_batch(torch.Generator().manual_seed(0)))
    differs = False
    for key, mask in gmp.pruner.masks.items():
        name = key.split("/", 1)[1]
        expected = top_k_mask(before[name].abs().flatten(), counts[key]).view(mask.shape)
        assert torch.equal(mask != 0, expected)
        post = unmasked.online.get_parameter(name).detach().abs().flatten()
        differs |= not torch.equal(top_k_mask(post, counts[key]).view(mask.shape), mask != 0)
    assert differs  # scoring after the step would have chosen other weights
    assert gmp.target_sparsity == pytest.approx(0.9 * (1 - 0.8**3))
