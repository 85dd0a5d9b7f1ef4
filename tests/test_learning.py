"""DQN learns CartPole with the suite's own defaults for that environment, as a user would run it."""

import json

import pytest

from tests.conftest import run_train


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_dqn_solves_cartpole_in_100k_steps(tmp_path, seed):
    out = run_train("agent=dqn", "env=classic", "env.id=CartPole-v1", "total_env_steps=100000", f"seed={seed}",
                    "progress=false", f"hydra.run.dir={tmp_path}", timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["env_steps"] == 100_000
    assert summary["final_eval_return"] >= 450, summary
