"""PPO: the math against values worked by hand, CleanRL's init and normalisation, the on-policy loop's resume after
a real SIGKILL, pruning counted in updates, and an adapter fine-tune of a trained PPO policy."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers.utils import RunningMeanStd

import train
from agents.networks import Activation, MLPConfig
from agents.ppo import PPO, GaussianHead, PPOConfig, clipped_surrogate_loss, explained_variance, gae, normalized
from agents.ppo import value_loss as ppo_value_loss
from core.callbacks import Callback
from core.errors import ConfigError
from core.protocols import OnPolicyAgent
from core.spaces import ActionKind
from tests.conftest import run_train
from tests.test_resume import assert_same_run, final_weights, interrupt, kill_resume_compare, summary
from training.checkpoint import Checkpointer


def test_gae_by_hand():
    """T = 3 steps of one env, γ = 0.9, λ = 0.5; the observation at t = 2 begins a new episode (dones[2] = 1), so
    step 1 does not bootstrap. δ2 = 1 + 0.9·0.8 − 0.7 = 1.02; δ1 = 1 − 0.6 = 0.4; δ0 = 1 + 0.9·0.6 − 0.5 = 1.04;
    A2 = 1.02, A1 = 0.4, A0 = 1.04 + 0.9·0.5·0.4 = 1.22."""
    rewards, values = torch.tensor([[1.0], [1.0], [1.0]]), torch.tensor([[0.5], [0.6], [0.7]])
    dones = torch.tensor([[0.0], [0.0], [1.0]])
    args = rewards, values, dones, torch.tensor([0.8]), torch.tensor([0.0])
    assert torch.allclose(gae(*args, gamma=0.9, gae_lambda=0.5), torch.tensor([[1.22], [0.4], [1.02]]))
    assert torch.allclose(gae(*args, gamma=0.9, gae_lambda=0.0), torch.tensor([[1.04], [0.4], [1.02]]))  # A = δ
    # λ = 1: A + V is the discounted return to the episode's end (1 + 0.9·1 = 1.9), then 1 + 0.9·0.8 past the cut
    returns = gae(*args, gamma=0.9, gae_lambda=1.0) + values
    assert torch.allclose(returns, torch.tensor([[1.9], [1.0], [1.72]]))
    # the last step ended its episode (next_done = 1): nothing bootstraps from next_value
    cut = gae(rewards, values, dones, torch.tensor([0.8]), torch.tensor([1.0]), gamma=0.9, gae_lambda=0.5)
    assert torch.allclose(cut[2], torch.tensor([0.3]))


def test_the_clipped_surrogate_by_hand():
    """mean(max(−A·r, −A·clip(r, 0.8, 1.2))): −0.5 (r under the clip, A > 0: unclipped is the max), 1, −2.4 (clipped
    at 1.2), 3.3 and 0.8 (A < 0, r = 0.5 clipped up to 0.8: the pessimistic bound) → 2.2 / 5."""
    ratio = torch.tensor([0.5, 1.0, 1.5, 1.1, 0.5])
    advantages = torch.tensor([1.0, -1.0, 2.0, -3.0, -1.0])
    assert clipped_surrogate_loss(ratio, advantages, 0.2).item() == pytest.approx(0.44)


def test_the_clipped_value_loss_by_hand_and_its_switch():
    """V = (1, 2, 0), V_old = (0.5, 1.5, 0.5), R = (2, 1, 0), ε = 0.2: unclipped errors (1, 1, 0); clipped values
    (0.7, 1.7, 0.3), errors (1.69, 0.49, 0.09); the max (1.69, 1, 0.09) halved and averaged: 2.78 / 6."""
    new, old, returns = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.5, 1.5, 0.5]), torch.tensor([2.0, 1.0, 0.0])
    assert ppo_value_loss(new, returns, old, 0.2, clip_vloss=True).item() == pytest.approx(2.78 / 6)
    assert ppo_value_loss(new, returns, old, 0.2, clip_vloss=False).item() == pytest.approx(1 / 3)


def test_advantage_normalisation_and_explained_variance_by_hand():
    assert torch.allclose(normalized(torch.tensor([1.0, 2.0, 3.0])), torch.tensor([-1.0, 0.0, 1.0]))  # Bessel std 1
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(returns, returns) == pytest.approx(1.0)
    assert explained_variance(torch.zeros(4), returns) == pytest.approx(0.0)
    assert explained_variance(torch.tensor([0.0, 1.0, 0.0, 1.0]), returns) == pytest.approx(1 - 1.0 / 1.25)
    assert explained_variance(returns, torch.ones(4)) is None  # constant returns: CleanRL's NaN, not logged


def agent_for(continuous=False, **cfg):
    cfg = PPOConfig(**cfg)
    net = MLPConfig(hidden_sizes=[64, 64], activation=Activation.tanh)
    return PPO(cfg, net, (3,), 2, np.random.default_rng(0), torch.device("cpu"),
               action_kind=ActionKind.continuous if continuous else ActionKind.discrete)


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("continuous", [False, True])
def test_cleanrl_init_orthogonal_gains_zero_biases_and_a_state_independent_log_std(continuous, shared):
    """layer_init: hidden weights orthogonal with gain √2, the policy output 0.01, the value output 1, biases 0;
    the continuous actor's log σ is zeros and not among the prunable weights."""
    agent = agent_for(continuous, shared_torso=shared)
    assert isinstance(agent, OnPolicyAgent)
    for net in agent.networks().values():
        for layer in net.features.modules():
            if isinstance(layer, torch.nn.Linear):
                w = layer.weight
                gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
                assert torch.allclose(gram, 2 * torch.eye(gram.shape[0]), atol=1e-5) and not layer.bias.any()
        assert isinstance(net.features.tanh1, torch.nn.Tanh)
    heads = ([(agent.actor_critic.head.actor, 0.01), (agent.actor_critic.head.critic, 1.0)] if shared else
             [(agent.actor.head, 0.01), (agent.critic.head, 1.0)])
    for head, gain in heads:
        layer = head.mean if isinstance(head, GaussianHead) else head
        w = layer.weight
        gram = w @ w.T
        assert torch.allclose(gram, gain**2 * torch.eye(gram.shape[0]), atol=1e-6) and not layer.bias.any()
        if isinstance(head, GaussianHead):
            assert head.log_std.shape == (2,) and not head.log_std.any()
    for net in agent.networks().values():
        assert not any("log_std" in name for name in net.builder_weights)


