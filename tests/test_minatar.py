"""MinAtar through the suite: the env as the agents see it, the network, resumable env state, and real DQN and
Rainbow runs pruned to 90%."""

import json

import numpy as np
import pytest

from agents.networks import build_network, count_parameters
from envs import make_env
from envs.minatar import GAMES, MinAtarConfig
from envs.snapshot import EpisodeRecorder
from tests.conftest import run_train


@pytest.mark.parametrize("game, channels, actions, minimal", [("breakout", 4, 3, True), ("space_invaders", 6, 4, True),
                                                              ("seaquest", 10, 6, True), ("breakout", 4, 6, False)])
def test_observations_are_channels_first_uint8_grids(game, channels, actions, minimal):
    env = make_env(MinAtarConfig(id=game, minimal_action_set=minimal), 0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (channels, 10, 10) and obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 1}
    assert env.observation_space.shape == obs.shape and env.action_space.n == actions
    raw = env.unwrapped.game.state()  # 10x10xC booleans
    assert np.array_equal(obs, raw.transpose(2, 0, 1))


def test_minatar_cnn_has_the_reference_shape_and_reads_grids_unscaled(compose_cfg):
    cfg = compose_cfg("env=minatar", "network.width=3")
    net = build_network(cfg.network, (6, 10, 10), 4)
    # conv 6->48 (3x3) + Dense 48*8*8 -> 384 + head 384 -> 4, by hand
    assert count_parameters(net) == (6 * 9 * 48 + 48) + (48 * 64 * 384 + 384) + (384 * 4 + 4)
    x = np.random.default_rng(0).integers(0, 2, (2, 6, 10, 10), dtype=np.uint8)
    import torch

    assert torch.allclose(net(torch.from_numpy(x)), net(torch.from_numpy(x).float()))


def test_resume_replays_the_episode_with_minatars_own_rng_and_sticky_action():
    """MinAtar draws from its game's RandomState (spawns, sticky actions), not the env's np_random, and its sticky
    action carries over from the previous episode: both must be in the snapshot."""
    cfg = MinAtarConfig(id="asterix", sticky_action_prob=0.9)
    env = EpisodeRecorder(make_env(cfg, 0))
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(3):  # finish episodes, so the snapshot is taken after a reset without a seed
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(int(rng.integers(5)))
            done = terminated or truncated
        env.env.unwrapped.game.last_action = 3  # as if the episode ended on action 3: it may stick on the next one
        env.reset()
    for _ in range(15):
        obs = env.step(int(rng.integers(5)))[0]
    state = env.state_dict()
    follow = [env.step(a)[0] for a in (1, 2, 3, 4) * 10]
    other = EpisodeRecorder(make_env(cfg, 0))
    assert np.array_equal(other.resume(state, 3, obs), obs)
    assert all(np.array_equal(a, other.step(b)[0]) for a, b in zip(follow, (1, 2, 3, 4) * 10, strict=True))


@pytest.mark.parametrize("agent", ["dqn", "rainbow"])
def test_pruned_run_on_minatar(agent, tmp_path):
    out = run_train(f"agent={agent}", "env=minatar", "env.id=seaquest", "sparsity=0.9", "total_env_steps=3000",
                    "eval.every_env_steps=1500", "eval.episodes=2", "pruning.update_freq_updates=50",
                    "progress=false", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["updates"] == 500 and s["network"] == "minatar_cnn" and s["env_id"] == "seaquest"
    assert s["sparsity"] == pytest.approx(0.9, abs=1e-3)
    if agent == "rainbow":  # tuned/rainbow_minatar: Dopamine's network, SAME conv straight to the 6x51 head
        assert s["num_params"]["online"] == (10 * 9 * 16 + 16) + (16 * 100 * 6 * 51 + 6 * 51)
    else:  # MinAtar's: valid conv (8x8 maps), Dense 128
        assert s["num_params"]["online"] == (10 * 9 * 16 + 16) + (16 * 64 * 128 + 128) + (128 * 6 + 6)


def test_every_game_is_registered():
    for game in GAMES:
        make_env(MinAtarConfig(id=game), 0).close()


def test_the_minatar_papers_protocol_runs_and_older_run_folders_still_resume(tmp_path):
    """``tuned=dqn_minatar_paper``: RMSProp, PyTorch's init, 5,000 random steps, then an update per step. Its run
    folder, stored as a suite from before ``agent.optimizer`` and ``network.init`` would have written it, is still
    the same run (complete: nothing to do), while a real change of either key is refused."""
    args = ["env=minatar", "tuned=dqn_minatar_paper", "total_env_steps=5600", "eval.episodes=1", "progress=false",
            f"hydra.run.dir={tmp_path}"]
    out = run_train(*args)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["updates"] == 600  # agent steps 5,001-5,600
    text = (tmp_path / "config.yaml").read_text()
    assert "optimizer: rmsprop" in text and "init: torch" in text and "epsilon_decay_steps: 100000" in text
    assert "minimal_action_set: false" in text  # all 6 actions on breakout (3 in its minimal set), by hand:
    assert summary["num_params"]["online"] == (4 * 9 * 16 + 16) + (16 * 64 * 128 + 128) + (128 * 6 + 6)
    older = [line for line in text.splitlines()
             if line not in ("  init: torch", "  optimizer: rmsprop") and not line.strip().startswith("rmsprop_")]
    assert len(older) == len(text.splitlines()) - 5
    (tmp_path / "config.yaml").write_text("\n".join(older) + "\n")  # a folder from before the keys: Adam, auto
    same = run_train("env=minatar", "tuned=dqn_minatar_paper", "agent.optimizer=adam", "network.init=auto",
                     *args[2:])
    assert same.returncode == 0 and "run already complete" in same.stdout, same.stderr[-2000:]
    changed = run_train(*args)
    assert changed.returncode == 2
    assert "agent.optimizer: adam -> rmsprop" in changed.stderr and "network.init: auto -> torch" in changed.stderr


def test_dopamines_minatar_network_keeps_the_10x10_maps_and_has_no_dense_layer(compose_cfg):
    """``network.padding=same network.dense=0``: Dopamine's MinatarDQNNetwork, conv 16-3x3 SAME then the head."""
    cfg = compose_cfg("env=minatar", "network.padding=same", "network.dense=0")
    net = build_network(cfg.network, (4, 10, 10), 6)
    assert count_parameters(net) == (4 * 9 * 16 + 16) + (16 * 10 * 10 * 6 + 6)  # by hand: 10,198
    import torch

    assert net.features(torch.zeros(2, 4, 10, 10)).shape == (2, 1600)
    assert [name for name, m in net.named_modules() if isinstance(m, torch.nn.Linear)] == ["head"]
