"""DQN and Rainbow learn CartPole, SAC learns Pendulum, with the suite's own defaults for those environments, as a
user would run them."""

import json

import pytest

from tests.conftest import run_train


@pytest.mark.slow
def test_dqn_solves_cartpole_in_100k_steps(tmp_path):
    """Seed 0 of the four in docs/benchmarks.md's table (all end at 500); the others are left out to keep the suite
    near 20 minutes."""
    out = run_train("agent=dqn", "env=classic", "env.id=CartPole-v1", "total_env_steps=100000", "seed=0",
                    "progress=false", f"hydra.run.dir={tmp_path}", timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["env_steps"] == 100_000
    assert summary["final_eval_return"] >= 450, summary


@pytest.mark.slow
@pytest.mark.parametrize("compute", ["false", "true"])
def test_dqn_learns_cartpole_at_90_percent_sparsity_at_width_2(tmp_path, compute):
    """At width 2 (42k weights, 4.2k kept) the pruned agent reaches 500 like the dense one, with its layers trained
    from CSR as well (``pruning.sparse_compute=true``: fc2 converts once GMP's ramp passes 80%). At width 1 (10.7k
    weights, 1.1k kept) it learns but ends below the dense 500 (185.5 with seed 0, docs/benchmarks.md), the paper's
    point that pruning pays as width grows; that run is not repeated here, to keep the suite near 20 minutes."""
    out = run_train("agent=dqn", "env=classic", "env.id=CartPole-v1", "total_env_steps=100000", "seed=0",
                    "sparsity=0.9", "network.width=2", f"pruning.sparse_compute={compute}", "progress=false",
                    f"hydra.run.dir={tmp_path}", timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert summary["final_eval_return"] >= 450, summary


@pytest.mark.slow
def test_rigl_learns_cartpole_at_90_percent_sparsity_at_width_2(tmp_path):
    """Sparse from the first step (4.2k of 42k weights), RigL's mask updates every 1,000 updates until 80% of the
    run: seed 0 ends at 500 (seed 1 in the table in docs/benchmarks.md)."""
    out = run_train("agent=dqn", "env=classic", "env.id=CartPole-v1", "total_env_steps=100000", "seed=0",
                    "pruning=rigl", "sparsity=0.9", "network.width=2", "progress=false", f"hydra.run.dir={tmp_path}",
                    timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["sparsity"] == pytest.approx(0.9, abs=2e-3)
    assert summary["final_eval_return"] >= 400, summary


@pytest.mark.slow
def test_rainbow_solves_cartpole_in_40k_steps(tmp_path):
    """The suite's defaults (conf/tuned/rainbow_classic.yaml) for 40k of their 100k agent steps, where both seeds of
    the table in docs/benchmarks.md first reach the top (this run: 286.5, 416.7, 415.5, 493.6 at 10k-40k; 56 s)."""
    out = run_train("agent=rainbow", "env=classic", "env.id=CartPole-v1", "total_env_steps=40000", "seed=0",
                    "progress=false", f"hydra.run.dir={tmp_path}", timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["agent"] == "rainbow" and summary["env_steps"] == 40_000
    assert summary["final_eval_return"] >= 450, summary


@pytest.mark.slow
def test_sac_learns_pendulum_in_10k_steps(tmp_path):
    """The defaults (conf/agent/sac.yaml with conf/tuned/sac_classic.yaml) for the first 10k of their 20k agent
    steps: seed 0 evaluates -1,577.1 after the 5k-step warm-up and -153.1 at 10k (56 s; the full run goes on to
    -116.4 at 20k, docs/benchmarks.md)."""
    out = run_train("agent=sac", "env=classic", "env.id=Pendulum-v1", "total_env_steps=10000", "seed=0",
                    "progress=false", f"hydra.run.dir={tmp_path}", timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["agent"] == "sac" and summary["env_steps"] == 10_000 and summary["updates"] == 5_000
    assert summary["final_eval_return"] >= -250, summary
