"""Rainbow's distributional math against hand-computed values, and the agent's update on real tensors."""

import math

import numpy as np
import pytest
import torch

from agents.networks import MLPConfig
from agents.noisy import NoisyLinear
from agents.rainbow import C51Head, Rainbow, RainbowConfig, c51_loss, project_distribution
from core.protocols import Batch

SUPPORT = torch.tensor([0.0, 1.0, 2.0])  # v_min 0, v_max 2, Δz 1
P = torch.tensor([0.2, 0.3, 0.5])


@pytest.mark.parametrize("ret, discount, expected", [
    # Tz = 0.5, 1.5, 2.5 -> clipped to 2: each of the first two splits half/half, the last lands on atom 2
    (0.5, 1.0, [0.1, 0.25, 0.65]),
    # Tz = 1, 2, 3 -> 2: every Tz falls exactly on an atom (l == u), no mass may be lost
    (1.0, 1.0, [0.0, 0.2, 0.8]),
    # terminal: Tz = r = 0.7 for every atom, split 0.3 / 0.7 between atoms 0 and 1
    (0.7, 0.0, [0.3, 0.7, 0.0]),
    # below v_min: everything clips onto atom 0
    (-5.0, 0.5, [1.0, 0.0, 0.0]),
    # shrinking: Tz = 0.25 * z + 0.5 = 0.5, 0.75, 1.0
    (0.5, 0.25, [0.2 * 0.5 + 0.3 * 0.25, 0.2 * 0.5 + 0.3 * 0.75 + 0.5, 0.0]),
])
def test_c51_projection_by_hand(ret, discount, expected):
    m = project_distribution(torch.tensor([ret]), torch.tensor([discount]), P[None], SUPPORT)
    torch.testing.assert_close(m[0], torch.tensor(expected))


def test_projected_rows_sum_to_one_on_dopamine_support():
    g = torch.Generator().manual_seed(0)
    support = torch.linspace(-10, 10, 51)
    probs = torch.rand(256, 51, generator=g).softmax(dim=1)
    returns = torch.randn(256, generator=g) * 8
    discounts = torch.where(torch.rand(256, generator=g) < 0.2, 0.0, 0.99 ** 3)
    m = project_distribution(returns, discounts, probs, support)
    assert (m >= 0).all()
    torch.testing.assert_close(m.sum(dim=1), torch.ones(256))
    # the projection keeps the mean wherever nothing is clipped
    inside = (returns.abs() + discounts * 10 < 10)
    torch.testing.assert_close((m @ support)[inside], (returns + discounts * (probs @ support))[inside], atol=1e-4,
                               rtol=1e-5)


def test_projection_equals_the_triangle_kernel_on_random_inputs():
    """m_i = Σ_j p_j clip(1 − |Tz_j − z_i| / Δz, 0, 1), written out in O(N²) as Dopamine does (float64: in float32
    the two forms differ by rounding, up to 5e-5)."""
    g = torch.Generator().manual_seed(1)
    support = torch.linspace(-10, 10, 51, dtype=torch.float64)
    probs = torch.rand(64, 51, generator=g, dtype=torch.float64).softmax(dim=1)
    returns = torch.randn(64, generator=g, dtype=torch.float64) * 6
    returns[:8] = torch.arange(-4, 4) * 0.4  # on the atoms (Δz = 0.4)
    discounts = torch.where(torch.arange(64) % 3 == 0, 0.0, 0.97).double()
    tz = (returns[:, None] + discounts[:, None] * support).clamp(-10, 10)
    kernel = (1 - (tz[:, None, :] - support[None, :, None]).abs() / 0.4).clamp(0, 1)
    torch.testing.assert_close(project_distribution(returns, discounts, probs, support),
                               (kernel * probs[:, None, :]).sum(2))


def test_c51_loss_by_hand():
    logits = torch.zeros(1, 2)  # p = (0.5, 0.5)
    assert c51_loss(logits, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(math.log(2))
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = (0.25, 0.75)
    target = torch.tensor([[0.5, 0.5]])
    assert c51_loss(logits, target).item() == pytest.approx(-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)))


def test_dueling_head_combines_value_and_mean_centred_advantage():
    head = C51Head(4, n_actions=3, support=torch.linspace(-1, 1, 5), dueling=True, noisy=False, sigma0=0.5)
    x = torch.randn(2, 4)
    a = head.advantage(x).view(2, 3, 5)
    v = head.value(x).view(2, 1, 5)
    torch.testing.assert_close(head(x), v + a - a.mean(dim=1, keepdim=True))
    q = head.q_values(head(x))
    torch.testing.assert_close(q, head(x).softmax(-1) @ torch.linspace(-1, 1, 5))


