"""After training: ``evaluate.py`` (play, film, export) on real runs, videos during training, TensorBoard's HParams
summary, the W&B mirror in offline mode, and the progress bar's ETA."""

import importlib.util
import json
import math
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from core.errors import ConfigError
from envs.video import read_video
from evaluate import build, load_exported, run_config
from suite import compose
from tests.conftest import ROOT, run_train
from tests.test_resume import interrupt
from training.checkpoint import Checkpointer
from training.loop import eta

CARTPOLE = ["env=classic", "total_env_steps=2000", "agent.learning_starts=500", "sparsity=0.9",
            "pruning.update_freq_updates=100", "eval.every_env_steps=1000", "eval.episodes=2", "progress=false"]
MINATAR = ["env=minatar", "env.id=breakout", "total_env_steps=1200", "agent.learning_starts=200",
           "eval.every_env_steps=600", "eval.episodes=1", "checkpoint.every_env_steps=400", "progress=false"]
PONG = ["total_env_steps=300", "agent.learning_starts=200", "agent.replay_capacity=1000", "env.max_episode_steps=150",
        "eval.episodes=1", "progress=false"]


def evaluate(*args, env=None):
    return subprocess.run([sys.executable, "evaluate.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)


def files_outside_eval(run_dir):
    return {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and "eval" not in p.relative_to(run_dir).parts}


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cartpole") / "run"
    out = run_train(*CARTPOLE, f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


def test_evaluate_plays_the_run_on_a_fresh_seed_and_writes_only_eval(cartpole_run, tmp_path):
    before = files_outside_eval(cartpole_run)
    first = evaluate(cartpole_run, "--episodes", 4, "--seed", 7)
    assert first.returncode == 0, first.stderr[-2000:]
    record = json.loads((cartpole_run / "eval" / "2000" / "returns.json").read_text())
    assert record["episodes"] == 4 and len(record["returns"]) == len(record["lengths"]) == 4
    assert all(math.isfinite(r) for r in record["returns"]) and record["returns"] == [float(n) for n in
                                                                                    record["lengths"]]  # CartPole: +1
    assert record["mean"] == pytest.approx(np.mean(record["returns"])) and record["step"] == 2000
    assert f"return {record['mean']:.2f} ± {record['std']:.2f} over 4 episodes (seed 7)" in first.stdout
    again = evaluate(cartpole_run, "--episodes", 4, "--seed", 7)
    assert json.loads((cartpole_run / "eval" / "2000" / "returns.json").read_text()) == record  # same seed, same play
    assert again.returncode == 0
    default = evaluate(cartpole_run, "--episodes", 2)
    assert default.returncode == 0 and "(seed 2000003)" in default.stdout  # the run's seed 0 + 2,000,003
    assert files_outside_eval(cartpole_run) == before


def test_evaluate_refuses_bad_input_in_one_line(cartpole_run, tmp_path):
    cases = {
        (tmp_path / "nope",): "run_dir=",
        (tmp_path,): "not a run folder of this suite",
        (cartpole_run, "--step", 5): "has checkpoints at agent steps 2000",
        (cartpole_run, "env.id=Pong"): "allowed classic-control ids",
        (cartpole_run, "env.nothing=1"): "env.nothing='1' is not allowed; not a key of the run's config",
        (cartpole_run, "--episodes", 0): "--episodes=0",
        (cartpole_run / "config.yaml",): "no such folder",
    }
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(cartpole_run / "config.yaml", empty / "config.yaml")
    cases[(empty,)] = "that run has no complete checkpoint"
    damaged = tmp_path / "damaged"
    shutil.copytree(cartpole_run, damaged, ignore=shutil.ignore_patterns("eval"))
    (state,) = damaged.glob("checkpoints/step_*/state.pt")
    state.write_bytes(state.read_bytes()[:-10])
    cases[(damaged,)] = "none of its checkpoints can be read: step_000000002000 (state.pt does not match the manifest)"
    cases[(damaged, "--step", 2000)] = "--step=2000 is not allowed; checkpoint step_000000002000 cannot be read"
    for args, message in cases.items():
        out = evaluate(*args)
        assert out.returncode == 2, (args, out.stderr[-2000:])
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, out.stderr)


def test_evaluate_falls_back_to_the_newest_checkpoint_that_reads(cartpole_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(cartpole_run, run_dir, ignore=shutil.ignore_patterns("eval"))
    newer = run_dir / "checkpoints" / "step_000000003000"
    shutil.copytree(run_dir / "checkpoints" / "step_000000002000", newer)
    (newer / "state.pt").write_bytes((newer / "state.pt").read_bytes()[:-10])
    out = evaluate(run_dir, "--episodes", 1)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        "warning: evaluating step_000000002000, the newest checkpoint that reads; newer and unreadable: "
        "step_000000003000 (state.pt does not match the manifest)"]
    assert json.loads((run_dir / "eval" / "2000" / "returns.json").read_text())["step"] == 2000
    assert newer.is_dir()  # evaluation moves nothing


def test_evaluate_video_where_the_env_cannot_render_is_one_line(tmp_path):
    run_dir = tmp_path / "sac"
    args = ["agent=sac", "env=dmc", "env.id=cartpole-balance", "env.action_repeat=8", "network.hidden_sizes=[16,16]",
            "total_env_steps=300", "agent.learning_starts=200", "eval.episodes=1", "progress=false"]
    assert run_train(*args, f"hydra.run.dir={run_dir}").returncode == 0
    out = evaluate(run_dir, "--video", env={**os.environ, "MUJOCO_GL": "disable"})
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: --video=1 is not allowed; dm_control renders through MuJoCo's OpenGL, which is off here (MUJOCO_GL is "
        "unset or disable); run with MUJOCO_GL=egl (or osmesa) where a GPU or Mesa is present"]
    assert not (run_dir / "eval").exists()


def test_missing_extras_are_named_with_their_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("wandb", "moviepy") else
                        real(name, *a))
    with pytest.raises(ConfigError, match=r'not installed \(the wandb extra: pip install -e "\.\[wandb\]"\)'):
        compose(["env=classic", "logger.wandb=true"])
    with pytest.raises(ConfigError, match=r'moviepy, which is not installed \(the video extra: pip install -e'):
        compose(["env=classic", "eval.video=true"])


