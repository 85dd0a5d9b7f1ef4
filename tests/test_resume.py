"""Kill a real run at chosen points (SIGKILL, SIGTERM), resume it with the same command, and compare everything
with an uninterrupted run of the same seed: summary, every logged number, TensorBoard steps, final weights."""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import ROOT, run_train
from training.checkpoint import Checkpointer
from training.device import cuda_settings, resolve_device

# CartPole, 2,500 updates: warm-up to step 500, pruning from update 500 to 2,000 (agent steps 1,000 to 2,500),
# evaluations at 1,000, 2,000 and 3,000, checkpoints every 400 steps.
CARTPOLE = ["env=classic", "total_env_steps=3000", "agent.learning_starts=500", "sparsity=0.9",
            "pruning.update_freq_updates=100", "checkpoint.every_env_steps=400", "eval.every_env_steps=1000",
            "eval.episodes=3", "health.every_updates=200", "progress=false"]
# Pong with sticky actions: the resumed run must rebuild the ALE (and its RNG) mid-episode.
PONG = ["total_env_steps=1200", "agent.learning_starts=500", "agent.replay_capacity=2000", "env.max_episode_steps=300",
        "checkpoint.every_env_steps=400", "eval.every_env_steps=600", "eval.episodes=1", "sparsity=0.5",
        "pruning.update_freq_updates=20", "health.every_updates=50", "progress=false"]
TIMING = ("charts/SPS", "charts/SPS_cumulative", "charts/updates_per_second",
          "charts/updates_per_second_cumulative", "checkpoint/seconds", "health/probe_seconds")


