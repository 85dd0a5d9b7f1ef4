"""SAC: the squashed-Gaussian log-probability by hand, the update's pieces, acting, and GMP over its networks."""

import copy
import math

import numpy as np
import pytest
import torch

from agents.networks import MLPConfig
from agents.sac import SAC, SACConfig, squashed_gaussian_log_prob
from core.protocols import Batch
from pruning.measure import weight_sparsity
from pruning.pruner import MagnitudePruner

OBS, ACT = 5, 2


def make_agent(**kw):
    torch.manual_seed(0)
    return SAC(SACConfig(**kw), MLPConfig(hidden_sizes=[32, 32]), (OBS,), ACT, np.random.default_rng(0),
               torch.device("cpu"))


def make_batch(n=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.randn(n, OBS, generator=g), torch.full((n,), 0.99),
                 torch.ones(n), np.arange(n))


def test_log_prob_by_hand():
    """u = 0.5, mean 0.2, σ = 0.5 in one dim: log N(0.5; 0.2, 0.25) − log(1 − tanh(0.5)²)."""
    u, mean, std = 0.5, 0.2, 0.5
    gaussian = -0.5 * ((u - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)
    by_hand = gaussian - math.log(1 - math.tanh(u) ** 2)
    assert by_hand == pytest.approx(-0.1656, abs=1e-4)  # −0.4058 + 0.2402
    got = squashed_gaussian_log_prob(torch.tensor([[u]]), torch.tensor([[mean]]), torch.tensor([[math.log(std)]]))
    assert float(got) == pytest.approx(by_hand, rel=1e-6)


def test_log_prob_sums_dims_and_matches_torch_tanh_transform():
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(100, 3, generator=g, dtype=torch.float64), \
        torch.randn(100, 3, generator=g, dtype=torch.float64) * 0.5
    u = mean + log_std.exp() * torch.randn(100, 3, generator=g, dtype=torch.float64) * 3  # reaching |u| ≈ 10
    dist = torch.distributions.TransformedDistribution(torch.distributions.Normal(mean, log_std.exp()),
                                                       [torch.distributions.TanhTransform()])
    expected = dist.log_prob(torch.tanh(u).clamp(-1 + 1e-15, 1 - 1e-15)).sum(-1)
    ok = torch.tanh(u).abs().max(-1).values < 1 - 1e-12  # where tanh(u) is still invertible in float64
    torch.testing.assert_close(squashed_gaussian_log_prob(u, mean, log_std)[ok], expected[ok], rtol=1e-5, atol=1e-5)
    assert torch.isfinite(squashed_gaussian_log_prob(u * 100, mean, log_std)).all()  # the stable form never NaNs


def test_log_std_is_bounded_and_evaluation_is_the_mean():
    agent = make_agent(log_std_min=-3.0, log_std_max=1.0)
    obs = torch.randn(500, OBS) * 100
    _, log_std = agent.actor.dist(obs)
    assert log_std.min() >= -3.0 and log_std.max() <= 1.0
    o = np.ones(OBS, np.float32)
    a = agent.act(o, env_step=10**6, eval_mode=True)
    np.testing.assert_allclose(a, torch.tanh(agent.actor.dist(torch.from_numpy(o)[None])[0])[0].detach().numpy(),
                               rtol=1e-6)
    np.testing.assert_array_equal(a, agent.act(o, env_step=10**6, eval_mode=True))
    assert not np.array_equal(agent.act(o, 10**6), agent.act(o, 10**6))  # training acts by sampling


def test_warm_up_actions_are_uniform_in_unit_range_from_the_agent_rng():
    agent = make_agent(learning_starts=100)
    actions = np.stack([agent.act(np.zeros(OBS, np.float32), step) for step in range(100)])
    assert actions.dtype == np.float32 and actions.shape == (100, ACT)
    assert actions.min() >= -1 and actions.max() <= 1 and abs(actions.mean()) < 0.15
    expected = np.random.default_rng(0).uniform(-1, 1, (100, ACT)).astype(np.float32)
    np.testing.assert_array_equal(actions, expected)


@pytest.mark.parametrize("reward_scale", [1.0, 0.1])
def test_critic_target_is_the_soft_bellman_backup(reward_scale):
    """The critics regress on c·r + γ^k (min Q_target(s', a') − α log π(a'|s')) with a' from the current policy;
    c = agent.reward_scale (1, or Dopamine's 0.1 in ``sac.gin``)."""
    agent, batch = make_agent(reward_scale=reward_scale), make_batch()
    state = torch.get_rng_state()
    with torch.no_grad():
        next_a, next_logp = agent.actor.sample(batch.next_obs)
        sa = torch.cat([batch.next_obs, next_a], 1)
        q_next = torch.min(agent.target1(sa), agent.target2(sa)).squeeze(1)
        target = reward_scale * batch.returns + batch.discounts * (q_next - 1.0 * next_logp)  # α = init_alpha = 1
        q1 = agent.critic1(torch.cat([batch.obs, batch.actions], 1)).squeeze(1)
    torch.set_rng_state(state)
    metrics = agent.update(batch).losses
    assert float(metrics["losses/qf1_loss"]) == pytest.approx(float(((q1 - target) ** 2).mean()), rel=1e-5)


def test_polyak_step_and_temperature_direction():
    """The Polyak step ends each update, toward the critic as its optimizer step (and step hooks) left it."""
    agent = make_agent(tau=0.25)
    before = [p.clone() for p in agent.target1.parameters()]
    agent.update(make_batch())
    critic = [p.clone() for p in agent.critic1.parameters()]
    assert not all(torch.equal(a, b) for a, b in zip(before, critic, strict=True))
    for old, new, target in zip(before, critic, agent.target1.parameters(), strict=True):
        torch.testing.assert_close(target, 0.75 * old + 0.25 * new)
    # entropy above target (−|A| = −2 here, a fresh policy is near −log-uniform) → α decreases
    assert float(agent.log_alpha.detach()) < 0.0
    high = make_agent(target_entropy=50.0)
    high.update(make_batch())
    assert float(high.log_alpha.detach()) > 0.0


def test_updates_fit_the_critics_and_their_gradients_are_their_own_loss_only():
    """The actor's loss is differentiated through frozen critics, so what the critics' weights hold after an
    update is the gradient of the critic loss alone."""
    agent, batch = make_agent(critic_lr=3e-3), make_batch()._replace(discounts=torch.zeros(64))  # target = returns
    first = float(agent.update(batch).losses["losses/qf1_loss"])
    for _ in range(300):
        last = agent.update(batch)
    assert float(last.losses["losses/qf1_loss"]) < 0.2 * first
    assert set(last.losses) == {"losses/qf1_loss", "losses/qf2_loss", "losses/qf_loss", "losses/actor_loss",
                                "losses/alpha_loss"}  # what the NaN guard checks
    assert set(last.metrics) == {"losses/qf1_values", "losses/qf2_values", "losses/alpha", "losses/entropy"}
    params = [*agent.critic1.parameters(), *agent.critic2.parameters()]
    loss = sum(((agent.q(c, batch.obs, batch.actions) - batch.returns) ** 2).mean()
               for c in (agent.critic1, agent.critic2))
    expected = torch.autograd.grad(loss, params)
    agent.update(batch)
    for p, g in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_target_entropy_is_per_action_dimension_unless_given():
    """−|A| by default (Haarnoja et al.), −|A|/2 with Dopamine's per-dimension value, a given value as it is."""
    assert make_agent().target_entropy == -2.0
    assert make_agent(target_entropy_per_action_dim=-0.5).target_entropy == -1.0
    assert make_agent(target_entropy=-7.0, target_entropy_per_action_dim=-0.5).target_entropy == -7.0


def test_fixed_temperature_without_autotune():
    agent = make_agent(autotune=False, init_alpha=0.2)
    metrics = agent.update(make_batch()).logged()
    assert "losses/alpha_loss" not in metrics and float(metrics["losses/alpha"]) == pytest.approx(0.2)


def test_state_dict_round_trip_continues_identically():
    a, b = make_agent(), make_agent(init_alpha=0.5)
    for _ in range(3):
        a.update(make_batch())
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # as through a checkpoint file: no shared tensors
    torch.manual_seed(5)
    ma = a.update(make_batch(seed=2)).logged()
    torch.manual_seed(5)
    mb = b.update(make_batch(seed=2)).logged()
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    assert all(torch.equal(p, q) for p, q in zip(a.target2.parameters(), b.target2.parameters(), strict=True))


@pytest.mark.parametrize("mask_targets", [False, True])
def test_gmp_prunes_actor_and_both_critics_and_targets_only_on_request(mask_targets):
    """Each network reaches the target sparsity on its own (ERK within each network). Polyak targets are left as
    averages of the masked weights unless ``mask_targets``: then they carry exactly the online zeros."""
    agent = make_agent()
    targets = agent.target_networks() if mask_targets else None
    pruner = MagnitudePruner(agent.networks(), targets=targets)
    pruner.prune_to(0.9)
    handles, _ = pruner.attach(agent.optimizers())  # as the pruning method does: masks re-applied in each step
    assert len(handles) == 2  # actor and critics; the temperature's optimizer holds no masked weight
    t0 = agent.target1.features.fc2.weight.clone()
    for _ in range(5):
        agent.update(make_batch())
    measured = weight_sparsity(agent.networks())
    counts = pruner.keep_counts()  # JaxPruner's per-layer rounding: within a weight per layer of 0.9 on tiny nets
    for name in ("actor", "critic1", "critic2"):
        keys = [k for k in counts if k.startswith(f"{name}/")]
        assert measured[name] == 1 - sum(counts[k] for k in keys) / sum(pruner.params[k].numel() for k in keys)
        assert measured[name] == pytest.approx(0.9, abs=len(keys) / sum(pruner.params[k].numel() for k in keys))
    w, t = agent.critic1.features.fc2.weight, agent.target1.features.fc2.weight
    pruned = w == 0
    if mask_targets:
        assert torch.equal(t == 0, pruned)
    else:
        # each Polyak step averages with a masked critic: the target's pruned weights decay as (1 − τ)^k exactly
        torch.testing.assert_close(t[pruned], t0[pruned] * (1 - 0.005) ** 5, rtol=1e-6, atol=0)
        assert weight_sparsity(agent.target_networks())["total"] == 0.0