def test_export_holds_the_network_alone_and_acts_as_the_run(cartpole_run, tmp_path):
    path = tmp_path / "model.pt"
    out = evaluate(cartpole_run, "--episodes", 1, "--export", path)
    assert out.returncode == 0, out.stderr[-2000:]
    payload = torch.load(path, weights_only=True)
    summary = json.loads((cartpole_run / "summary.json").read_text())
    assert payload["network_name"] == "online" and payload["sparsity"] == summary["sparsity_per_network"]["online"]
    assert payload["sparsity"] == pytest.approx(0.9, abs=0.01)
    _, state, _, _ = Checkpointer(cartpole_run / "checkpoints", 1).load_latest()
    assert payload["state_dict"].keys() == state["agent"]["online"].keys()
    assert all(torch.equal(payload["state_dict"][k], v) for k, v in state["agent"]["online"].items())
    agent, env = load_exported(path)  # the lines of docs/after-training.md
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(agent.act(obs, 0, eval_mode=True))
    assert reward == 1.0 and obs.shape == (4,)
    states = []
    while len(states) < 64:  # states the agent meets, from its own env
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        states.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
    cfg = run_config(cartpole_run, [])
    _, run_agent = build(cfg, state, 0, torch.device("cpu"))  # the run's own agent, as evaluate.py plays it
    batch = torch.as_tensor(np.stack(states))
    with torch.no_grad():
        assert torch.equal(agent.networks()["online"](batch), run_agent.networks()["online"](batch))