def test_a_minibatch_update_clips_the_global_gradient_norm_and_anneals_the_learning_rate():
    """One rollout of 4 envs × 8 steps on real CartPole; learn yields epochs × minibatches updates, each step with the
    global gradient norm (both networks together) clipped to max_grad_norm; the learning rate is CleanRL's
    (1 − (iteration − 1) / num_iterations) · learning_rate."""
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(4)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    cfg = PPOConfig(num_steps=8, num_minibatches=2, update_epochs=3, max_grad_norm=1e-3)
    agent = PPO(cfg, MLPConfig(hidden_sizes=[16]), (4,), 2, np.random.default_rng(0), torch.device("cpu"))
    obs, _ = envs.reset(seed=0)
    agent.start(obs)
    for _ in range(8):
        obs, r, term, trunc, info = envs.step(agent.collect(obs))
        agent.record(r, term, trunc, obs, {})
    results = []
    for result in agent.learn(obs, iteration=3, num_iterations=4):
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in agent._params]))
        assert norm.item() == pytest.approx(1e-3, rel=1e-3)
        results.append(result)
    assert len(results) == 6 == agent.updates_per_iteration()
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * 2.5e-4)
    assert all(set(r.losses) == {"losses/policy_loss", "losses/value_loss"} for r in results)
    assert agent.rollout.t == 0
    early = PPO(PPOConfig(num_steps=8, num_minibatches=2, update_epochs=3, target_kl=1e-12), MLPConfig(), (4,), 2,
                np.random.default_rng(0), torch.device("cpu"))
    obs, _ = envs.reset(seed=0)
    for _ in range(8):
        obs, r, term, trunc, info = envs.step(early.collect(obs))
        early.record(r, term, trunc, obs, {})
    assert len(list(early.learn(obs, 1, 1))) == 2  # target_kl stops after the first epoch
    envs.close()


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_normalisation_is_gymnasiums_wrappers_as_cleanrl_stacks_them(env_id):
    """What the agent stores from 2 envs against CleanRL's make_env stack (NormalizeObservation, clip ±10,
    NormalizeReward, clip ±10), exactly, on real Pendulum (episodes end by truncation) and CartPole (by termination,
    which resets the wrapper's discounted return): each env's final observation updates its statistics before the
    reset one, as the wrapper sees them."""
    def cleanrl(env):
        env = gym.wrappers.NormalizeObservation(env)
        env.obs_rms = RunningMeanStd(shape=env.observation_space.shape)  # float64, as Gymnasium 0.29; 1.x: float32
        env = gym.wrappers.TransformObservation(env, lambda o: np.clip(o, -10, 10), env.observation_space)
        env = gym.wrappers.NormalizeReward(env, gamma=0.99)
        return gym.wrappers.TransformReward(env, lambda r: np.clip(r, -10, 10))

    same = gym.vector.AutoresetMode.SAME_STEP
    wrapped = gym.vector.SyncVectorEnv([lambda: cleanrl(gym.make(env_id)) for _ in range(2)], autoreset_mode=same)
    raw = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(2)], autoreset_mode=same)
    continuous = env_id == "Pendulum-v1"
    steps, ends = 450, 0
    agent = PPO(PPOConfig(num_envs=2, num_steps=steps, norm_obs=True, norm_reward=True), MLPConfig(),
                raw.single_observation_space.shape, 1 if continuous else 2, np.random.default_rng(0),
                torch.device("cpu"), action_kind=ActionKind.continuous if continuous else ActionKind.discrete)
    expected, _ = wrapped.reset(seed=3)
    obs, _ = raw.reset(seed=3)
    agent.start(obs)
    for t in range(steps):
        action = agent.collect(obs)
        assert torch.equal(agent.rollout.obs[t], torch.from_numpy(expected))
        expected, expected_r, *_ = wrapped.step(action)
        obs, r, term, trunc, info = raw.step(action)
        agent.record(r, term, trunc, obs,
                     {int(i): info["final_obs"][i] for i in np.flatnonzero(info.get("_final_obs", []))})
        assert torch.equal(agent.rollout.rewards[t], torch.from_numpy(expected_r).float())
        ends += int((term | trunc).sum())
    assert ends >= 4
    wrapped.close()
    raw.close()


