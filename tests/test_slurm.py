"""The SLURM path for real: a one-node SLURM cluster on this machine (``scripts/slurm_local.sh``, Debian's
slurm-wlm and munge), a sweep through ``hydra/launcher=submitit_slurm`` and ``sbatch``, and a preemption answered by
SLURM's own signal and requeue. A cluster that does not start fails these tests, with its reason."""

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import ROOT, run_train
from tests.test_resume import metric_rows, summary

TINY = ["env=minatar", "env.id=breakout", "total_env_steps=1200", "agent.learning_starts=200",
        "eval.every_env_steps=600", "eval.episodes=2", "progress=false"]
# The SLURM command of docs/sweeps.md, with a short time limit and the cluster's one partition.
LAUNCHER = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=10",
            "hydra.launcher.signal_delay_s=60", "hydra.launcher.max_num_timeout=3", "hydra.launcher.mem_gb=2",
            "hydra.launcher.cpus_per_task=1"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    env = {**os.environ, "SLURM_LOCAL_DIR": str(tmp_path_factory.mktemp("slurm"))}
    up = subprocess.run(["bash", "scripts/slurm_local.sh", "up"], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=900)
    reason = (up.stderr.strip().splitlines() or ["no output"])[-1]
    if up.returncode != 0:
        subprocess.run(["bash", "scripts/slurm_local.sh", "down"], cwd=ROOT, env=env, timeout=60)
        pytest.fail(f"the one-node SLURM cluster did not start: {reason}")
    env["SLURM_CONF"] = os.path.join(env["SLURM_LOCAL_DIR"], "slurm.conf")
    yield env
    subprocess.run(["bash", "scripts/slurm_local.sh", "down"], cwd=ROOT, env=env, timeout=60)


def train(env, *args, timeout=900):
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def finished_jobs(env) -> list[tuple[str, str]]:
    """SLURM's own record of each job's end (jobcomp/filetxt), in order: (job id as submitit names it, state); an
    array task is "<array job>_<task>"."""
    path = os.path.join(env["SLURM_LOCAL_DIR"], "jobcomp.txt")
    jobs = []
    for line in open(path).read().splitlines() if os.path.exists(path) else []:
        f = dict(part.split("=", 1) for part in line.split() if "=" in part)
        jobs.append((f"{f['ArrayJobId']}_{f['ArrayTaskId']}" if "ArrayJobId" in f else f["JobId"], f["JobState"]))
    return jobs


def test_a_sweep_runs_through_sbatch_and_plots(slurm, tmp_path):
    sweep = tmp_path / "sweep"
    out = train(slurm, "-m", *LAUNCHER, f"hydra.sweep.dir={sweep}", *TINY, "seed=0,1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"sweep {sweep}: 2 complete, 0 failed, 0 unfinished" in out.stdout
    submitted = list(sweep.glob(".submitit/*/*_submitted.pkl"))
    assert len(submitted) == 2
    job_ids = {p.name.split("_submitted")[0] for p in submitted}  # "<array id>_<index>"
    for _ in range(60):  # SLURM records a job's end just after its result file, which ends the sweep, is written
        states = dict(finished_jobs(slurm))
        if job_ids <= set(states):
            break
        time.sleep(0.5)
    assert {job: states.get(job) for job in job_ids} == dict.fromkeys(job_ids, "COMPLETED"), states
    drawn = subprocess.run([sys.executable, "plot.py", str(sweep), "--reps", "1000"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert pd.read_csv(sweep / "summary.csv")[["runs", "seeds"]].values.tolist() == [[2, 2]]


def test_a_preempted_job_is_requeued_by_slurm_and_resumes_exactly(slurm, tmp_path):
    """The job's step gets USR2 from SLURM (``scancel --signal=USR2 <job>.0``: what SLURM sends the steps
    ``signal_delay_s`` before the time limit), writes a checkpoint, and submitit requeues it (``scontrol requeue``);
    the requeued job resumes from that checkpoint and ends with the summary of a run never stopped."""
    reference = tmp_path / "reference"
    args = [*TINY, "total_env_steps=5000", "checkpoint.every_env_steps=100000", "eval.every_env_steps=2500"]
    assert run_train(*args, f"hydra.run.dir={reference}").returncode == 0
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "train.py", "-m", *LAUNCHER, f"hydra.sweep.dir={sweep}", *args, "seed=0"],
                            cwd=ROOT, env=slurm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job = None
        for _ in range(600):
            metrics = list(sweep.rglob("metrics.jsonl"))
            pkl = list(sweep.glob(".submitit/*/*_submitted.pkl"))
            if metrics and pkl and any('"step": 1000' in m.read_text() for m in metrics):
                job = pkl[0].name.split("_submitted")[0]
                break
            time.sleep(0.5)
        assert job is not None, "the job did not reach agent step 1,000"
        sig = subprocess.run(["scancel", "--signal=USR2", f"{job}.0"], env=slurm, capture_output=True, text=True)
        assert sig.returncode == 0, sig.stderr
        stdout, stderr = proc.communicate(timeout=900)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    (run_dir,) = [p.parent for p in sweep.rglob("summary.json")]
    resumes = [json.loads(line) for line in (run_dir / "resumes.jsonl").read_text().splitlines()]
    assert len(resumes) == 1 and resumes[0]["env_step"] > 1000  # resumed from the stop's checkpoint, not restarted
    assert summary(run_dir) == summary(reference)
    assert metric_rows(run_dir) == metric_rows(reference)
    for _ in range(60):  # SLURM's records of the job's two ends: requeued (back to PENDING), then COMPLETED
        ends = [state for job_id, state in finished_jobs(slurm) if job_id == job]
        if len(ends) == 2:
            break
        time.sleep(0.5)
    assert ends == ["PENDING", "COMPLETED"]


def test_slurm_launcher_without_sbatch_or_with_an_unknown_partition_is_one_line(slurm, tmp_path):
    no_slurm = {k: v for k, v in slurm.items() if k != "SLURM_CONF"}
    no_slurm["PATH"] = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                       if not os.path.exists(os.path.join(p, "sbatch")))
    out = train(no_slurm, "-m", *LAUNCHER, f"hydra.sweep.dir={tmp_path / 'a'}", *TINY)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: hydra/launcher=submitit_slurm submits with sbatch, which is not on the PATH (a SLURM login node has "
        "it; to try SLURM on this machine: scripts/slurm_local.sh up)"]
    out = train(slurm, "-m", *LAUNCHER, "hydra.launcher.partition=gpu-a100", f"hydra.sweep.dir={tmp_path / 'b'}",
                *TINY)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    assert "hydra.launcher.partition='gpu-a100' is not allowed; this cluster's partitions: debug" in out.stderr