def test_evaluate_films_atari_episodes_and_plays_another_mode(tmp_path):
    run_dir = tmp_path / "pong"
    assert run_train(*PONG, f"hydra.run.dir={run_dir}").returncode == 0
    before = files_outside_eval(run_dir)
    out = evaluate(run_dir, "--episodes", 2, "--video", 2, "--seed", 3)
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads((run_dir / "eval" / "300" / "returns.json").read_text())
    for i, length in enumerate(record["lengths"], start=1):
        frames = read_video(run_dir / "eval" / "300" / "videos" / f"eval-episode-{i}.mp4")
        assert len(frames) == length + 1  # the reset frame, then one per agent step
        assert frames[0].shape == (210, 160, 3)  # ALE's colour screen
    strip = Image.open(run_dir / "eval" / "300" / "strip.png")
    assert strip.size == (8 * 160, 210)
    mode = evaluate(run_dir, "--episodes", 1, "env.mode=1")
    assert mode.returncode == 0, mode.stderr[-2000:]
    assert json.loads((run_dir / "eval" / "300_env.mode=1" / "returns.json").read_text())["overrides"] == ["env.mode=1"]
    bad = evaluate(run_dir, "--env.mode=5")
    assert bad.returncode == 2 and "env.mode=5 is not allowed" in bad.stderr and "0, 1" in bad.stderr
    other = evaluate(run_dir, "env.id=Breakout")  # 4 actions, Pong's head has 6
    assert other.returncode == 2 and "does not fit this env (online.head.weight is (6, 512)" in other.stderr
    assert files_outside_eval(run_dir) == before


