"""Real multirun sweeps of tiny MinAtar runs on Hydra's launchers, then ``plot.py`` on the sweep folder."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from rliable import library as rly
from rliable import metrics

import plot as plot_cli
from analysis.aggregate import score_matrices
from analysis.normalize import normalize
from analysis.sweep_runs import load_runs, method_label
from suite import preflight
from tests.conftest import ROOT, run_train
from training.preflight import UserError, compose

TINY = ["env=minatar", "total_env_steps=1200", "eval.every_env_steps=600", "eval.episodes=2", "progress=false"]
FIGURES = ["summary.csv", "scaling_law.png", "scaling_law.pdf", "performance_profile.png", "performance_profile.pdf",
           "learning_curves.png", "learning_curves.pdf"]


def plot(sweep, out, reps=1000):
    return subprocess.run([sys.executable, "plot.py", str(sweep), "--out", str(out), "--reps", str(reps)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_joblib_sweep_plots_rliables_aggregates_and_a_rerun_trains_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    command = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}",
               "env.id=breakout,space_invaders", "seed=0,1", *TINY]
    out = run_train(*command)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"sweep {sweep}: 4 complete, 0 failed, 0 unfinished" in out.stdout
    drawn = plot(sweep, tmp_path / "figs")
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert all((tmp_path / "figs" / name).stat().st_size > 0 for name in FIGURES)
    summary = pd.read_csv(tmp_path / "figs" / "summary.csv")
    assert summary[["agent", "network", "width", "sparsity", "runs", "seeds", "games"]].values.tolist() == [
        ["dqn", "minatar_cnn", 1.0, 0.0, 4, 2, 2]]
    runs = load_runs(sweep)
    runs["normalized"] = normalize(runs)
    (name, matrix), = score_matrices(runs)[0].items()
    np.random.seed(0)  # plot.py's default --seed; rliable 1.2.0 resamples from NumPy's global generator
    point, ci = rly.get_interval_estimates({name: matrix}, lambda m: np.array([metrics.aggregate_iqm(m)]), reps=1000)
    assert summary.iqm[0] == pytest.approx(point[name][0], rel=1e-12)
    assert [summary.ci_low[0], summary.ci_high[0]] == pytest.approx([ci[name][0, 0], ci[name][1, 0]], rel=1e-12)

    def outputs():  # what training writes: metrics, summaries, TensorBoard events, checkpoints
        paths = [p for p in sweep.rglob("*") if p.is_file() and ".hydra" not in p.parts
                 and p.name not in ("train.log", "multirun.yaml")]  # Hydra's own records of each launch
        return {p: p.stat().st_mtime_ns for p in paths}

    before = outputs()
    assert len([p for p in before if p.name == "summary.json"]) == 4
    again = run_train(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"sweep {sweep}: 4 complete, 0 failed, 0 unfinished" in again.stdout
    assert outputs() == before  # not a file written, touched or added: no run trained or resumed


def test_submitit_local_sweep_of_dense_and_sparse_runs(tmp_path):
    sweep = tmp_path / "sweep"
    out = run_train("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}",
                    "sparsity=0,0.9", *TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"sweep {sweep}: 2 complete" in out.stdout
    assert list(sweep.glob(".submitit/*/*_submitted.pkl"))  # the jobs went through submitit
    drawn = plot(sweep, sweep)
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary[["agent", "width", "sparsity", "runs", "games"]].values.tolist() == [
        ["dqn", 1.0, 0.0, 1, 1], ["dqn", 1.0, 0.9, 1, 1]]
    assert all((sweep / name).is_file() for name in FIGURES)


def test_atari_sweep_is_human_normalised_in_summary_csv(tmp_path):
    """Two tiny Atari runs on Hydra's basic launcher: the IQM of two scores is their mean, here of the two games'
    human-normalised final evaluation returns, computed from the runs' own summaries and DQN Zoo's table."""
    sweep = tmp_path / "sweep"
    out = run_train("-m", f"hydra.sweep.dir={sweep}", "env.id=Pong,Breakout", "total_env_steps=300",
                    "agent.learning_starts=200", "agent.replay_capacity=1000", "env.max_episode_steps=200",
                    "eval.episodes=1", "progress=false")
    assert out.returncode == 0, out.stderr[-3000:]
    drawn = plot(sweep, sweep)
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    scores = {s["env_id"]: s["final_eval_return"] for s in map(json.loads, (p.read_text() for p in
                                                                          sweep.rglob("summary.json")))}
    by_hand = ((scores["Pong"] + 20.7) / (14.6 + 20.7) + (scores["Breakout"] - 1.7) / (30.5 - 1.7)) / 2
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary[["network", "width", "sparsity", "runs", "seeds", "games"]].values.tolist() == [
        ["nature_cnn", 1.0, 0.0, 2, 1, 2]]
    assert summary.iqm[0] == pytest.approx(by_hand)


@pytest.mark.parametrize("env, game, extra", [
    ("classic", "CartPole-v1", ["agent.learning_starts=200"]),
    ("dmc", "cartpole-balance", ["agent=sac", "agent.learning_starts=1000", "network.hidden_sizes=[32,32]"]),
])
def test_classic_and_dmc_sweeps_are_plotted_on_their_documented_scale(tmp_path, env, game, extra):
    """The normalised score by hand from the runs' own summaries: dm_control return / 1000; classic control from the
    measured random score (0) to Gymnasium's solved threshold (1)."""
    sweep = tmp_path / "sweep"
    out = run_train("-m", f"hydra.sweep.dir={sweep}", f"env={env}", f"env.id={game}", "seed=0,1", *extra,
                    "total_env_steps=1100", "eval.episodes=1", "progress=false")
    assert out.returncode == 0, out.stderr[-3000:]
    drawn = plot(sweep, sweep)
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    scores = [json.loads(p.read_text())["final_eval_return"] for p in sweep.rglob("summary.json")]
    if env == "dmc":
        by_hand = [s / 1000 for s in scores]
    else:
        random = pd.read_csv(ROOT / "analysis/data/classic_random.csv", comment="#").set_index("game").random[game]
        by_hand = [(s - random) / (475 - random) for s in scores]
    assert plot_cli.YLABEL[env] == {"dmc": "return / 1000", "classic": "normalised score (0 = random, 1 = solved)"}[env]
    summary = pd.read_csv(sweep / "summary.csv")
    assert summary[["runs", "seeds", "games"]].values.tolist() == [[2, 2, 1]]
    assert summary.iqm[0] == pytest.approx(np.mean(by_hand))  # IQM of two runs is their mean
    assert all((sweep / name).stat().st_size > 0 for name in FIGURES)


