"""Offline training: CQL's term by hand, Dopamine's logged-replay format (a checkpoint laid out as
``OutOfGraphReplayBuffer.save`` writes it, and the suite's own written from real runs and read back transition for
transition), learning from a trained run's data but not from a random policy's, exact kill and resume, bad input."""

import gzip
import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import suite
from agents import replay_dataset as logged
from agents.cql import cql_penalty
from agents.replay import ReplayBuffer
from analysis.study import wall_time
from core.protocols import Batch
from tests.conftest import run_train
from tests.test_resume import assert_same_run, interrupt
from training.preflight import UserError


def test_cql_term_by_hand_for_scalar_and_c51_heads():
    """logsumexp over 3 actions minus Q of the data action, averaged over the batch; for C51, Q is the expectation
    of the atoms."""
    q = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    actions = torch.tensor([0, 2])
    first = math.log(math.e + math.e ** 2 + math.e ** 3) - 1.0  # 2.4076
    second = math.log(3.0)
    assert cql_penalty(q, actions).item() == pytest.approx((first + second) / 2, rel=1e-6)
    support = torch.tensor([-1.0, 0.0, 1.0])
    probs = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.0, 0.5]]])  # Q = -1, 1, 0
    q_c51 = probs @ support
    assert q_c51.tolist() == [[-1.0, 1.0, 0.0]]
    by_hand = math.log(math.e ** -1 + math.e + 1.0) - 1.0  # data action 1
    assert cql_penalty(q_c51, torch.tensor([1])).item() == pytest.approx(by_hand, rel=1e-6)


def _agent(compose_cfg, *overrides):
    cfg = compose_cfg("env=classic", *overrides)
    env = suite.build_env(cfg, "eval")
    torch.manual_seed(0)
    agent = suite.build_agent(cfg, env, np.random.default_rng(0), torch.device("cpu"))
    env.close()
    return agent


def _batch(obs_dim=4, n=8):
    g = torch.Generator().manual_seed(1)
    return Batch(torch.randn(n, obs_dim, generator=g), torch.randint(0, 2, (n,), generator=g),
                 torch.randn(n, generator=g), torch.randn(n, obs_dim, generator=g), torch.full((n,), 0.99),
                 torch.ones(n), np.arange(n))


@pytest.mark.parametrize("agent", ["dqn", "rainbow"])
def test_cql_weight_zero_is_the_online_agents_loss_and_alpha_adds_its_term(compose_cfg, agent, tmp_path):
    """α = 0 steps exactly as the online agent; α > 0 reports the term computed by hand on the same batch and adds
    α times it to the loss the optimizer steps on."""
    online, plain = _agent(compose_cfg, f"agent={agent}"), _agent(compose_cfg, f"agent={agent}")
    plain.cql_alpha = 0.0
    batch = _batch()
    a, b = online.update(batch), plain.update(batch)
    assert set(a.losses) == set(b.losses) and "losses/cql_loss" not in a.losses
    for x, y in zip(online.online.parameters(), plain.online.parameters(), strict=True):
        assert torch.equal(x, y)
    conservative = _agent(compose_cfg, f"agent={agent}")
    conservative.cql_alpha = 0.5
    with torch.no_grad():
        out = conservative.online(batch.obs)
        q = out if agent == "dqn" else conservative.online.head.q_values(out)
        expected = cql_penalty(q, batch.actions).item()
    result = conservative.update(batch)
    assert result.losses["losses/cql_loss"].item() == pytest.approx(expected, rel=1e-5)
    assert not all(torch.equal(x, y) for x, y in zip(conservative.online.parameters(), online.online.parameters(),
                                                       strict=True))


def _save_like_dopamine(folder: Path, suffix: int, stores: dict, add_count: int, invalid_range: np.ndarray):
    """As ``OutOfGraphReplayBuffer.save``: each array ``np.save``d (allow_pickle=False) into a gzip file."""
    def save(name, array):
        with open(folder / f"{name}_ckpt.{suffix}.gz", "wb") as f, gzip.GzipFile(fileobj=f, mode="wb") as gz:
            np.save(gz, array, allow_pickle=False)
    for name, array in stores.items():
        save(f"$store$_{name}", array)
    save("add_count", np.array(add_count))
    save("invalid_range", invalid_range)