def test_evaluate_films_dm_control_through_mujoco(tmp_path):
    """MuJoCo renders with EGL here; evaluate.py picks it when asked for a video (MUJOCO_GL unset)."""
    run_dir = tmp_path / "sac"
    args = ["agent=sac", "env=dmc", "env.id=cartpole-balance", "env.action_repeat=8", "network.hidden_sizes=[16,16]",
            "total_env_steps=300", "agent.learning_starts=200", "eval.episodes=1", "progress=false"]
    assert run_train(*args, f"hydra.run.dir={run_dir}").returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    out = evaluate(run_dir, "--episodes", 1, "--video", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    frames = read_video(run_dir / "eval" / "300" / "videos" / "eval-episode-1.mp4")
    assert len(frames) == 1000 // 8 + 1 and frames[0].std() > 0  # 125 agent steps of 8 control steps, not blank


def test_a_video_of_each_evaluation_lands_in_the_run_and_tensorboard_and_changes_nothing(tmp_path):
    plain, filmed = tmp_path / "plain", tmp_path / "filmed"
    assert run_train(*MINATAR, f"hydra.run.dir={plain}").returncode == 0
    out = run_train(*MINATAR, "eval.video=true", f"hydra.run.dir={filmed}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert not (plain / "videos").exists()
    evals = [json.loads(line) for line in (filmed / "metrics.jsonl").read_text().splitlines()]
    lengths = {r["step"]: r["eval/episodic_length"] for r in evals if "eval/episodic_length" in r}
    assert sorted(lengths) == [600, 1200]
    for step, length in lengths.items():
        frames = read_video(filmed / "videos" / f"eval_step{step}.mp4")
        assert len(frames) == length + 1 and frames[0].shape == (160, 160, 3)  # MinAtar's 10x10 grid, 16x
    acc = EventAccumulator(str(filmed / "tb"), size_guidance={"images": 0})
    acc.Reload()
    gifs = acc.Images("videos/eval")
    assert [g.step for g in gifs] == [600, 1200] and all(g.encoded_image_string[:6] == b"GIF89a" for g in gifs)
    same = json.loads((plain / "summary.json").read_text()), json.loads((filmed / "summary.json").read_text())
    for s in same:
        s.pop("wall_time_s"), s.pop("median_update_ms"), s.pop("wall_time_s_per_process")
    assert same[0] == same[1]  # rendering does not touch the env's or the agent's randomness


@pytest.mark.parametrize("env, who", [("dmc", "dm_control"), ("mujoco", "Gymnasium's MuJoCo")])
def test_video_that_cannot_be_made_here_is_refused_before_any_work(monkeypatch, env, who):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    with pytest.raises(ConfigError, match=f"eval.video=True is not allowed; {who} renders through MuJoCo"):
        compose(["agent=sac", f"env={env}", "eval.video=true"])


def test_hparams_summary_holds_the_runs_settings_and_final_metrics(cartpole_run):
    acc = EventAccumulator(str(cartpole_run / "tb"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    params = {k: v.number_value if v.HasField("number_value") else v.string_value for k, v in start.hparams.items()}
    assert params["sparsity"] == 0.9 and params["seed"] == 0 and params["env.id"] == "CartPole-v1"
    assert params["agent"] == "dqn" and params["pruning"] == "gmp" and params["agent.lr"] == pytest.approx(2.5e-4)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"hparams/final_eval_return", "hparams/sparsity"}
    summary = json.loads((cartpole_run / "summary.json").read_text())
    assert acc.Scalars("hparams/final_eval_return")[-1].value == pytest.approx(summary["final_eval_return"])
    assert acc.Scalars("hparams/sparsity")[-1].value == pytest.approx(summary["sparsity"])


def wandb_records(path):
    """The records of a W&B run file (its LevelDB-style log of protobuf ``Record``s), as W&B's own readers parse it."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, records, partial = path.read_bytes(), 7, [], b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            records.append(pb.Record.FromString(partial))
    return records


def test_wandb_offline_mirrors_the_scalars_and_resumes_the_same_run(tmp_path):
    run_dir = tmp_path / "run"
    args = [*MINATAR, "logger.wandb=true", f"hydra.run.dir={run_dir}"]
    os.environ["WANDB_MODE"] = "offline"
    try:
        killed = interrupt("SIGKILL", "step", 1000, args)
        assert killed.returncode == -9, killed.stderr[-2000:]
        resumed = run_train(*args)
    finally:
        del os.environ["WANDB_MODE"]
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run_id = (run_dir / "wandb_id.txt").read_text().strip()
    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert [f.name for f in files] == [f"run-{run_id}.wandb"] * 2  # the killed run and its resumption: one W&B run
    records = wandb_records(files[-1])
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert run.run_id == run_id and config["env"]["id"] == "breakout" and config["seed"] == 0
    rows = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item} for r in records
            if r.WhichOneof("record_type") == "history"]
    evals = {r["global_step"]: r["eval/episodic_return"] for r in rows if "eval/episodic_return" in r}
    assert sum("charts/episodic_return" in r for r in rows) > 10
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert evals == {1200: next(m["eval/episodic_return"] for m in metrics if m["step"] == 1200
                                and "eval/episodic_return" in m)}  # the resumed part: evaluation at 1,200
    assert "resuming from" in resumed.stdout and "step_000000000800" in resumed.stdout
    assert min(r["global_step"] for r in rows) > 800  # the resumed process logs from its checkpoint at 800 on
    summary = json.loads((run_dir / "summary.json").read_text())
    assert rows[-1]["hparams/final_eval_return"] == pytest.approx(summary["final_eval_return"])


def test_wandb_dir_is_honoured_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    (tmp_path / "elsewhere").mkdir()
    out = run_train("env=classic", "total_env_steps=300", "agent.learning_starts=200", "eval.episodes=1",
                    "progress=false", "logger.wandb=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 0, out.stderr[-2000:]
    run_id = (tmp_path / "run" / "wandb_id.txt").read_text().strip()
    assert [f.name for f in (tmp_path / "elsewhere" / "wandb").glob("offline-run-*/run-*.wandb")] == \
        [f"run-{run_id}.wandb"]
    assert not (tmp_path / "run" / "wandb").exists()


def test_wandb_without_a_login_is_refused_before_any_work(tmp_path, monkeypatch):
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(ConfigError, match="logger.wandb=True is not allowed; W&B has no login here"):
        compose(["env=classic", "logger.wandb=true"])


def test_eta_says_warm_up_until_learning_starts_then_uses_the_training_speed():
    assert eta(5_000, 10_000_000, 20_000, 2_000.0) == "warm-up"  # acting alone runs ~10x faster than training
    assert eta(20_000, 10_000_000, 20_000, 150.0) == "warm-up"
    assert eta(20_004, 10_000_000, 20_000, None) == "warm-up"  # no window of training steps measured yet
    assert eta(1_000_000, 10_000_000, 20_000, 150.0) == "16:40:00"  # 9M steps at 150 steps/s
    assert eta(9_999_000, 10_000_000, 20_000, 100.0) == "0:00:10"
