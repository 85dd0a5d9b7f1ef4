"""What runs cost: the model of ``training/cost.py`` against the committed runs' measured times, and the line a sweep
prints before it launches (its runs, those complete, its core-hours)."""

import json
from pathlib import Path

import pytest
import yaml

from suite import preflight, run_seconds
from tests.conftest import ROOT, run_train
from training.cost import RunShape, core_seconds


def measured_and_modelled(folder: Path) -> tuple[float, float]:
    """Σ wall_time_s of the committed runs under ``folder`` (one core each) and Σ of the model's core-seconds."""
    measured = modelled = 0.0
    for summary_path in folder.glob("*/summary.json"):
        summary = json.loads(summary_path.read_text())
        cfg = yaml.safe_load((summary_path.parent / "config.yaml").read_text())
        run = RunShape(cfg["agent"]["name"], cfg["env"]["name"], cfg["network"]["name"], cfg["network"]["width"],
                       summary["env_steps"], summary["updates"])
        measured += summary["wall_time_s"]
        modelled += core_seconds(run)
    return measured, modelled


@pytest.mark.parametrize("study", ["minatar_dqn_1m", "minatar_dqn_paper_protocol", "minatar_offline_cql"])
def test_the_model_is_within_a_quarter_of_the_committed_runs_measured_time(study):
    """What the sweep line calls ±25% where measured: DQN on MinAtar at widths 1 and 3, updates every 4 steps and
    every step, online and offline."""
    measured, modelled = measured_and_modelled(ROOT / "results" / study)
    assert measured > 0 and abs(modelled / measured - 1) < 0.25, (study, measured / 3600, modelled / 3600)


def test_the_per_value_ratios_give_each_jobs_own_cost_to_within_two_percent(tmp_path, compose_cfg):
    """A sweep over steps and width: the line's total against the sum of each job's config composed and costed."""
    steps, widths = ["1000000", "2000000"], ["1", "3"]
    line = preflight(["-m", "env=minatar", "env.id=breakout", f"hydra.sweep.dir={tmp_path}",
                      f"total_env_steps={','.join(steps)}", f"network.width={','.join(widths)}"])
    exact = sum(run_seconds(compose_cfg("env=minatar", "env.id=breakout", f"network.width={w}", f"total_env_steps={s}"))
                for w in widths for s in steps)
    assert line.startswith("sweep: 4 runs, about ") and " core-hours on a CPU (rough: " in line, line
    assert float(line.split("about ")[1].split(" core-")[0]) * 3600 == pytest.approx(exact, rel=0.02)


def test_a_sweep_counts_the_runs_already_complete_in_its_folder(tmp_path):
    args = ["-m", "env=classic", "seed=0,1", "sparsity=0,0.9", f"hydra.sweep.dir={tmp_path}"]
    assert preflight(args).startswith("sweep: 4 runs, about ")
    done = tmp_path / "env=classic,seed=1,sparsity=0.9"  # Hydra's name for the job: its overrides, sorted
    done.mkdir()
    (done / "summary.json").write_text("{}")
    assert preflight(args).startswith(f"sweep: 4 runs, 1 of them complete in {tmp_path} (skipped): 3 to train, "
                                      "about ")
    named = tmp_path / "named"  # a command that names its jobs' folders otherwise: read from its hydra.* overrides
    (named / "seed=0,sparsity=0").mkdir(parents=True)
    (named / "seed=0,sparsity=0" / "summary.json").write_text("{}")
    assert preflight([*args[:-1], f"hydra.sweep.dir={named}",
                      "hydra.job.config.override_dirname.exclude_keys=[env,hydra.sweep.dir]"]).startswith(
        f"sweep: 4 runs, 1 of them complete in {named} (skipped): 3 to train, about ")


def test_a_setting_without_a_measured_cost_has_no_estimate(compose_cfg):
    assert run_seconds(compose_cfg("agent=sac", "env=dmc")) is not None
    assert core_seconds(RunShape("sac", "dmc", "some_new_network", 1.0, 1000, 1000)) is None


def test_the_command_prints_the_sweep_line_before_it_launches_and_a_rerun_trains_nothing(tmp_path):
    args = ["-m", "env=classic", "total_env_steps=300", "agent.learning_starts=100", "eval.episodes=1", "seed=0,1",
            "progress=false", f"hydra.sweep.dir={tmp_path}"]
    first = run_train(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.splitlines()[0].startswith("sweep: 2 runs, about 1 core-minute on a CPU (rough: "), first.stdout
    again = run_train(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.splitlines()[0] == f"sweep: 2 runs, 2 of them complete in {tmp_path} (skipped): nothing to " \
                                           "train"


def test_every_sweep_preset_says_what_it_costs():
    for path in (ROOT / "conf" / "sweep").glob("*.yaml"):
        assert "\n# Cost: " in path.read_text(), path.name