def interrupt(sig: str, where: str, at: int, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.interrupt", sig, where, str(at), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def metric_rows(run_dir):
    """Every logged row without wall-clock numbers. Rows that only report a checkpoint are left out: a stop
    writes one extra checkpoint, which the uninterrupted run does not have."""
    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = {k: v for k, v in json.loads(line).items() if k not in TIMING}
        if set(row) != {"step", "checkpoint/bytes"}:
            rows.append(row)
    return rows


def summary(run_dir):
    s = json.loads((run_dir / "summary.json").read_text())
    s.pop("wall_time_s")
    s.pop("median_update_ms")  # wall-clock
    s.pop("wall_time_s_per_process", None)  # absent before issue 41, and wall-clock
    s.pop("code", None)  # the code version: a commit made between the two runs changes it, not the run
    return s


def tb_steps(run_dir, tag):
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def final_weights(run_dir, network):
    path, state, _, _ = Checkpointer(run_dir / "checkpoints", 1).load_latest()
    return state["agent"][network]


def assert_same_run(a, b, loss="losses/td_loss", networks=("online",), episodes=True):
    """``episodes=False`` for an offline run, which plays no training episodes."""
    assert summary(b) == summary(a)
    assert metric_rows(b) == metric_rows(a)
    for tag in (loss, *(["charts/episodic_return"] if episodes else []), "eval/episodic_return", "sparsity/total"):
        assert tb_steps(b, tag) == tb_steps(a, tag), tag
    for network in networks:
        wa, wb = final_weights(a, network), final_weights(b, network)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def cartpole_baseline(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("baseline")
    out = run_train(*CARTPOLE, f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


def test_a_finished_run_keeps_its_final_checkpoint_without_replay_and_logs_sizes(cartpole_baseline):
    kept = Checkpointer(cartpole_baseline / "checkpoints", 2).complete()
    assert [p.name for p in kept] == ["step_000000003000"]
    logged = {r["step"]: r["checkpoint/bytes"] for r in map(json.loads, open(cartpole_baseline / "metrics.jsonl"))
              if "checkpoint/bytes" in r}
    assert sorted(logged) == list(range(400, 3001, 400)) + [3000]
    assert sorted(f.name for f in kept[0].iterdir()) == ["logger.json", "manifest.json", "state.pt"]
    # written with the replay (3,000 slots of a 16-byte CartPole frame + 15 bytes), which was dropped at the end
    assert logged[3000] >= (kept[0] / "state.pt").stat().st_size + 3000 * 31
    path, state, arrays, _ = Checkpointer(kept[0].parent, 2).load_latest()
    assert state["trainer"]["env_step"] == 3000 and state["trainer"]["updates"] == 2500 and arrays == {}
    assert set(state) >= {"agent", "replay", "callbacks", "trainer"}


def test_checkpoint_size_is_what_was_written(tmp_path):
    """Killed before the end, the run still holds its last two checkpoints with replay; the logged size is theirs."""
    run_dir = tmp_path / "run"
    assert interrupt("SIGKILL", "step", 1700, [*CARTPOLE, f"hydra.run.dir={run_dir}"]).returncode == -9
    kept = Checkpointer(run_dir / "checkpoints", 2).complete()
    assert [p.name for p in kept] == ["step_000000001600", "step_000000001200"]
    logged = {r["step"]: r["checkpoint/bytes"] for r in map(json.loads, open(run_dir / "metrics.jsonl"))
              if "checkpoint/bytes" in r}
    data = [f for f in kept[0].iterdir() if f.name not in ("manifest.json", "logger.json")]
    assert len(list(kept[0].glob("replay.*.npy"))) == 7 and logged[1600] == sum(f.stat().st_size for f in data)


@pytest.mark.parametrize("sig, where, at, resumed_from", [
    ("SIGKILL", "step", 300, None),  # before the first checkpoint: starts again, logs cut back to nothing
    ("SIGKILL", "step", 450, 400),  # during warm-up
    ("SIGKILL", "step", 1700, 1600),  # mid-pruning
    ("SIGKILL", "step", 2700, 2400),  # after pruning ended
    ("SIGKILL", "eval", 2000, 1600),  # during an evaluation
    ("SIGTERM", "step", 1234, 1234),  # checkpoint at the signal, off the schedule
    ("SIGTERM", "eval", 1000, 1000),  # the interrupted evaluation is re-run on resume
    ("SIGUSR1", "step", 2222, 2222),
    ("SIGINT", "step", 1777, 1777),  # Ctrl-C: the same stop request
    ("SIGINT", "eval", 2000, 2000),
])
def test_kill_and_resume_is_exact(tmp_path, cartpole_baseline, sig, where, at, resumed_from):
    run_dir = tmp_path / "run"
    args = [*CARTPOLE, f"hydra.run.dir={run_dir}"]
    out = interrupt(sig, where, at, args)
    # SIGKILL: killed by the signal; SIGTERM, SIGUSR1, SIGINT: a clean exit with the shell's code for it, 128 + signal
    assert out.returncode == (-9 if sig == "SIGKILL" else 128 + signal.Signals[sig]), out.stderr[-3000:]
    if sig != "SIGKILL":
        assert out.stderr.strip().splitlines()[-1].startswith(f"stopped by {sig} at agent step {at}; checkpoint:")
        assert "Traceback" not in out.stderr
    resumed = run_train(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    if resumed_from is None:
        assert "resuming" not in resumed.stdout
    else:
        assert f"resuming from {run_dir}/checkpoints/step_{resumed_from:012d}" in resumed.stdout
    assert_same_run(cartpole_baseline, run_dir)
    timing = json.loads((run_dir / "summary.json").read_text())  # wall time and core-hours count every process
    assert len(timing["wall_time_s_per_process"]) == (1 if resumed_from is None else 2)
    assert timing["wall_time_s"] == pytest.approx(sum(timing["wall_time_s_per_process"]))


def test_a_second_ctrl_c_aborts_at_once_and_the_last_checkpoint_resumes_exactly(tmp_path, cartpole_baseline):
    run_dir = tmp_path / "run"
    args = [*CARTPOLE, f"hydra.run.dir={run_dir}"]
    out = interrupt("SIGINTx2", "step", 1777, args)
    assert out.returncode == 130, out.stderr[-3000:]
    assert out.stderr.strip().splitlines() == ["aborted by a second SIGINT; no checkpoint was written, the last one is "
                                               "intact: run the same command again to resume from it"]
    assert [p.name for p in Checkpointer(run_dir / "checkpoints", 2).complete()] == ["step_000000001600",
                                                                                     "step_000000001200"]
    resumed = run_train(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run_dir}/checkpoints/step_000000001600" in resumed.stdout
    assert_same_run(cartpole_baseline, run_dir)


def test_full_rainbow_resumes_exactly(tmp_path):
    """Rainbow with every switch on: the sum tree's priorities, the open n-step windows and the noise (torch's RNG)
    must all come back. Killed mid-episode during pruning, resumed, compared with an uninterrupted run."""
    args = [*CARTPOLE, "agent=rainbow", "agent.dueling=true", "agent.noisy=true", "agent.double=true"]
    baseline, run_dir = tmp_path / "baseline", tmp_path / "run"
    assert run_train(*args, f"hydra.run.dir={baseline}").returncode == 0
    assert interrupt("SIGKILL", "step", 1703, [*args, f"hydra.run.dir={run_dir}"]).returncode == -9
    resumed = run_train(*args, f"hydra.run.dir={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run_dir}/checkpoints/step_000000001600" in resumed.stdout
    assert_same_run(baseline, run_dir, loss="losses/c51_loss")


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, cartpole_baseline):
    run_dir = tmp_path / "run"
    args = [*CARTPOLE, f"hydra.run.dir={run_dir}"]
    assert interrupt("SIGKILL", "step", 1700, args).returncode == -9
    newest = run_dir / "checkpoints" / "step_000000001600"
    frames = newest / "replay.frames.npy"
    with open(frames, "r+b") as f:  # an interrupted write
        f.truncate(frames.stat().st_size // 2)
    resumed = run_train(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    warnings = [line for line in resumed.stderr.splitlines() if line.startswith("warning: checkpoint")]
    assert len(warnings) == 1 and "replay.frames.npy has" in warnings[0] and "step_000000001600" in warnings[0]
    assert f"resuming from {run_dir}/checkpoints/step_000000001200" in resumed.stdout
    assert len(list((run_dir / "checkpoints" / "unusable").iterdir())) == 1  # kept for inspection
    assert_same_run(cartpole_baseline, run_dir)


def test_without_stored_replay_a_resumed_run_refills_it_and_keeps_its_schedules(tmp_path):
    run_dir = tmp_path / "run"
    args = [*CARTPOLE, "checkpoint.replay=false", f"hydra.run.dir={run_dir}"]
    assert interrupt("SIGKILL", "step", 1700, args).returncode == -9
    assert list((run_dir / "checkpoints").glob("step_*/state.pt"))
    assert not list((run_dir / "checkpoints").glob("step_*/replay.*"))
    resumed = run_train(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "refilling it with 500 env steps" in resumed.stdout  # min(agent step 1600, learning_starts 500)
    s = summary(run_dir)
    assert (s["env_steps"], s["updates"]) == (3000, 2500) and s["sparsity"] == pytest.approx(0.9, abs=1e-3)


def test_external_sigterm_stops_within_seconds_and_the_resumed_run_is_exact(tmp_path, cartpole_baseline):
    run_dir = tmp_path / "run"
    args = [*CARTPOLE, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    while proc.poll() is None and not (metrics.exists() and '"step": 1000' in metrics.read_text()):
        time.sleep(0.02)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-3000:]
    assert time.monotonic() - sent < 10
    assert err.strip().splitlines()[-1].startswith("stopped by SIGTERM at agent step")
    resumed = run_train(*args)
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr[-3000:]
    assert_same_run(cartpole_baseline, run_dir)


def test_submitit_requeues_a_preempted_job_which_resumes_exactly(tmp_path, cartpole_baseline):
    """``hydra/launcher=submitit_local`` runs the job under submitit, which installs its requeue handler on
    SIGUSR2 as on SLURM. The run checkpoints, hands the signal to submitit, and the requeued job resumes."""
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "train.py", "-m", "hydra/launcher=submitit_local",
                             f"hydra.sweep.dir={sweep}", *CARTPOLE], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not any('"step": 1000' in m.read_text() for m in sweep.glob("*/metrics.jsonl")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    [job] = [c for c in psutil.Process(proc.pid).children(recursive=True) if "submitit.core._submit" in c.cmdline()]
    job.send_signal(signal.SIGUSR2)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    [run_dir] = [p.parent for p in sweep.glob("*/summary.json")]
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.*"))
    assert "stopped by SIGUSR2" in logs and "this job is preempted" in logs and "resuming from" in logs
    assert len((run_dir / "resumes.jsonl").read_text().splitlines()) == 1
    assert_same_run(cartpole_baseline, run_dir)


def kill_resume_compare(tmp_path, args, kill_at, resumed_from, **same_run):
    """An uninterrupted run ``a``; run ``b`` SIGKILLed at agent step ``kill_at`` and resumed with the same command
    from its checkpoint at ``resumed_from``; then ``assert_same_run(a, b, **same_run)``."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_train(*args, f"hydra.run.dir={a}").returncode == 0
    killed = interrupt("SIGKILL", "step", kill_at, [*args, f"hydra.run.dir={b}"])
    assert killed.returncode == -9, killed.stderr[-3000:]
    resumed = run_train(*args, f"hydra.run.dir={b}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {b}/checkpoints/step_{resumed_from:012d}" in resumed.stdout
    assert_same_run(a, b, **same_run)
    return b


def test_atari_kill_and_resume_is_exact(tmp_path):
    """Killed 200 steps into an episode: the resumed run re-plays it on a fresh ALE with the saved RNG."""
    kill_resume_compare(tmp_path, PONG, 1000, 800)


def test_minatar_rainbow_kill_and_resume_is_exact(tmp_path):
    """MinAtar draws from its own generator and carries its sticky action across episodes; Rainbow adds prioritized
    3-step replay. Killed at step 1,000, resumed from step 800: the same run as one never stopped."""
    args = ["agent=rainbow", "env=minatar", "env.id=seaquest", "total_env_steps=1600", "agent.learning_starts=400",
            "checkpoint.every_env_steps=400", "eval.every_env_steps=800", "eval.episodes=2", "sparsity=0.9",
            "pruning.update_freq_updates=20", "health.every_updates=50", "progress=false"]
    kill_resume_compare(tmp_path, args, 1000, 800, loss="losses/c51_loss")


def test_sac_on_dm_control_kill_and_resume_is_exact(tmp_path):
    """Killed 703 steps into a 1,000-step cartpole-swingup episode, during pruning: the resumed run restores
    dm_control's legacy RandomState, re-plays the continuous actions, and continues the actor's sampling noise."""
    args = ["agent=sac", "env=dmc", "network.hidden_sizes=[64,64]", "total_env_steps=2400",
            "agent.learning_starts=500", "sparsity=0.9", "pruning.update_freq_updates=100",
            "checkpoint.every_env_steps=400", "eval.every_env_steps=1200", "eval.episodes=1",
            "health.every_updates=500", "progress=false"]
    b = kill_resume_compare(tmp_path, args, 1703, 1600, loss="losses/qf1_loss",
                            networks=("actor", "critic1", "critic2", "target1", "target2"))
    assert summary(b)["sparsity_per_network"]["actor"] == pytest.approx(0.9, abs=1e-3)


def test_sac_on_mujoco_halfcheetah_kill_and_resume_is_exact(tmp_path):
    """Gymnasium's MuJoCo, with the tuned preset (reward scale 0.1, target entropy −|A|/2): killed 703 steps into a
    1,000-step HalfCheetah-v5 episode, during pruning, the resumed run restores the env's generator from before
    that episode's reset, re-plays its continuous actions through MuJoCo, and matches the uninterrupted run."""
    args = ["agent=sac", "env=mujoco", "network.hidden_sizes=[32,32]", "agent.batch_size=64", "torch_threads=1",
            "total_env_steps=2400", "agent.learning_starts=500", "sparsity=0.9", "pruning.update_freq_updates=100",
            "checkpoint.every_env_steps=400", "eval.every_env_steps=1200", "eval.episodes=1",
            "health.every_updates=500", "progress=false"]
    b = kill_resume_compare(tmp_path, args, 1703, 1600, loss="losses/qf1_loss",
                            networks=("actor", "critic1", "critic2", "target1", "target2"))
    assert summary(b)["env_id"] == "HalfCheetah-v5"
    assert summary(b)["sparsity_per_network"]["critic1"] == pytest.approx(0.9, abs=5e-3)  # ERK on 32-unit layers


def test_rerunning_a_complete_run_does_no_work(tmp_path, cartpole_baseline):
    """Not a file changes, Hydra's own records included: the preflight answers before Hydra opens the folder."""
    run_dir = tmp_path / "run"
    shutil.copytree(cartpole_baseline, run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    out = run_train(*CARTPOLE, f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(f"run already complete: {run_dir}/summary.json (final eval return ")
    assert "nothing to do" in out.stdout
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_default_folder_run_resumes_with_the_command_it_prints(tmp_path, cartpole_baseline, sig):
    """No ``hydra.run.dir``, as a new user types it: the folder is named from the command, so the command the stop
    message prints reaches the same folder and resumes it, to the uninterrupted run's summary, logs and weights; run
    once more, it says the run is complete and where its summary is, and changes nothing."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "tests.interrupt", sig, "step", "1777", *CARTPOLE], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 128 + signal.Signals[sig], out.stderr[-3000:]
    [run_dir] = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("dqn_CartPole-v1_gmp0.9_s0_")  # and a hash of the other overrides
    stop = out.stderr.strip().splitlines()[-1]
    assert stop.startswith(f"stopped by {sig} at agent step 1777; checkpoint: {run_dir}/checkpoints/step_"), stop
    python, *command = shlex.split(stop.split("; to resume, run the same command again: ")[1])
    assert python == "python" and command == [str(ROOT / "train.py"), *CARTPOLE]
    resumed = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {run_dir}/checkpoints/step_000000001777" in resumed.stdout
    assert resumed.stdout.strip().splitlines()[-1].startswith("done: final eval return ")
    assert " over 2 starts; run folder runs/" in resumed.stdout.strip().splitlines()[-1]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run_dir.name]
    assert_same_run(cartpole_baseline, run_dir)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    again = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.startswith(f"run already complete: runs/{run_dir.name}/summary.json"), again.stdout
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    """lr=1e30 sends the weights to ±1e30 after the first Adam step; the next loss is infinite or NaN."""
    run_dir = tmp_path / "run"
    out = run_train("env=classic", "total_env_steps=3000", "agent.learning_starts=1000", "agent.lr=1e30",
                    "checkpoint.every_env_steps=500", "progress=false", f"hydra.run.dir={run_dir}")
    assert out.returncode == 1, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith("error: losses/td_loss is ") and "at update 2 (agent step 1002)" in lines[0]
    assert "step_000000001000" in lines[0] and "intact" in lines[0]
    path, state, _, _ = Checkpointer(run_dir / "checkpoints", 2).load_latest()
    assert path.name == "step_000000001000" and state["trainer"]["updates"] == 0
    assert all(torch.isfinite(w).all() for w in state["agent"]["online"].values())
    assert not (run_dir / "summary.json").exists()


def test_a_checkpoint_that_cannot_be_written_stops_the_run_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").write_text("a file where the checkpoint folder should be")
    out = run_train("env=classic", "total_env_steps=1500", "checkpoint.every_env_steps=500", "progress=false",
                    f"hydra.run.dir={run_dir}")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        f"error: could not write the checkpoint at agent step 500 in {run_dir}/checkpoints: File exists. "
        "No checkpoint was written before it."]


METHOD_RUNS = {
    "static": ["pruning=static"],
    "set": ["pruning=set", "pruning.update_freq_updates=100"],
    "rigl": ["pruning=rigl", "pruning.update_freq_updates=100"],
    # ReDo and the reset beside GMP, with weight decay: one run holds all three generators and schedules
    "gmp+redo+reset+wd": ["pruning.update_freq_updates=100", "redo.enabled=true", "redo.every_updates=300",
                          "reset.enabled=true", "reset.every_updates=700", "agent.weight_decay=1e-5"],
}


@pytest.mark.parametrize("method", list(METHOD_RUNS))
def test_each_method_kill_and_resume_is_exact(tmp_path, method):
    """Killed at agent step 1,300 (mask updates, recycling and a reset before and after), resumed from 1,200."""
    args = [a for a in CARTPOLE if not a.startswith("pruning.")] + METHOD_RUNS[method]
    kill_resume_compare(tmp_path, args, 1300, 1200)


def test_lottery_kill_and_resume_is_exact(tmp_path):
    src = tmp_path / "src"
    assert run_train("env=classic", "total_env_steps=800", "agent.learning_starts=200", "sparsity=0.9",
                     "pruning.update_freq_updates=50", "checkpoint.save_init=true", "eval.episodes=1", "progress=false",
                     f"hydra.run.dir={src}").returncode == 0
    before = sorted((str(p), p.stat().st_mtime_ns) for p in src.rglob("*"))
    args = [a for a in CARTPOLE if not a.startswith("pruning.")] + ["pruning=lottery", f"pruning.mask_from={src}"]
    kill_resume_compare(tmp_path, args, 1300, 1200)
    assert sorted((str(p), p.stat().st_mtime_ns) for p in src.rglob("*")) == before  # the source is only read


def test_sac_with_set_and_redo_kill_and_resume_is_exact(tmp_path):
    """Three networks, two optimizers with mask hooks, SET's and ReDo's generators."""
    args = ["agent=sac", "env=classic", "env.id=Pendulum-v1", "network.hidden_sizes=[32,32]", "total_env_steps=1600",
            "agent.learning_starts=400", "pruning=set", "sparsity=0.9", "pruning.update_freq_updates=200",
            "redo.enabled=true", "redo.every_updates=300", "checkpoint.every_env_steps=400",
            "eval.every_env_steps=800", "eval.episodes=1", "health.every_updates=500", "progress=false"]
    kill_resume_compare(tmp_path, args, 1300, 1200, loss="losses/qf1_loss",
                        networks=("actor", "critic1", "critic2", "target1", "target2"))


def test_noisy_dueling_rainbow_with_rigl_redo_and_reset_kill_and_resume_is_exact(tmp_path):
    args = [a for a in CARTPOLE if not a.startswith("pruning.")] + [
        "agent=rainbow", "agent.noisy=true", "agent.dueling=true", "pruning=rigl", "pruning.update_freq_updates=100",
        "redo.enabled=true", "redo.every_updates=300", "reset.enabled=true", "reset.every_updates=700"]
    kill_resume_compare(tmp_path, args, 1300, 1200, loss="losses/c51_loss")


CUDA_RUNS = {
    "dqn": ([*CARTPOLE], "losses/td_loss", ("online",)),
    "sac": (["agent=sac", "env=classic", "env.id=Pendulum-v1", "network.hidden_sizes=[32,32]", "total_env_steps=1600",
             "agent.learning_starts=400", "sparsity=0.5", "pruning.update_freq_updates=200",
             "checkpoint.every_env_steps=400", "eval.every_env_steps=800", "eval.episodes=1",
             "health.every_updates=500", "progress=false"], "losses/qf1_loss", ("actor", "critic1", "critic2")),
}


@pytest.mark.cuda
@pytest.mark.parametrize("agent", list(CUDA_RUNS))
def test_a_cuda_run_killed_and_resumed_is_exact(tmp_path, agent):
    """On the GPU: the checkpoint holds the CUDA generators' states (SAC's action noise draws from them), so the
    resumed run equals the uninterrupted one where the kernels are deterministic."""
    args, loss, networks = CUDA_RUNS[agent]
    kill_resume_compare(tmp_path, [*args, "device=cuda"], 1300, 1200, loss=loss, networks=networks)


@pytest.mark.cuda
def test_a_cuda_checkpoint_resumes_on_a_cpu_and_says_so(tmp_path):
    run_dir = tmp_path / "run"
    args, _, _ = CUDA_RUNS["sac"]
    killed = interrupt("SIGKILL", "step", 1300, [*args, "device=cuda", f"hydra.run.dir={run_dir}"])
    assert killed.returncode == -9, killed.stderr[-3000:]
    out = subprocess.run([sys.executable, "train.py", *args, "device=cpu", f"hydra.run.dir={run_dir}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming with device: cuda -> cpu" in out.stdout
    assert "written on 1 GPU(s) and resumes without them" in out.stdout
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 1600


def test_ctrl_c_closes_the_progress_bar_before_its_message(tmp_path):
    args = [a for a in CARTPOLE if a != "progress=false"]
    out = interrupt("SIGINT", "step", 700, [*args, "progress=true", f"hydra.run.dir={tmp_path / 'run'}"])
    assert out.returncode == 130, out.stderr[-3000:]
    lines = [line for line in out.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert any("/3000 [" in line for line in lines)  # the bar was drawn
    assert lines[-1].startswith("stopped by SIGINT at agent step 700; checkpoint:"), lines[-3:]


@pytest.mark.parametrize("name, job, gpus, expected", [
    ("auto", None, 0, "cpu"), ("auto", 5, 0, "cpu"), ("auto", None, 2, "cuda"), ("auto", 0, 2, "cuda:0"),
    ("auto", 3, 2, "cuda:1"), ("auto", 7, 4, "cuda:3"), ("auto", 4, 1, "cuda:0"), ("cuda:1", 0, 2, "cuda:1"),
    ("cpu", 3, 2, "cpu")])
def test_auto_device_spreads_sweep_jobs_over_the_visible_gpus(name, job, gpus, expected):
    assert resolve_device(name, job, gpus) == torch.device(expected)


def test_cuda_settings_follow_the_config(compose_cfg):
    """Flags only (they exist in a CPU build too): both keys off is float32 everywhere, cuDNN's TF32 included."""
    cuda_settings(compose_cfg("env=classic", "tf32=true", "cudnn_benchmark=true"))
    flags = lambda: (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,  # noqa: E731
                     torch.backends.cudnn.benchmark)
    assert flags() == (True, True, True)
    cuda_settings(compose_cfg("env=classic"))
    assert flags() == (False, False, False)
