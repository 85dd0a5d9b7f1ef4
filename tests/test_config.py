"""Hydra composition of every group option and of the documented overrides."""

import pytest
import yaml

from agents.dqn import DQNConfig, Loss
from agents.networks import Init, MLPConfig, NatureCNNConfig, Padding
from agents.sac import SACConfig
from core.errors import ConfigError
from envs.atari import AtariConfig, Profile
from envs.classic import ClassicConfig
from envs.dmc import DMCConfig
from envs.mujoco import MuJoCoConfig
from tests.conftest import run_train
from training.preflight import group_options


def test_defaults_are_dopamine_dqn_on_pong_with_the_nature_cnn(compose_cfg):
    cfg = compose_cfg()
    assert isinstance(cfg.agent, DQNConfig) and isinstance(cfg.env, AtariConfig)
    assert isinstance(cfg.network, NatureCNNConfig) and cfg.network.padding == Padding.same
    a = cfg.agent
    assert (a.learning_starts, a.replay_capacity, a.batch_size, a.update_period, a.target_update_period) == (
        20_000, 1_000_000, 32, 4, 8_000)
    assert (a.lr, a.adam_eps, a.gamma, a.loss, a.epsilon_end, a.epsilon_decay_steps, a.eval_epsilon) == (
        6.25e-5, 1.5e-4, 0.99, Loss.mse, 0.01, 250_000, 0.001)
    assert cfg.env.id == "Pong" and cfg.env.profile == Profile.dopamine and cfg.env.max_episode_steps == 27_000
    assert cfg.total_env_steps == 10_000_000


@pytest.mark.parametrize("group", ["agent", "env", "network", "pruning"])
def test_every_group_option_composes(compose_cfg, group):
    options = group_options(group)
    assert options
    for option in options:
        extra = ["network=mlp"] if option == "mlp" or (group, option) == ("env", "classic") else []
        extra += {("agent", "sac"): ["env=dmc"], ("env", "dmc"): ["agent=sac"], ("env", "mujoco"): ["agent=sac"],
                  ("network", "minatar_cnn"): ["env=minatar"], ("pruning", "static"): ["sparsity=0.9"],
                  ("pruning", "set"): ["sparsity=0.9"], ("pruning", "rigl"): ["sparsity=0.9"]}.get((group, option), [])
        if (group, option) == ("pruning", "lottery"):  # composes, then asks for its source run
            with pytest.raises(ConfigError, match="pruning.mask_from"):
                compose_cfg("pruning=lottery", "sparsity=0.9")
            continue
        cfg = compose_cfg(f"{group}={option}", *extra)
        assert getattr(cfg, group).name == option


def test_documented_overrides(compose_cfg):
    cfg = compose_cfg("agent=dqn", "env.id=Breakout", "seed=3", "total_env_steps=5000", "network.width=2",
                      "eval.every_env_steps=100", "eval.episodes=2", "agent.double=true", "agent.loss=huber",
                      "network.padding=valid", "env.profile=nature", "hydra.run.dir=/tmp/x")
    assert (cfg.env.id, cfg.seed, cfg.total_env_steps, cfg.network.width) == ("Breakout", 3, 5000, 2.0)
    assert (cfg.eval.every_env_steps, cfg.eval.episodes) == (100, 2)
    assert cfg.agent.double and cfg.agent.loss == Loss.huber and cfg.network.padding == Padding.valid


def test_classic_env_gets_the_mlp_and_its_tuned_dqn_defaults(compose_cfg):
    cfg = compose_cfg("env=classic", "env.id=CartPole-v1")
    assert isinstance(cfg.env, ClassicConfig) and isinstance(cfg.network, MLPConfig)
    with open("conf/tuned/dqn_classic.yaml") as f:
        tuned = yaml.safe_load(f)
    for key, value in tuned["agent"].items():
        assert getattr(cfg.agent, key) == value, key
    assert cfg.total_env_steps == tuned["total_env_steps"]
    # a user override still wins over the tuned defaults
    assert compose_cfg("env=classic", "agent.lr=0.1").agent.lr == 0.1


def test_sac_gets_2x256_mlps_and_its_env_defaults(compose_cfg):
    dmc = compose_cfg("agent=sac", "env=dmc")
    assert isinstance(dmc.agent, SACConfig) and isinstance(dmc.env, DMCConfig) and isinstance(dmc.network, MLPConfig)
    assert dmc.network.hidden_sizes == [256, 256] and dmc.total_env_steps == 1_000_000
    assert dmc.agent.actor_lr == dmc.agent.critic_lr == dmc.agent.alpha_lr == 3e-4
    assert (dmc.agent.batch_size, dmc.agent.tau, dmc.agent.learning_starts) == (256, 0.005, 10_000)
    pendulum = compose_cfg("agent=sac", "env=classic")
    assert pendulum.env.id == "Pendulum-v1" and pendulum.agent.learning_starts == 5_000
    assert compose_cfg("agent=sac", "env=classic", "env.id=MountainCarContinuous-v0").env.id == \
        "MountainCarContinuous-v0"
    assert compose_cfg("agent=sac", "env=dmc", "network.width=5").network.width == 5
    assert (dmc.agent.reward_scale, dmc.agent.target_entropy_per_action_dim) == (1.0, -1.0)  # the suite's defaults


def test_sac_on_mujoco_gets_dopamines_settings(compose_cfg):
    """conf/tuned/sac_mujoco.yaml: dopamine/jax/agents/sac/configs/sac.gin (reward_scale_factor 0.1, 2x256, Adam
    3e-4 with eps 1e-8, batch 256, tau 0.005, min_replay_history 10k) and SACAgent's target entropy −|A|/2, with
    Xavier-uniform (flax glorot_uniform) weights."""
    cfg = compose_cfg("agent=sac", "env=mujoco")
    assert isinstance(cfg.env, MuJoCoConfig) and cfg.env.id == "HalfCheetah-v5"
    a = cfg.agent
    assert (a.reward_scale, a.target_entropy, a.target_entropy_per_action_dim) == (0.1, None, -0.5)
    assert a.actor_lr == a.critic_lr == a.alpha_lr == 3e-4 and a.adam_eps == 1e-8
    assert (a.batch_size, a.gamma, a.tau, a.learning_starts, a.update_period, a.replay_capacity) == \
        (256, 0.99, 0.005, 10_000, 1, 1_000_000)
    assert cfg.network.hidden_sizes == [256, 256] and cfg.network.init == Init.xavier
    assert cfg.total_env_steps == 1_000_000 and cfg.env.reward_clip is None


def test_cfg_job_prints_the_resolved_config():
    out = run_train("env.id=Breakout", "seed=3", "--cfg", "job")
    assert out.returncode == 0, out.stderr
    printed = yaml.safe_load(out.stdout)
    assert printed["env"]["id"] == "Breakout" and printed["seed"] == 3
    assert printed["agent"]["target_update_period"] == 8000 and printed["network"]["name"] == "nature_cnn"


def test_help_points_to_the_configuration_page_and_hides_the_schema_groups():
    out = run_train("--help", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "docs/configuration.md" in out.stdout.split("== Configuration groups ==")[0]
    assert "schema/" not in out.stdout
    assert "\nagent: dqn, iqn, miqn, ppo, rainbow, sac\n" in out.stdout and "\nsweep: methods_atari," in out.stdout