def test_noisy_layer_is_its_mean_in_eval_and_noisy_in_training():
    torch.manual_seed(0)
    layer = NoisyLinear(4, 3, sigma0=0.5)
    x = torch.randn(5, 4)
    torch.testing.assert_close(layer.eval()(x), x @ layer.weight.T + layer.bias)
    layer.train()
    a, b = layer(x), layer(x)
    assert not torch.allclose(a, b)
    assert layer.weight_sigma.shape == layer.weight.shape  # pruned like a weight (ndim 2)
    assert torch.all(layer.weight_sigma == 0.5 / 2.0)  # σ0 / sqrt(fan_in)


def make_agent(**overrides):
    cfg = RainbowConfig(**{"update_period": 1, "target_update_period": 100, "lr": 1e-2, "v_min": -5.0,
                           "v_max": 5.0, **overrides})
    return Rainbow(cfg, MLPConfig(hidden_sizes=[32]), (3,), 2, np.random.default_rng(0), torch.device("cpu"))


def batch(n=16, weights=None, discount=0.99 ** 3):
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randn(n, 3, generator=g), torch.randint(0, 2, (n,), generator=g), torch.rand(n, generator=g),
                 torch.randn(n, 3, generator=g), torch.full((n,), discount),
                 torch.ones(n) if weights is None else weights, np.arange(n))


@pytest.mark.parametrize("variant", [{}, {"dueling": True, "noisy": True, "double": True}])
def test_update_lowers_the_c51_loss_and_returns_per_transition_losses(variant):
    torch.manual_seed(0)
    agent = make_agent(**variant)
    b = batch(discount=0.0)  # terminal targets: two atoms each, so the cross-entropy can fall far
    first = agent.update(b)
    assert set(first.losses) == {"losses/c51_loss"} and set(first.metrics) == {"losses/q_values"}
    # Dopamine's priorities: √(cross-entropy + 1e-10), one per transition, in float64
    assert first.priorities.shape == (16,) and first.priorities.dtype == torch.float64
    torch.testing.assert_close(first.losses["losses/c51_loss"].double(), (first.priorities ** 2 - 1e-10).mean())
    for _ in range(100):
        last = agent.update(b)
    assert last.losses["losses/c51_loss"] < 0.5 * first.losses["losses/c51_loss"]
    assert make_agent(prioritized=False, **variant).update(b).priorities is None  # uniform replay needs none


def test_importance_weights_scale_each_transitions_gradient():
    """A transition with weight 0 must not move the network at all."""
    torch.manual_seed(0)
    agent = make_agent()
    weights = torch.zeros(16)
    before = [p.detach().clone() for p in agent.online.parameters()]
    agent.update(batch(weights=weights))
    after = list(agent.online.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_noisy_rainbow_explores_with_noise_not_epsilon():
    agent = make_agent(noisy=True, learning_starts=100)
    assert agent.epsilon(0) == 0.0 and make_agent().epsilon(0) == 1.0
    obs = np.zeros(3, np.float32)
    torch.manual_seed(0)
    greedy_eval = {agent.greedy(obs, eval_mode=True) for _ in range(20)}
    assert len(greedy_eval) == 1 and agent.online.training  # eval is deterministic, and training mode is restored


def test_health_probe_sees_the_mean_network_and_leaves_the_rng_alone():
    from pruning.health import HealthConfig, probe

    agent = make_agent(noisy=True)
    obs = torch.randn(8, 3)
    rng = torch.get_rng_state()
    first, second = probe("online", agent.online, obs, HealthConfig()), probe("online", agent.online, obs,
                                                                                HealthConfig())
    assert first == second and torch.equal(torch.get_rng_state(), rng) and agent.online.training
    with torch.no_grad():
        mean_q = float(agent.online.eval().q_values(obs).mean())
    assert first["health/online/q_mean"] == pytest.approx(mean_q)


def test_projection_uses_the_exact_atom_spacing_on_the_default_support():
    """Mass landing at 8.95 on Dopamine's support (Δz = 0.4) splits 0.625 / 0.375 between 8.8 and 9.2; a Δz taken
    from float32 linspace neighbours (0.39999962) gives 0.6249542 / 0.3750458."""
    support = torch.linspace(-10.0, 10.0, 51)
    probs = torch.zeros(1, 51)
    probs[0, 47] = 1.0  # atom 8.8
    m = project_distribution(torch.tensor([0.15]), torch.tensor([1.0]), probs, support)
    assert abs(float(m[0, 47]) - 0.625) < 1e-6 and abs(float(m[0, 48]) - 0.375) < 1e-6
