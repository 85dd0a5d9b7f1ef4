"""GMP and the health probe in real runs of the loop."""

import json
import math

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train
from analysis import learning_curve
from analysis.learning_curve import eval_curve
from core.callbacks import Callback
from tests.conftest import run_train


def test_pong_run_ends_at_the_target_sparsity_with_every_tag(tmp_path):
    out = run_train("agent=dqn", "sparsity=0.9", "total_env_steps=2000", "agent.learning_starts=1000",
                    "agent.replay_capacity=3000", "env.max_episode_steps=400", "eval.episodes=1",
                    "pruning.update_freq_updates=50", "health.every_updates=100", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["updates"] == 250 and summary["target_sparsity"] == 0.9
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert summary["sparsity_per_network"]["online"] == pytest.approx(0.9, abs=1e-3)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("sparsity/target", "sparsity/total", "sparsity/online", "sparsity/online/features.conv1.weight",
                "sparsity/online/head.weight", "dormant/online/tau_0", "dormant/online/tau_0.025",
                "dormant/online/tau_0.1", "dormant/online/features.relu1/tau_0.1",
                "dormant/online/fanin_pruned/features.fc1.weight", "health/online/srank", "health/online/param_norm",
                "health/online/grad_norm", "health/online/q_mean", "health/online/q_var", "health/probe_seconds"):
        assert tag in tags, tag
    targets = [e.value for e in acc.Scalars("sparsity/target")]
    assert targets[0] == 0.0 and targets[-1] == pytest.approx(0.9)
    assert all(a <= b for a, b in zip(targets, targets[1:], strict=False))
    assert [e.step for e in acc.Scalars("health/online/srank")] == [1400, 1800]  # every 100 updates


def test_impala_pong_run_is_pruned_and_probed_through_its_residual_blocks(tmp_path):
    """DQN with the IMPALA ResNet x1 at sparsity 0.9 on real Pong: 17 weight tensors pruned (ERK keeps the small
    first conv denser), dormant fractions logged for the ReLUs inside the residual blocks."""
    out = run_train("agent=dqn", "network=impala", "sparsity=0.9", "total_env_steps=900", "agent.learning_starts=500",
                    "agent.replay_capacity=1000", "env.max_episode_steps=300", "eval.episodes=1",
                    "pruning.update_freq_updates=10", "health.every_updates=50", "progress=false",
                    f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "parameters: {'online': 2083798}" in out.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["updates"] == 100 and summary["network"] == "impala"
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3) and summary["num_params"] == {"online": 2_083_798}
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    last = {k: v for r in rows for k, v in r.items()}
    per_tensor = [k for k in last if k.startswith("sparsity/online/")]
    assert len(per_tensor) == 17 and last["sparsity/online/features.stack1.conv.weight"] < 0.9
    assert 0 <= last["dormant/online/features.stack3.block2.relu2/tau_0.1"] <= 1
    assert last["charts/num_params/online"] == 2_083_798


class Spy(Callback):
    def on_train_end(self, trainer):
        self.masks = trainer.callbacks[0].pruner.masks
        self.targets = trainer.agent.target


def test_sparsity_zero_runs_the_same_path_without_masks(compose_cfg, tmp_path):
    cfg = compose_cfg("env=classic", "total_env_steps=1500", "agent.learning_starts=100", "progress=false",
                      "eval.episodes=1", "pruning.update_freq_updates=10")
    spy = Spy()
    summary = train.train(cfg, tmp_path, callbacks=[spy])
    assert spy.masks is None and summary["sparsity"] == 0.0 and summary["target_sparsity"] == 0.0


def test_classic_run_prunes_on_schedule_and_the_target_inherits_zeros(compose_cfg, tmp_path):
    cfg = compose_cfg("env=classic", "sparsity=0.8", "total_env_steps=1500", "agent.learning_starts=100",
                      "agent.target_update_period=100", "progress=false", "eval.episodes=1",
                      "pruning.update_freq_updates=100", "pruning.end_frac=0.5")
    spy = Spy()
    summary = train.train(cfg, tmp_path, callbacks=[spy])
    assert summary["sparsity"] == pytest.approx(0.8, abs=1e-3)
    for name, p in spy.targets.named_parameters():
        if p.ndim > 1:  # pruning ended at half the run, and the target was copied several times since
            assert ((p == 0) == (spy.masks[f"online/{name}"] == 0)).all()


def test_rainbow_impala_pong_run_is_pruned_with_its_c51_head(tmp_path):
    """Compact Rainbow (C51 + 3-step + prioritized replay) on the IMPALA ResNet x1 at sparsity 0.9 on real Pong:
    the 306-output C51 head (6 actions x 51 atoms) is pruned with the rest, the loss is logged as c51_loss."""
    out = run_train("agent=rainbow", "network=impala", "sparsity=0.9", "total_env_steps=900",
                    "agent.learning_starts=500", "agent.replay_capacity=1000", "env.max_episode_steps=300",
                    "eval.episodes=1", "pruning.update_freq_updates=10", "health.every_updates=50",
                    "log_every_env_steps=100", "progress=false", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    params = 2_083_798 - (512 * 6 + 6) + (512 * 306 + 306)  # DQN's IMPALA with a C51 head instead
    assert f"parameters: {{'online': {params}}}" in out.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["agent"] == "rainbow" and summary["updates"] == 100
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    last = {k: v for r in rows for k, v in r.items()}
    assert last["sparsity/online/head.advantage.weight"] > 0.5
    assert len([k for k in last if k.startswith("sparsity/online/")]) == 17
    assert 0 < last["losses/c51_loss"] < math.log(51) + 1 and "losses/td_loss" not in last
    assert -10 <= last["losses/q_values"] <= 10 and -10 <= last["health/online/q_mean"] <= 10
    acc = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert [e.step for e in acc.Scalars("losses/c51_loss")][-1] == 900


def test_sac_cartpole_swingup_run_prunes_actor_and_both_critics(tmp_path):
    """SAC at sparsity 0.9 on real dm_control: each of the three networks ends at 0.9, through the same callback
    as DQN, with CleanRL's SAC tags and the health metrics per network in TensorBoard."""
    out = run_train("agent=sac", "env=dmc", "env.id=cartpole-swingup", "sparsity=0.9", "total_env_steps=2000",
                    "agent.learning_starts=500", "network.hidden_sizes=[64,64]", "pruning.update_freq_updates=100",
                    "eval.episodes=1", "health.every_updates=500", "progress=false", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["updates"] == 1500 and summary["agent"] == "sac" and summary["env_id"] == "cartpole-swingup"
    for name in ("actor", "critic1", "critic2"):
        assert summary["sparsity_per_network"][name] == pytest.approx(0.9, abs=1e-3), name
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("losses/qf1_loss", "losses/qf2_loss", "losses/actor_loss", "losses/alpha", "losses/alpha_loss",
                "losses/qf1_values", "charts/episodic_return", "eval/episodic_return", "sparsity/actor",
                "sparsity/critic1", "sparsity/critic2", "sparsity/actor/head.weight", "sparsity/critic2/head.weight",
                "dormant/actor/tau_0.1", "dormant/critic1/tau_0.1", "dormant/critic2/features.relu2/tau_0",
                "health/actor/srank", "health/actor/output_mean", "health/critic1/q_mean", "health/critic2/srank"):
        assert tag in tags, tag
    assert "losses/td_loss" not in tags and "charts/epsilon" not in tags and "health/actor/q_mean" not in tags
    assert [e.value for e in acc.Scalars("charts/episodic_length")] == [1000, 1000]  # two truncated episodes
    # the learning-curve command of docs/agents/sac.md reads the same run folder
    learning_curve.main([str(tmp_path), "--out", str(tmp_path / "curve.png"), "--reference", "800"])
    assert eval_curve(tmp_path)[:2] == ([2000], [summary["final_eval_return"]])
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_a_gmp_window_shorter_than_one_mask_update_period_is_said_in_one_line(tmp_path):
    """1,500 CartPole steps, updates from step 1,000: 500 updates, GMP's window 100-400 (300 updates), masks every
    1,000 updates. The run says, once, that sparsity jumps in one step at the window's end, naming both numbers;
    the logs show that jump."""
    out = run_train("env=classic", "total_env_steps=1500", "sparsity=0.9", "eval.episodes=1", "health.every_updates=50",
                    "progress=false", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    warnings = [line for line in out.stdout.splitlines() if line.startswith("warning: GMP")]
    assert warnings == ["warning: GMP's window is 300 updates (updates 100 to 400 of the run's 500), shorter than one "
                        "mask-update period (pruning.update_freq_updates=1,000): sparsity goes from 0 to 0.9 in 1 "
                        "step, not gradually; pruning.update_freq_updates=30 gives 11 steps"]
    targets = sorted({(r["step"], r["sparsity/target"]) for r in map(json.loads, open(tmp_path / "metrics.jsonl"))
                      if "sparsity/target" in r})
    assert {t for _, t in targets} == {0.0, 0.9}
    assert next(step for step, t in targets if t == 0.9) == 1000 + 401  # update 400 is taken at agent step 1,401