def test_a_failed_job_does_not_stop_the_sweep_and_is_listed(tmp_path):
    sweep = tmp_path / "sweep"
    taken = sweep / "seed=1"
    taken.mkdir(parents=True)
    (taken / "config.yaml").write_text("seed: 7\n")  # the folder holds another run: that job must refuse it
    command = ["-m", f"hydra.sweep.dir={sweep}", "seed=0,1,2", *TINY,
               "hydra.job.config.override_dirname.exclude_keys=[env,total_env_steps,eval.every_env_steps,"
               "eval.episodes,progress,hydra.sweep.dir]"]
    out = run_train(*command)
    assert out.returncode == 1
    assert f"sweep {sweep}: 2 complete, 1 failed, 0 unfinished" in out.stdout
    assert "failed: seed=1: error: run folder=" in out.stdout
    assert (sweep / "seed=0" / "summary.json").is_file() and (sweep / "seed=2" / "summary.json").is_file()
    shutil.rmtree(sweep / "seed=2")  # as if its job had never started
    drawn = plot(sweep, tmp_path / "figs")
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert "failed: seed=1: error: run folder=" in drawn.stdout
    assert "missing: seed=2 env=minatar total_env_steps=1200" in drawn.stdout
    assert "1 complete, 1 failed, 0 unfinished runs" in drawn.stdout
    assert pd.read_csv(tmp_path / "figs" / "summary.csv").runs.tolist() == [1]


def test_preset_sweeps_are_checked_value_by_value_before_any_job():
    with pytest.raises(UserError, match="agent=sac needs continuous actions"):
        preflight(["+sweep=scaling_law_minatar", "agent=sac"])
    with pytest.raises(UserError, match="env.id='pong' is not allowed; allowed MinAtar games"):
        preflight(["+sweep=scaling_law_minatar", "env.id=breakout,pong"])
    preflight(["+sweep=scaling_law_minatar", "agent=rainbow"])


def compose_hydra(*overrides):
    try:
        return compose(list(overrides), with_hydra=True)
    finally:
        GlobalHydra.instance().clear()


def test_atari_preset_is_the_papers_grid():
    cfg = compose_hydra("+sweep=scaling_law_atari")
    params = cfg.hydra.sweeper.params
    assert len(params["env.id"].split(",")) == 15 and params["network.width"] == "1,3,5"
    assert params["sparsity"] == "0,0.95" and params["seed"] == "0,1,2,3,4"
    assert cfg.network.name == "impala" and cfg.env.name == "atari" and cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.sweep.dir == "runs/sweeps/scaling_law_atari_dqn"