def test_continuous_actions_reach_the_env_clipped_and_the_rollout_keeps_the_sample():
    agent = agent_for(continuous=True, num_envs=2, num_steps=4)
    with torch.no_grad():
        agent.actor.head.log_std.fill_(2.0)  # σ = e²: most samples fall outside [-1, 1]
    env_actions = agent.collect(np.zeros((2, 3), np.float32))
    stored = agent.rollout.actions[0].numpy()
    assert np.all(np.abs(env_actions) <= 1) and np.abs(stored).max() > 1
    np.testing.assert_array_equal(env_actions, np.clip(stored, -1, 1))


# --- real runs -------------------------------------------------------------------------------------------------

# CartPole: 12 rollouts of 4 envs x 128 steps (192 updates), GMP from update 38 to 153, checkpoints every 1,024 agent
# steps, evaluations every 2,048.
PPO_CARTPOLE = ["agent=ppo", "env=classic", "total_env_steps=6144", "sparsity=0.9", "pruning.update_freq_updates=16",
                "checkpoint.every_env_steps=1024", "eval.every_env_steps=2048", "eval.episodes=3",
                "health.every_updates=32", "progress=false"]
NETWORKS = ("actor", "critic")


@pytest.fixture(scope="module")
def ppo_baseline(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ppo_baseline")
    out = run_train(*PPO_CARTPOLE, f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


@pytest.mark.parametrize("sig, where, at, resumed_from, stopped_at", [
    ("SIGKILL", "step", 2600, 2048, None),  # mid-rollout, mid-pruning: the rollout since the checkpoint is re-done
    ("SIGKILL", "eval", 4096, 3072, None),  # during an evaluation
    ("SIGTERM", "step", 2600, 3072, 3072),  # the stop waits for the rollout's end and checkpoints there
    ("SIGTERM", "eval", 2048, 2048, 2048),  # the interrupted evaluation is re-run on resume
])
def test_ppo_kill_and_resume_is_exact(tmp_path, ppo_baseline, sig, where, at, resumed_from, stopped_at):
    run_dir = tmp_path / "run"
    args = [*PPO_CARTPOLE, f"hydra.run.dir={run_dir}"]
    out = interrupt(sig, where, at, args)
    assert out.returncode == (-9 if sig == "SIGKILL" else 143), out.stderr[-3000:]
    if stopped_at is not None:
        assert out.stderr.strip().splitlines()[-1].startswith(f"stopped by {sig} at agent step {stopped_at};")
    resumed = run_train(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run_dir}/checkpoints/step_{resumed_from:012d}" in resumed.stdout
    assert_same_run(ppo_baseline, run_dir, loss="losses/policy_loss", networks=NETWORKS)


def test_continuous_ppo_on_dm_control_kill_and_resume_is_exact(tmp_path):
    """Two dm_control envs, 512 steps each per rollout, observations and rewards normalised per env, GMP: killed
    mid-rollout at agent step 1,700, resumed from 1,024 (each env re-plays 512 steps of its 1,000-step episode, and
    the normalisation statistics come from the checkpoint, not from the re-play)."""
    args = ["agent=ppo", "env=dmc", "total_env_steps=3072", "agent.num_envs=2", "agent.num_steps=512",
            "agent.num_minibatches=4", "agent.update_epochs=2", "sparsity=0.8", "pruning.update_freq_updates=2",
            "checkpoint.every_env_steps=1024", "eval.every_env_steps=3072", "eval.episodes=1",
            "health.every_updates=8", "progress=false"]
    b = kill_resume_compare(tmp_path, args, 1700, 1024, loss="losses/value_loss", networks=NETWORKS)
    assert summary(b)["sparsity_per_network"]["actor"] == pytest.approx(0.8, abs=1e-3)


class Schedule(Callback):
    """What the pruning schedule saw at every update: (updates done, target sparsity, agent step)."""

    outside_checkpoints = True

    def __init__(self):
        self.rows = []

    def on_train_start(self, trainer):
        self.method = next(cb for cb in trainer.callbacks if hasattr(cb, "target_sparsity"))
        self.total = trainer.total_updates

    def on_update_end(self, trainer, result):
        self.rows.append((trainer.updates, self.method.target_sparsity, trainer.env_step))


def test_gmp_on_ppo_counts_every_update_and_reaches_its_sparsity(compose_cfg, tmp_path):
    """8 rollouts × 4 epochs × 4 minibatches = 128 updates, counted one by one within each rollout (16 per agent step
    of its end); GMP's window is 20%-80% of them (update indices 25 to 102), masks every 8 updates inside it (32, 40,
    ..., 96) and at 102; both networks end at 90%, and
    the health probe's readings of the tanh layers reach the logs (and TensorBoard) of every network."""
    cfg = compose_cfg("agent=ppo", "env=classic", "total_env_steps=4096", "sparsity=0.9",
                      "pruning.update_freq_updates=8", "health.every_updates=16", "eval.episodes=1", "progress=false")
    schedule = Schedule()
    out = train.train(cfg, tmp_path, callbacks=[schedule])
    assert out["updates"] == schedule.total == 128 and [u for u, *_ in schedule.rows] == list(range(1, 129))
    assert [s for _, _, s in schedule.rows] == [512 * (1 + i // 16) for i in range(128)]
    targets = {u: t for u, t, _ in schedule.rows}
    assert targets[32] == 0 and targets[33] > 0  # the first mask update is update index 32, the 33rd update
    assert targets[103] == pytest.approx(0.9) and targets[102] < 0.9
    assert out["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert all(v == pytest.approx(0.9, abs=1e-3) for v in out["sparsity_per_network"].values())
    tags = {k for line in (tmp_path / "metrics.jsonl").read_text().splitlines() for k in json.loads(line)}
    for net in NETWORKS:
        assert {f"dormant/{net}/features.tanh1/tau_0", f"health/{net}/srank", f"sparsity/{net}"} <= tags
    assert {"losses/policy_loss", "losses/clipfrac", "losses/approx_kl", "charts/learning_rate"} <= tags
    assert any(p.name.startswith("events") for p in (tmp_path / "tb").iterdir())


@pytest.mark.parametrize("method", ["static", "set", "rigl", "gmp+redo+reset"])
def test_each_sparse_method_trains_ppo(compose_cfg, tmp_path, method):
    extra = {"static": ["pruning=static"], "set": ["pruning=set", "pruning.update_freq_updates=16"],
             "rigl": ["pruning=rigl", "pruning.update_freq_updates=16"],
             "gmp+redo+reset": ["pruning.update_freq_updates=8", "redo.enabled=true", "redo.every_updates=20",
                                "reset.enabled=true", "reset.every_updates=50"]}[method]
    cfg = compose_cfg("agent=ppo", "env=classic", "total_env_steps=2048", "sparsity=0.8", "eval.episodes=1",
                      "progress=false", *extra)
    out = train.train(cfg, tmp_path)
    assert out["updates"] == 64 and out["sparsity"] == pytest.approx(0.8, abs=2e-3)


def test_lottery_on_ppo_restarts_the_source_init_under_its_final_masks(tmp_path):
    src, run = tmp_path / "src", tmp_path / "run"
    base = ["agent=ppo", "env=classic", "total_env_steps=2048", "sparsity=0.8", "eval.episodes=1", "progress=false"]
    assert run_train(*base, "pruning.update_freq_updates=8", "checkpoint.save_init=true",
                     f"hydra.run.dir={src}").returncode == 0
    out = run_train(*base, "pruning=lottery", f"pruning.mask_from={src}", f"hydra.run.dir={run}")
    assert out.returncode == 0, out.stderr[-2000:]
    init = torch.load(src / "init.pt", weights_only=True)
    masks = {k: v == 0 for k, v in final_weights(src, "actor").items() if k.endswith("weight")}
    for k, pruned in masks.items():
        assert not final_weights(run, "actor")[k][pruned].any()
    assert summary(run)["sparsity"] == pytest.approx(0.8, abs=2e-3) and "actor" in init


@pytest.fixture(scope="module")
def ppo_source(tmp_path_factory):
    """A trained (briefly) PPO CartPole policy, the backbone of the fine-tunes below."""
    run_dir = tmp_path_factory.mktemp("ppo_source")
    out = run_train("agent=ppo", "env=classic", "total_env_steps=4096", "eval.episodes=1", "progress=false",
                    f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-2000:]
    return run_dir


@pytest.mark.parametrize("adapter, trained", [("lora", "lora_B"), ("vera", "vera_b"), ("read", "read.proj.weight")])
def test_an_adapter_fine_tunes_a_trained_ppo_policy_with_both_heads_adapted(ppo_source, tmp_path, adapter, trained):
    """``init.from_run=<PPO run> adapter=...`` as a user types it (agent, network and env come from the source): the
    actor and the critic each get the adapter, head included, and every backbone tensor stays the source's."""
    run_dir = tmp_path / "run"
    out = run_train(f"init.from_run={ppo_source}", f"adapter={adapter}", "total_env_steps=2048", "eval.episodes=1",
                    "progress=false", f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "init.from_run: taken from the source run: agent=ppo network=mlp env=classic" in out.stdout
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["agent"] == "ppo" and s["updates"] == 64 and 0 < s["trainable_fraction"] < 1
    source = Checkpointer.load_state(Checkpointer(ppo_source / "checkpoints", 1).complete()[0])[0]["agent"]
    for net in NETWORKS:
        final = final_weights(run_dir, net)
        for k, v in source[net].items():
            assert torch.equal(final[k], v), (net, k)  # the frozen backbone, both heads' weights included
        assert any(k.endswith(trained) and torch.count_nonzero(t) for k, t in final.items()), net
        if adapter == "lora":
            assert {"features.fc1.lora_A", "features.fc2.lora_A", "head.lora_B"} <= set(final)


def test_every_bad_value_of_agent_ppo_is_one_line(compose_cfg):
    """The rules of the on-policy loop and PPO's own (the full table of one-line errors is test_bad_input.py's)."""
    with pytest.raises(ConfigError, match=r"agent.num_minibatches=3 .*must divide agent.num_envs × agent.num_steps"):
        compose_cfg("agent=ppo", "env=classic", "agent.num_minibatches=3")
    with pytest.raises(ConfigError, match="agent.policy='categorical'.*cartpole-swingup has continuous actions"):
        compose_cfg("agent=ppo", "env=dmc", "agent.policy=categorical")


@pytest.mark.slow
def test_ppo_solves_cartpole_in_cleanrls_budget(tmp_path):
    """The shipped defaults (CleanRL's ppo.py) for CleanRL's 500k agent steps, seed 0: the last three evaluations
    average 486.2 (500, 500, 458.6) and the last 100 training episodes 485.0, over the issue's bar of 475 (CleanRL
    publishes 490.04 ± 6.12); about 3 minutes on one thread (docs/agents/ppo.md)."""
    out = run_train("agent=ppo", "env=classic", "seed=0", "progress=false", f"hydra.run.dir={tmp_path}",
                    timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["agent"] == "ppo" and s["env_steps"] == 976 * 512 and s["updates"] == 976 * 16
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r["eval/episodic_return"] for r in rows if "eval/episodic_return" in r]
    episodes = [r["charts/episodic_return"] for r in rows if "charts/episodic_return" in r]
    assert len(evals) == 20 and np.mean(evals[-3:]) >= 475, evals
    assert np.mean(episodes[-100:]) >= 475
