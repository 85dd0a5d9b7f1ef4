"""DQN math against hand-computed values, and the agent's update mechanics on real tensors."""

import numpy as np
import pytest
import torch

from agents.dqn import DQN, DQNConfig, Loss, td_loss, td_target
from agents.exploration import linear_epsilon
from agents.networks import MLPConfig
from agents.optimizer import OptimizerName, rmsprop
from core.errors import ConfigError
from core.protocols import Batch


def test_td_target_by_hand():
    r = torch.tensor([1.0, 0.0, -1.0, 2.0])
    discounts = torch.tensor([0.9, 0.0, 0.9, 0.81])  # gamma = 0.9; terminal; a 2-step return
    next_q = torch.tensor([[1.0, 3.0], [5.0, 2.0], [-2.0, -4.0], [1.0, 0.0]])
    # 1 + 0.9*3 ; 0 (terminal) ; -1 + 0.9*(-2) ; 2 + 0.81*1
    torch.testing.assert_close(td_target(r, discounts, next_q), torch.tensor([3.7, 0.0, -2.8, 2.81]))


def test_double_dqn_target_uses_online_argmax_and_target_value():
    r, discounts = torch.zeros(2), torch.ones(2)
    next_q_target = torch.tensor([[1.0, 3.0], [5.0, 2.0]])
    next_q_online = torch.tensor([[9.0, 0.0], [0.0, 9.0]])  # picks a=0, then a=1
    torch.testing.assert_close(td_target(r, discounts, next_q_target, next_q_online), torch.tensor([1.0, 2.0]))


def test_losses_by_hand():
    q, target = torch.tensor([0.0, 0.0]), torch.tensor([0.5, 3.0])
    assert td_loss(q, target, Loss.mse).item() == pytest.approx((0.25 + 9.0) / 2)
    assert td_loss(q, target, Loss.huber).item() == pytest.approx((0.5 * 0.25 + (3.0 - 0.5)) / 2)


@pytest.mark.parametrize("step, eps", [(0, 1.0), (100, 1.0), (150, 0.505), (200, 0.01), (10_000, 0.01)])
def test_dopamine_linear_epsilon(step, eps):
    assert linear_epsilon(step, warmup_steps=100, decay_steps=100, start=1.0, end=0.01) == pytest.approx(eps)


def make_agent(**overrides):
    cfg = DQNConfig(**{"update_period": 2, "target_update_period": 6, "lr": 1e-2, **overrides})
    return DQN(cfg, MLPConfig(hidden_sizes=[16]), (3,), 2, np.random.default_rng(0), torch.device("cpu"))


def batch(n=8):
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randn(n, 3, generator=g), torch.randint(0, 2, (n,), generator=g), torch.randn(n, generator=g),
                 torch.randn(n, 3, generator=g), torch.full((n,), 0.99), torch.ones(n), np.arange(n))


def test_target_copied_every_target_period_in_agent_steps():
    agent = make_agent()  # 6 agent steps / 2 per update = a copy every 3 updates
    w = lambda net: net.head.weight.detach().clone()  # noqa: E731
    initial = w(agent.target)
    for _ in range(2):
        agent.update(batch())
    torch.testing.assert_close(w(agent.target), initial)
    agent.update(batch())  # the copy is due after update 3: taken at its end, after the optimizer step
    after_three = w(agent.online)
    assert not torch.equal(after_three, initial)
    torch.testing.assert_close(w(agent.target), after_three)
    for _ in range(2):
        agent.update(batch())
    torch.testing.assert_close(w(agent.target), after_three)
    agent.update(batch())
    assert not torch.equal(w(agent.target), after_three)
    torch.testing.assert_close(w(agent.target), w(agent.online))


def test_update_reduces_loss_on_a_fixed_batch():
    agent = make_agent(target_update_period=10_000)
    b = batch()
    first = agent.update(b).losses["losses/td_loss"].item()
    for _ in range(300):
        last = agent.update(b).losses["losses/td_loss"].item()
    assert last < 0.05 * first


def test_eval_mode_is_greedy_up_to_eval_epsilon():
    agent = make_agent(eval_epsilon=0.0)
    obs = np.ones(3, dtype=np.float32)
    greedy = int(agent.online(torch.from_numpy(obs)[None]).argmax())
    assert all(agent.act(obs, env_step=0, eval_mode=True) == greedy for _ in range(50))
    # in training at step 0 epsilon is 1: both actions appear
    assert {agent.act(obs, env_step=0) for _ in range(100)} == {0, 1}


def test_rmsprop_is_the_minatar_papers_centred_rmsprop_by_hand():
    """Two steps of torch's centred RMSprop as MinAtar's examples/dqn.py builds it, against the formula:
    v ← αv + (1−α)g², m ← αm + (1−α)g, w ← w − lr·g / (sqrt(v − m²) + ε)."""
    agent = make_agent(optimizer=OptimizerName.rmsprop, lr=2.5e-4)
    assert isinstance(agent.optimizer, torch.optim.RMSprop)
    group = agent.optimizer.param_groups[0]
    assert (group["lr"], group["alpha"], group["eps"], group["centered"], group["momentum"]) == (2.5e-4, 0.95, 0.01,
                                                                                                 True, 0)
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = rmsprop([w], 2.5e-4, 0.95, 0.01, True)
    expected, v, m = 1.0, 0.0, 0.0
    for g in (2.0, -1.0):
        w.grad = torch.tensor([g])
        opt.step()
        v, m = 0.95 * v + 0.05 * g * g, 0.95 * m + 0.05 * g
        expected -= 2.5e-4 * g / ((v - m * m) ** 0.5 + 0.01)
        assert w.item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(1.0 - 1.121353e-3 + 5.021827e-4, rel=1e-6)  # 2·2.5e-4/0.445890, 2.5e-4/0.497827


def test_rmsprop_refuses_weight_decay_in_one_line():
    with pytest.raises(ConfigError, match="decoupled weight decay is AdamW's: with optimizer=rmsprop keep it 0"):
        DQNConfig(optimizer=OptimizerName.rmsprop, weight_decay=1e-5).validate()
