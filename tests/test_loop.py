"""The loop's counters, hooks and run folder on real short runs."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train
from core.callbacks import Callback
from tests.conftest import run_train


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_start(self, trainer):
        self.events.append(("start", trainer.env_step, trainer.updates))

    def on_env_step(self, trainer):
        self.events.append(("step", trainer.env_step, trainer.updates))

    def on_update_end(self, trainer, result):
        assert set(result.losses) == {"losses/td_loss"} and set(result.metrics) == {"losses/q_values"}
        self.events.append(("update", trainer.env_step, trainer.updates))

    def on_eval_end(self, trainer, metrics):
        self.events.append(("eval", trainer.env_step, metrics["eval/episodic_return"]))

    def on_train_end(self, trainer):
        self.events.append(("end", trainer.env_step, trainer.updates))


def test_hooks_fire_in_order_with_the_loops_counters(compose_cfg, tmp_path):
    cfg = compose_cfg("env=classic", "total_env_steps=600", "agent.learning_starts=100", "agent.update_period=4",
                      "agent.target_update_period=8", "eval.every_env_steps=250", "eval.episodes=2", "progress=false")
    rec = Recorder()
    summary = train.train(cfg, tmp_path, callbacks=[rec])
    kinds = [e[0] for e in rec.events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("step") == 600
    updates = [e for e in rec.events if e[0] == "update"]
    # one update every 4 agent steps after the first 100: steps 104, 108, ..., 600
    assert [e[1] for e in updates] == list(range(104, 601, 4))
    assert [e[2] for e in updates] == list(range(1, len(updates) + 1))
    assert [e[1] for e in rec.events if e[0] == "eval"] == [250, 500, 600]
    assert rec.events[-1] == ("end", 600, 125) and summary["updates"] == 125 and summary["env_steps"] == 600
    # each update hook comes right after the env step that triggered it
    for i, e in enumerate(rec.events):
        if e[0] == "update":
            assert rec.events[i - 1][:2] == ("step", e[1])


def summary_numbers(run_dir):
    s = json.loads((run_dir / "summary.json").read_text())
    s.pop("wall_time_s")
    s.pop("median_update_ms")  # wall-clock
    s.pop("wall_time_s_per_process")
    return s


def test_same_seed_same_summary_different_seed_differs(tmp_path):
    args = ["env=classic", "total_env_steps=3000", "eval.every_env_steps=1500", "eval.episodes=3", "progress=false"]
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = run_train(*args, f"seed={seed}", f"hydra.run.dir={tmp_path / name}")
        assert out.returncode == 0, out.stderr[-3000:]
    a, b, c = (summary_numbers(tmp_path / n) for n in "abc")
    assert a == b
    metrics = [(tmp_path / n / "metrics.jsonl").read_text().splitlines() for n in "ab"]
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if "SPS" not in k and "seconds" not in k}  # noqa: E731
                           for x in lines]
    assert strip(metrics[0]) == strip(metrics[1])
    assert strip(metrics[0]) != strip((tmp_path / "c" / "metrics.jsonl").read_text().splitlines())


def read_tags(run_dir):
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return acc


def test_atari_smoke_run_writes_the_run_folder(tmp_path):
    run_dir = tmp_path / "pong"
    out = run_train("agent=dqn", "total_env_steps=2000", "agent.learning_starts=1000", "agent.replay_capacity=3000",
                    "env.max_episode_steps=400", "eval.episodes=1", "log_every_env_steps=500",
                    f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    for name in ("config.yaml", "version.json", "summary.json", "metrics.jsonl", ".hydra/config.yaml"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 2000 and summary["frames"] == 8000 and summary["updates"] == 250
    assert summary["sparsity"] == 0.0 and summary["wall_time_s"] > 0
    assert summary["env_id"] == "Pong" and summary["num_params"]["online"] == 4_046_502
    assert "git_commit" in summary["code"] or "package_version" in summary["code"]
    machine = json.loads((run_dir / "version.json").read_text())["machine"]  # runs on two processors may diverge
    assert machine["processor"] and machine["platform"] and machine["torch"] == torch.__version__
    tags = set(read_tags(run_dir).Tags()["scalars"])
    for tag in ("charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/SPS_cumulative",
                "charts/epsilon", "losses/td_loss", "losses/q_values", "eval/episodic_return"):
        assert tag in tags, tag
    acc = read_tags(run_dir)
    assert [e.step for e in acc.Scalars("charts/episodic_length")] == [400, 800, 1200, 1600, 2000]
    assert [e.step for e in acc.Scalars("losses/td_loss")] == [1500, 2000]
    # logged returns are raw Pong scores over 400 agent steps, not clipped per-step rewards
    assert all(-21 <= e.value <= 21 for e in acc.Scalars("charts/episodic_return"))
    assert (tmp_path / "pong" / "config.yaml").read_text().count("id: Pong") == 1


def test_rewards_are_clipped_for_the_learner_only(compose_cfg, tmp_path):
    """SpaceInvaders pays 5-30 points per alien: replay must hold clipped rewards, the logs raw scores."""
    cfg = compose_cfg("env.id=SpaceInvaders", "total_env_steps=600", "env.max_episode_steps=300",
                      "agent.learning_starts=500", "agent.replay_capacity=1000", "eval.episodes=1", "progress=false")
    captured = {}

    class Grab(Callback):
        def on_train_end(self, trainer):
            captured["rewards"] = trainer.replay.returns[: len(trainer.replay)].copy()  # n = 1: the reward

    train.train(cfg, tmp_path, callbacks=[Grab()])
    rewards = captured["rewards"]
    assert rewards.max() == 1.0 and rewards.min() >= -1.0
    returns = [json.loads(x)["charts/episodic_return"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
               if "charts/episodic_return" in x]
    assert len(returns) == 2 and max(returns) >= 5 and all(r % 5 == 0 for r in returns)


@pytest.mark.parametrize("steps, log_every", [(1500, 1000), (100, 1000), (150, 100)])
def test_a_run_reports_itself_and_its_bar_reaches_the_total(tmp_path, steps, log_every):
    """SAC on Pendulum (200-step episodes) at 1,500 agent steps (not a multiple of the log window), at 100 (before
    the first window and the first update) and at 150 with a window of 100 (no episode has ended at the first
    one): the bar ends at its total and never shows nan, each evaluation says when it starts and what it scored,
    and one closing line gives the final return, sparsity, wall time and folder; train.log holds the same lines."""
    run_dir = tmp_path / "run"
    out = run_train("agent=sac", "env=classic", "network.hidden_sizes=[32,32]", f"total_env_steps={steps}",
                    "agent.learning_starts=500", "eval.every_env_steps=1000", "eval.episodes=2",
                    f"log_every_env_steps={log_every}", "progress=true", f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    bar = [line for line in out.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert f"{steps}/{steps} [" in bar[-1] and "100%" in bar[-1], bar[-3:]
    assert not any("nan" in line for line in bar), [line for line in bar if "nan" in line]
    lines = out.stdout.strip().splitlines()
    evals = [line for line in lines if "evaluation at agent step" in line]
    expected = [f"{which} at agent step {s:,}: {what}" for which, s in
                [*(("evaluation", s) for s in range(1000, steps, 1000)), ("final evaluation", steps)]
                for what in ("playing 2 episodes ...", "return ")]
    assert len(evals) == len(expected) and all(e.startswith(p) for e, p in zip(evals, expected, strict=True)), evals
    summary = json.loads((run_dir / "summary.json").read_text())
    assert lines[-1].startswith(f"done: final eval return {summary['final_eval_return']:.2f} (2 episodes), "
                                f"sparsity 0.000, wall time 0:00:"), lines[-1]
    assert lines[-1].endswith(f"run folder {run_dir} (summary.json, metrics.jsonl, tb/, train.log)")
    log = (run_dir / "train.log").read_text()
    for line in (*evals, lines[-1], f"stderr: {bar[-1].strip()}"):
        assert f"] {line}\n" in log, line