def test_a_checkpoint_laid_out_as_dopamine_writes_it_gives_its_transitions_by_hand(tmp_path):
    """Capacity 16, stack 4, n = 2, γ = 0.5: three zero rows, episode A (4 steps, terminal on the last), three zero
    rows, episode B (3 steps, still running); 13 rows added, 3 never written. Frames hold their row number."""
    cap, stack, n, gamma = 16, 4, 2, 0.5
    obs = np.zeros((cap, 5, 5), dtype=np.uint8)
    reward = np.zeros(cap, dtype=np.float32)
    action = np.zeros(cap, dtype=np.int32)
    terminal = np.zeros(cap, dtype=np.uint8)
    for row, r in zip([3, 4, 5, 6, 10, 11, 12], [1, 2, 3, 4, 5, 6, 7], strict=True):
        obs[row], reward[row], action[row] = row, r, row % 3
    terminal[6] = 1
    obs[13:] = 200  # never written: np.empty in Dopamine
    invalid = np.array([(13 - n + i) % cap for i in range(stack + n)])
    _save_like_dopamine(tmp_path, 7, {"observation": obs, "action": action, "reward": reward, "terminal": terminal},
                        13, invalid)
    assert logged.checkpoint_suffixes(tmp_path) == [7]
    log = logged.read_checkpoint(tmp_path, 7)
    assert log.observation.shape == (16, 5, 5) and log.observation.dtype == np.uint8
    assert log.add_count == 13 and log.invalid_range.tolist() == [11, 12, 13, 14, 15, 0] and log.episode_end is None
    ok = logged.valid_starts(log, cap, stack, n)
    assert np.nonzero(ok)[0].tolist() == [3, 4, 5, 6, 10]  # padding rows 7-9 have A's terminal in their stacks
    returns, discounts, horizon = logged.transitions(log, ok, n, gamma)
    replay = ReplayBuffer(cap, (stack, 5, 5), np.uint8, stack, np.random.default_rng(0), n_step=n, gamma=gamma)
    replay.fill(log.observation, log.action, returns, discounts, horizon)
    b = replay.batch(np.array([3, 5, 6, 10]))
    frames = b.obs[:, :, 0, 0].tolist()
    assert frames == [[0, 0, 0, 3], [0, 3, 4, 5], [3, 4, 5, 6], [0, 0, 0, 10]]
    assert b.returns.tolist() == [1 + 0.5 * 2, 3 + 0.5 * 4, 4.0, 5 + 0.5 * 6]
    assert b.discounts.tolist() == [0.25, 0.0, 0.0, 0.25]
    assert b.next_obs[[0, 3], :, 0, 0].tolist() == [[0, 3, 4, 5], [0, 10, 11, 12]]
    assert b.actions.tolist() == [0, 2, 0, 1]
    assert set(replay.sample_indices(500).tolist()) == {3, 4, 5, 6, 10}
    kept = logged.read_checkpoint(tmp_path, 7, rows=8, stack=stack)  # Dopamine's subset: the first 8 + 4 rows
    assert len(kept) == 12 and np.array_equal(kept.observation, obs[:12]) and np.array_equal(kept.reward, reward[:12])


