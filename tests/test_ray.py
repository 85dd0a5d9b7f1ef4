"""Sweeps on a real local Ray cluster through hydra-ray-launcher, in the Ray environment of ``scripts/ray_local.sh``
(its own: the launcher needs cloudpickle<3, the joblib launcher cloudpickle>=3). A cluster that does not start
fails the test, with its reason."""

import json
import subprocess

import pandas as pd
import pytest

from tests.conftest import ROOT, run_train

RAY_VENV = ROOT / ".venv-ray"
TINY = ["env=minatar", "env.id=breakout", "total_env_steps=1200", "agent.learning_starts=200",
        "eval.every_env_steps=600", "eval.episodes=2", "progress=false"]
# The Ray command of docs/sweeps.md: connect to the running head (Ray 2 refuses object_store_memory, which the launcher
# sets by default, when connecting to an existing cluster).
LAUNCHER = ["hydra/launcher=ray", "hydra.launcher.ray.init.address=auto",
            "+hydra.launcher.ray.init.object_store_memory=null"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_head():
    up = subprocess.run(["bash", "scripts/ray_local.sh", "up"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if up.returncode != 0:
        subprocess.run(["bash", "scripts/ray_local.sh", "down"], cwd=ROOT, timeout=120)
        pytest.fail(f"the local Ray cluster did not start: {(up.stderr.strip().splitlines() or ['?'])[-1]}")
    yield
    subprocess.run(["bash", "scripts/ray_local.sh", "down"], cwd=ROOT, timeout=120)


def test_a_two_job_sweep_completes_on_a_local_ray_cluster(ray_head, tmp_path):
    sweep = tmp_path / "sweep"
    out = subprocess.run([str(RAY_VENV / "bin" / "python"), "train.py", "-m", *LAUNCHER, f"hydra.sweep.dir={sweep}",
                          *TINY, "seed=0,1"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"sweep {sweep}: 2 complete, 0 failed, 0 unfinished" in out.stdout
    assert "Connected to Ray cluster" in out.stderr + out.stdout  # the running head, not a private ray.init()
    listed = subprocess.run([str(RAY_VENV / "bin" / "ray"), "list", "tasks", "--filter", "func_or_class_name=_run_job",
                             "--format", "json"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert [task["state"] for task in json.loads(listed.stdout)] == ["FINISHED", "FINISHED"]  # Ray's own record
    drawn = subprocess.run([str(RAY_VENV / "bin" / "python"), "plot.py", str(sweep), "--reps", "1000"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert pd.read_csv(sweep / "summary.csv")[["runs", "seeds"]].values.tolist() == [[2, 2]]


def test_the_ray_launcher_where_it_is_not_installed_is_one_line(tmp_path):
    out = run_train("-m", *LAUNCHER, f"hydra.sweep.dir={tmp_path}", *TINY)  # the test environment has no Ray
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        'error: hydra/launcher=ray needs its Hydra plugin, which is not installed (the ray extra, in an environment '
        'of its own: scripts/ray_local.sh env)']
