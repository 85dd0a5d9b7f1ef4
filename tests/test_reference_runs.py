"""Speed-ups that claim not to change the algorithm must not change a single number.

Each case runs one fixed-seed config twice: with the code of ``REFERENCE`` (taken from git) and with the code
under test, on the same machine, and compares every ``metrics.jsonl`` row and ``summary.json`` once wall-clock
figures are dropped (as the resume tests compare runs). Comparing two runs here, rather than against stored
numbers, keeps the check exact: CPU kernels may round differently on another processor, never on the same one.

``REFERENCE`` is the commit before the speed work of issue 18. Move it only with a change that alters results on
purpose, and say so in the docs.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_resume import metric_rows, summary

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "543eeaaf8005020767d1802171527336d038356a"

CASES = {
    "minatar_dqn_gmp": ["agent=dqn", "env=minatar", "env.id=breakout", "sparsity=0.9", "total_env_steps=4000",
                        "agent.learning_starts=500", "pruning.update_freq_updates=50", "eval.every_env_steps=2000",
                        "eval.episodes=2", "log_every_env_steps=1000"],
    # ~tuned and the values tuned/rainbow_minatar.yaml held at the reference commit: the preset has since moved to
    # Dopamine's MinAtar network, a key the reference code does not know
    "minatar_rainbow_set": ["agent=rainbow", "env=minatar", "~tuned", "agent.replay_capacity=100000",
                            "agent.target_update_period=1000", "agent.lr=1e-4", "agent.adam_eps=3.125e-4",
                            "agent.v_min=-100", "agent.v_max=100", "torch_threads=1",
                            "env.id=seaquest", "pruning=set", "sparsity=0.8",
                            "total_env_steps=3000", "agent.learning_starts=500", "eval.every_env_steps=1500",
                            "eval.episodes=2", "log_every_env_steps=1000"],
    "pong_dqn": ["agent=dqn", "total_env_steps=1200", "agent.learning_starts=600", "agent.replay_capacity=2000",
                 "env.max_episode_steps=300", "eval.every_env_steps=1200", "eval.episodes=1",
                 "log_every_env_steps=300"],
    "pendulum_sac_static": ["agent=sac", "env=classic", "env.id=Pendulum-v1", "network.hidden_sizes=[32,32]",
                            "pruning=static", "sparsity=0.5", "total_env_steps=1500", "agent.learning_starts=500",
                            "eval.every_env_steps=1500", "eval.episodes=1", "log_every_env_steps=500"],
}


@pytest.fixture(scope="module")
def reference_code(tmp_path_factory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the reference code comes from git")
    if subprocess.run(["git", "cat-file", "-e", f"{REFERENCE}^{{commit}}"], cwd=ROOT).returncode:
        shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip() == "true"
        if shallow:
            pytest.skip(f"commit {REFERENCE[:7]} is not in this shallow clone")
        pytest.fail(f"commit {REFERENCE[:7]} is not in this repository's history")
    out = tmp_path_factory.mktemp("reference")
    archive = subprocess.run(["git", "archive", REFERENCE], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def run(code: Path, args: list[str], run_dir: Path) -> tuple[list[dict], dict]:
    out = subprocess.run([sys.executable, "train.py", *args, "seed=3", "progress=false", f"hydra.run.dir={run_dir}"],
                         cwd=code, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return metric_rows(run_dir), summary(run_dir)  # summary() drops the code version: the reference knows no commit


@pytest.mark.parametrize("case", CASES)
def test_same_numbers_as_the_reference_commit(case, reference_code, tmp_path):
    before_rows, before = run(reference_code, CASES[case], tmp_path / "before")
    after_rows, after = run(ROOT, CASES[case], tmp_path / "after")
    assert len(after_rows) == len(before_rows) > 5
    for i, (a, b) in enumerate(zip(after_rows, before_rows, strict=True)):
        assert a == b, f"metrics.jsonl row {i} differs from {REFERENCE[:7]}"
    assert after == before
    assert "charts/episodic_return" in {k for row in after_rows for k in row}