def test_a_pickled_file_is_refused_without_unpickling(tmp_path):
    with open(tmp_path / "x.gz", "wb") as f, gzip.GzipFile(fileobj=f, mode="wb") as gz:
        np.save(gz, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(logged.DatasetError, match="pickled Python objects"):
        logged.load_array(tmp_path / "x.gz")
    with pytest.raises(logged.DatasetError, match="pickled Python objects"):
        logged.load_array(tmp_path / "x.gz", rows=1)  # the partial read, which parses the header itself
    with pytest.raises(logged.DatasetError, match="pickled Python objects"):
        logged.array_header(tmp_path / "x.gz")


def _online_and_written(tmp_path, env, stack, n, gamma, steps, rows_per_file, seed=0):
    """A replay buffer fed by random play in a real env, recording into a dataset, and that dataset read back."""
    obs_space = env.observation_space
    frame = obs_space.shape[1:] if stack > 1 else obs_space.shape
    online = ReplayBuffer(10 * steps, obs_space.shape, obs_space.dtype, stack, np.random.default_rng(0), n_step=n,
                          gamma=gamma)
    writer = logged.DatasetWriter(tmp_path, frame, obs_space.dtype, stack, n, rows_per_file)
    recording = logged.RecordingReplay(online, writer)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    truncations = 0
    for _ in range(steps):
        action = int(rng.integers(env.action_space.n))
        nxt, reward, terminated, truncated, _ = env.step(action)
        recording.add(obs, action, float(reward), terminated, terminated or truncated, nxt)
        truncations += truncated and not terminated
        obs = env.reset()[0] if terminated or truncated else nxt
    writer.flush()
    parts = []
    for suffix in logged.checkpoint_suffixes(tmp_path):
        log = logged.read_checkpoint(tmp_path, suffix)
        parts.append((log, *logged.transitions(log, logged.valid_starts(log, len(log), stack, n), n, gamma)))
    rows = sum(len(p[0]) for p in parts)
    read = ReplayBuffer(rows, obs_space.shape, obs_space.dtype, stack, np.random.default_rng(0), n_step=n,
                        gamma=gamma)
    read.fill(*(np.concatenate(x) for x in zip(*[(lg.observation, lg.action, r, d, h) for lg, r, d, h in parts],
                                               strict=True)))
    return online, read, truncations


def _transitions(replay):
    """Every sampleable transition, keyed by its observation's bytes: action, n-step return, discount, and the next
    observation where it is bootstrapped from (after a terminal it is not read)."""
    idx = np.nonzero(replay._sampleable(np.arange(len(replay))))[0]
    b = replay.batch(idx)
    return {b.obs[i].numpy().tobytes(): (int(b.actions[i]), float(b.returns[i]), float(b.discounts[i]),
                                         b.next_obs[i].numpy().tobytes() if b.discounts[i] > 0 else None)
            for i in range(len(idx))}


@pytest.mark.parametrize("game", ["CartPole-v1", "ALE/Pong-v5"])
def test_a_dataset_the_suite_writes_reads_back_transition_for_transition(tmp_path, game):
    """Real play, 3-step returns: each transition the online buffer would sample comes back from the files with the
    same observation stack (Pong: 4 frames, zero-padded at episode starts), action, return, discount and next
    stack; only those whose n-step window runs into a truncation (no final frame is stored, as Dopamine's format
    has none) or past the end of a file are dropped, as Dopamine's reader drops them."""
    if game == "CartPole-v1":
        env, stack = gym.make(game, max_episode_steps=40), 1
    else:
        import ale_py
        gym.register_envs(ale_py)
        env = gym.wrappers.FrameStackObservation(gym.wrappers.AtariPreprocessing(
            gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0, max_episode_steps=400),
            frame_skip=4, screen_size=84, noop_max=0), 4, padding_type="zero")
        stack = 4
    steps = 2000 if stack == 1 else 600
    n = 3
    online, read, truncations = _online_and_written(tmp_path, env, stack, n, 0.9, steps, steps // 3)
    env.close()
    files = len(logged.checkpoint_suffixes(tmp_path))
    assert files >= 2 and truncations >= 2  # the cases that drop transitions happen
    a, b = _transitions(online), _transitions(read)
    assert set(b) <= set(a)
    assert all(b[k][:3] == pytest.approx(a[k][:3]) and b[k][3] == a[k][3] for k in b)
    dropped = len(a) - len(b)
    assert n * truncations <= dropped <= n * truncations + (n + stack) * files


def test_dataset_files_of_a_killed_and_resumed_run_are_the_uninterrupted_runs(tmp_path):
    """``offline.write_dataset`` on an online CartPole run SIGKILLed at step 1,300 and resumed from its checkpoint at
    1,200: the files are byte for byte those of the run that was not killed (files close at checkpoints)."""
    args = ["env=classic", "total_env_steps=2000", "agent.learning_starts=500", "checkpoint.every_env_steps=400",
            "eval.every_env_steps=1000", "eval.episodes=2", "offline.rows_per_file=500", "progress=false"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_train(*args, f"offline.write_dataset={a}/data", f"hydra.run.dir={a}/run").returncode == 0
    killed = interrupt("SIGKILL", "step", 1300, [*args, f"offline.write_dataset={b}/data", f"hydra.run.dir={b}/run"])
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert len(list((b / "data").glob("add_count_ckpt.*.gz"))) > 0
    resumed = run_train(*args, f"offline.write_dataset={b}/data", f"hydra.run.dir={b}/run")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    files = sorted(p.name for p in (a / "data").iterdir())
    assert files == sorted(p.name for p in (b / "data").iterdir()) and len(files) >= 7 * 5
    assert all((a / "data" / f).read_bytes() == (b / "data" / f).read_bytes() for f in files)


OFFLINE = ["+offline=cql", "env=classic", "offline.updates=600", "offline.eval_every_updates=200",
           "offline.log_every_updates=50", "eval.episodes=2", "sparsity=0.9", "pruning.update_freq_updates=50",
           "health.every_updates=100", "progress=false"]


@pytest.fixture(scope="module")
def cartpole_data(tmp_path_factory):
    """A small dataset written by an online CartPole run of the suite (2,000 agent steps)."""
    root = tmp_path_factory.mktemp("data")
    out = run_train("env=classic", "total_env_steps=2000", "agent.learning_starts=500", "eval.episodes=2",
                    f"offline.write_dataset={root}/data", f"hydra.run.dir={root}/run", "progress=false")
    assert out.returncode == 0, out.stderr[-3000:]
    return root / "data"


def test_an_offline_run_counts_updates_prunes_over_them_and_resumes_exactly(tmp_path, cartpole_data):
    """600 updates from the dataset, GMP to 90% over 20-80% of them; SIGKILLed after update 500 and resumed from
    its checkpoint at 400: summary, every row, TensorBoard and the final weights are the uninterrupted run's."""
    args = [*OFFLINE, f"offline.dataset={cartpole_data}"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_train(*args, f"hydra.run.dir={a}").returncode == 0
    s = json.loads((a / "summary.json").read_text())
    assert s["updates"] == 600 and s["env_steps"] == 0 and s["sparsity"] == pytest.approx(0.9, abs=0.01)
    evals = [json.loads(line)["step"] for line in (a / "metrics.jsonl").read_text().splitlines()
             if "eval/episodic_return" in line]
    assert evals == [200, 400, 600]
    killed = interrupt("SIGKILL", "update", 500, [*args, f"hydra.run.dir={b}"])
    assert killed.returncode == -9, killed.stderr[-3000:]
    resumed = run_train(*args, f"hydra.run.dir={b}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {b}/checkpoints/step_{400:012d} (update 400 of 600)" in resumed.stdout
    assert_same_run(a, b, episodes=False)
    timing = json.loads((b / "summary.json").read_text())
    assert len(timing["wall_time_s_per_process"]) == 2  # the killed process's time, up to its checkpoint, counts
    assert wall_time(b) == timing["wall_time_s"] == pytest.approx(sum(timing["wall_time_s_per_process"]))


def test_an_offline_run_reports_itself_and_its_bar_reaches_the_total(tmp_path, cartpole_data):
    """1,500 updates, a log window of 1,000 and one evaluation at the end: the bar ends at 1500/1500 and never
    shows nan (no evaluation yet at the first window), the final evaluation says so in updates, and the run ends
    with its closing line."""
    out = run_train("+offline=cql", "env=classic", f"offline.dataset={cartpole_data}", "offline.updates=1500",
                    "offline.eval_every_updates=100_000", "eval.episodes=2", "progress=true",
                    f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    bar = [line for line in out.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert "1500/1500 [" in bar[-1] and not any("nan" in line for line in bar), bar[-3:]
    lines = out.stdout.strip().splitlines()
    assert lines[-3] == "final evaluation at update 1,500: playing 2 episodes ..."
    assert lines[-2].startswith("final evaluation at update 1,500: return ")
    assert lines[-1].startswith("done: final eval return ")
    assert lines[-1].endswith(f"run folder {tmp_path} (summary.json, metrics.jsonl, tb/, train.log)")


def _mean_eval(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return float(np.mean([r["eval/episodic_return"] for r in rows if "eval/episodic_return" in r]))


@pytest.mark.slow
def test_cql_learns_cartpole_from_a_trained_runs_data_and_not_from_a_random_policys(tmp_path):
    """Datasets of 20,000 agent steps: a DQN run that learns (ε to 0.05), and a random policy (ε = 1, no update).
    CQL with α = 4 (close to cloning the data), 5,000 updates, target every 500, lr 2.5e-4: the mean of the five
    evaluations is >= 150 from the trained run's data (seeds 0-2 gave 202-335 when chosen) and <= 100 from the
    random policy's (23-45)."""
    common = ["env=classic", "total_env_steps=20000", "progress=false"]
    assert run_train(*common, f"offline.write_dataset={tmp_path}/trained", f"hydra.run.dir={tmp_path}/t"
                     ).returncode == 0
    assert run_train(*common, "agent.learning_starts=20000", "agent.epsilon_end=1.0",
                     f"offline.write_dataset={tmp_path}/random", f"hydra.run.dir={tmp_path}/r").returncode == 0
    learn = ["+offline=cql", "env=classic", "offline.updates=5000", "offline.eval_every_updates=1000",
             "offline.cql_alpha=4", "agent.lr=2.5e-4", "agent.target_update_period=500", "progress=false"]
    for data in ("trained", "random"):
        out = run_train(*learn, f"offline.dataset={tmp_path}/{data}", f"hydra.run.dir={tmp_path}/cql_{data}")
        assert out.returncode == 0, out.stderr[-3000:]
    assert _mean_eval(tmp_path / "cql_trained") >= 150
    assert _mean_eval(tmp_path / "cql_random") <= 100


@pytest.mark.parametrize("case, match", [
    ("missing", "offline.dataset='{d}/nope' is not allowed; no such folder"),
    ("empty", "it holds no logged replay"),
    ("other_env", "holds frames of float32[4]; env.id=breakout has uint8[4, 10, 10]"),
    ("missing_file", "checkpoint 0 in {d}/data lacks $store$_reward_ckpt.0.gz"),
    ("other_game", "$store$_action_ckpt.0.gz holds action 5; env.id=CartPole-v1 has actions 0 to 1"),
    ("online_key", "total_env_steps='5000' is not allowed; an offline run (offline.dataset) takes no environment "
                   "steps and counts gradient updates: use offline.updates"),
    ("offline_key", "offline.updates='100' is not allowed; it applies to an offline run: give offline.dataset="),
    ("agent", "agent='sac' is not allowed; offline training is built for agent=dqn and agent=rainbow"),
    ("write_and_read", "offline.write_dataset="),
    ("write_continuous", "the DQN Replay Dataset's format holds discrete actions: agent=dqn|"),
])
def test_bad_offline_input_is_one_line_before_any_work(tmp_path, cartpole_data, case, match):
    d = tmp_path
    data = d / "data"
    data.mkdir()
    for f in cartpole_data.iterdir():
        if f.name.endswith(".0.gz"):
            (data / f.name).write_bytes(f.read_bytes())
    args = {"missing": ["+offline=cql", "env=classic", f"offline.dataset={d}/nope"],
            "empty": ["+offline=cql", "env=classic", f"offline.dataset={d}"],
            "other_env": ["+offline=cql", "env=minatar", "env.id=breakout", f"offline.dataset={data}"],
            "missing_file": ["+offline=cql", "env=classic", f"offline.dataset={data}"],
            "other_game": ["+offline=cql", "env=classic", f"offline.dataset={data}"],
            "online_key": ["+offline=cql", "env=classic", f"offline.dataset={data}", "total_env_steps=5000"],
            "offline_key": ["env=classic", "offline.updates=100"],
            "agent": ["agent=sac", "env=classic", "env.id=Pendulum-v1", "network=mlp", f"offline.dataset={data}"],
            "write_and_read": ["+offline=cql", "env=classic", f"offline.dataset={data}",
                               f"offline.write_dataset={d}/w"],
            "write_continuous": ["agent=sac", "env=classic", "env.id=Pendulum-v1", "network=mlp",
                                 f"offline.write_dataset={d}/w"]}[case]
    if case == "missing_file":
        (data / "$store$_reward_ckpt.0.gz").unlink()
    if case == "other_game":
        actions = logged.load_array(data / "$store$_action_ckpt.0.gz")
        logged.save_array(data / "$store$_action_ckpt.0.gz", np.full_like(actions, 5))
    with pytest.raises(UserError) as e:
        suite.preflight([*args, f"hydra.run.dir={d}/run"])
    message = str(e.value)
    assert "\n" not in message and match.format(d=d) in message, message
    assert not (d / "run").exists()


@pytest.mark.parametrize("env", ["atari", "minatar", "classic"])
def test_the_offline_presets_are_the_papers_table_3_over_any_envs_tuned_values(compose_cfg, env):
    cql, c51 = compose_cfg("+offline=cql", f"env={env}"), compose_cfg("+offline=cql_c51", f"env={env}")
    a = cql.agent
    assert (a.name, a.lr, a.adam_eps, a.n_step, a.double, a.loss.value) == ("dqn", 5e-5, 3.125e-4, 1, False, "huber")
    b = c51.agent
    assert (b.name, b.lr, b.adam_eps, b.n_step, b.num_atoms, b.v_max) == ("rainbow", 6.25e-5, 1.5e-4, 3, 51, 10.0)
    assert b.dueling and b.double and not b.prioritized
    for cfg in (cql, c51):
        assert (cfg.agent.batch_size, cfg.agent.gamma, cfg.agent.update_period, cfg.agent.target_update_period,
                cfg.offline.cql_alpha) == (32, 0.99, 1, 50, 0.1)


def test_plot_reads_an_offline_sweep_on_gradient_updates(tmp_path, cartpole_data, monkeypatch):
    """A real offline multirun (dense and GMP 90%, two seeds) is a sweep for plot.py, its curves against gradient
    updates; an online run in the same folder is refused."""
    import plot
    from analysis import figures

    sweep = tmp_path / "sweep"
    args = [a for a in OFFLINE if a.split("=")[0] not in ("offline.updates", "offline.eval_every_updates", "sparsity")]
    out = run_train("--multirun", *args, "offline.updates=200", "offline.eval_every_updates=100", "seed=0,1",
                    "sparsity=0,0.9", f"offline.dataset={cartpole_data}", f"hydra.sweep.dir={sweep}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.parent.parent for p in sweep.rglob("summary.json")) == [sweep] * 4  # no dataset path in the names
    drawn = {}
    draw = figures.learning_curves
    monkeypatch.setattr(figures, "learning_curves", lambda curves, ylabel, path, xlabel="agent steps": (
        drawn.update(steps=sorted({s for t in curves.values() for s in t.index}), xlabel=xlabel),
        draw(curves, ylabel, path, xlabel))[1])
    assert plot.main([str(sweep), "--reps", "200"]) == 0
    assert drawn == {"steps": [100, 200], "xlabel": "gradient updates"}
    summary = (sweep / "summary.csv").read_text()
    assert "dense" in summary and "0.9" in summary
    online = run_train("env=classic", "total_env_steps=600", "agent.learning_starts=100", "eval.every_env_steps=300",
                       "eval.episodes=1", "progress=false", f"hydra.run.dir={sweep}/online")
    assert online.returncode == 0
    assert plot.main([str(sweep), "--reps", "200"]) == 2