def test_minatar_presets_sweep_folder_names_the_agent():
    cfg = compose_hydra("+sweep=scaling_law_minatar", "agent=rainbow")
    assert cfg.hydra.sweep.dir == "runs/sweeps/scaling_law_minatar_rainbow" and cfg.network.name == "minatar_cnn"


def test_the_paper_protocol_preset_is_the_minatar_papers_dqn_at_the_studys_budget():
    preflight(["+sweep=minatar_paper_protocol", "require_clean_tree=false"])  # a developer's tree may be dirty
    cfg = compose_hydra("+sweep=minatar_paper_protocol")
    assert cfg.require_clean_tree  # its runs are for results/: test_provenance.py checks the refusal
    assert cfg.agent.optimizer.value == "rmsprop" and cfg.agent.update_period == 1 and cfg.agent.epsilon_end == 0.1
    assert not cfg.env.minimal_action_set and cfg.network.init.value == "torch" and cfg.network.width == 1
    assert cfg.total_env_steps == 1_000_000 and cfg.sparsity == 0
    assert cfg.hydra.sweep.dir == "results/minatar_dqn_paper_protocol"
    assert cfg.hydra.sweeper.params == {"env.id": "breakout,asterix,space_invaders", "seed": "0,1,2"}


@pytest.mark.parametrize("preset, games", [("methods_minatar", 5), ("methods_atari", 15)])
def test_methods_presets_compare_eight_methods_at_widths_1_and_3(preset, games):
    preflight([f"+sweep={preset}"])  # every value of the grid passes the checks
    preflight([f"+sweep={preset}", "+sweep/methods=rigl"])  # one method from the command line replaces the list
    cfg = compose_hydra(f"+sweep={preset}")
    params = cfg.hydra.sweeper.params
    assert params["+sweep/methods"].split(",") == ["dense", "dense_redo", "dense_reset", "dense_wd", "gmp", "static",
                                                   "set", "rigl"]
    assert len(params["env.id"].split(",")) == games and params["network.width"] == "1,3"
    assert params["seed"] == "0,1,2,3,4"


def test_atari_transfer_presets_chain_each_source_to_its_games_mode(tmp_path):
    """A user's two commands, from their own folder, on one game and one variant at a tiny budget: the sources preset
    leaves the run where the modes preset looks for it, and the transfer runs on the game's other mode from it."""
    tiny = ["total_env_steps=300", "agent.learning_starts=200", "agent.replay_capacity=1000",
            "env.max_episode_steps=200", "eval.episodes=1", "progress=false"]
    transfer = ["+sweep=transfer_atari_modes", "sweep/atari_mode=hero", "sweep/transfer=lora", "seed=0", *tiny]

    def train(*args):
        return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)

    early = train(*transfer)
    assert early.returncode == 2 and "init.from_run" in early.stderr and "transfer_sources_atari_dqn/Hero" in \
        early.stderr, early.stderr[-2000:]
    assert not (tmp_path / "runs" / "sweeps" / "transfer_atari_modes_dqn").exists()
    source = train("+sweep=transfer_sources_atari", "env.id=Hero", *tiny)
    assert source.returncode == 0, source.stderr[-2000:]
    assert (tmp_path / "runs/sweeps/transfer_sources_atari_dqn/Hero/summary.json").is_file()
    out = train(*transfer)
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = [p.parent for p in (tmp_path / "runs/sweeps/transfer_atari_modes_dqn").rglob("summary.json")]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["init"]["from_run"].endswith("transfer_sources_atari_dqn/Hero") and summary["env_id"] == "Hero"
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.env.mode == 1 and cfg.adapter.name == "lora" and method_label(cfg) == "dense+lora"


def test_atari_transfer_preset_compares_five_variants_on_four_games():
    cfg = compose_hydra("+sweep=transfer_atari_modes")
    params = cfg.hydra.sweeper.params
    assert params["sweep/transfer"].split(",") == ["scratch", "finetune", "lora", "vera", "read"]
    assert params["sweep/atari_mode"].split(",") == ["breakout", "freeway", "hero", "space_invaders"]
    for game, (env_id, mode) in {"breakout": ("Breakout", 12), "space_invaders": ("SpaceInvaders", 1)}.items():
        for variant, (source, adapter) in {"scratch": ("", "none"), "finetune": ("src", "none"),
                                           "vera": ("src", "vera")}.items():
            c = compose_hydra("+sweep=transfer_atari_modes", f"sweep/atari_mode={game}", f"sweep/transfer={variant}")
            assert (c.env.id, c.env.mode, c.adapter.name) == (env_id, mode, adapter)
            assert c.init.from_run == (source and f"runs/sweeps/transfer_sources_atari_dqn/{env_id}")
