"""Score normalisation and aggregation, against hand values and rliable itself (pure logic on small tables, and
``plot.py`` on hand-made run folders; the real sweeps that feed them are in test_sweeps.py)."""

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from rliable import library as rly
from rliable import metrics

import plot
from analysis import dopamine_baselines, figures
from analysis.aggregate import aggregate, score_matrices
from analysis.learning_curve import eval_curve
from analysis.normalize import human_normalized, normalize, reference_table
from analysis.sweep_runs import load_runs, method_label


def test_human_normalised_scores_match_dqn_zoos_table_by_hand():
    # Pong: random -20.7, human 14.6; Breakout: random 1.7, human 30.5 (DQN Zoo atari_data.py)
    assert human_normalized("Pong", 0.0) == pytest.approx(20.7 / 35.3)
    assert human_normalized("Pong", 14.6) == pytest.approx(1.0)
    assert human_normalized("Breakout", [1.7, 16.1]) == pytest.approx([0.0, 0.5])
    assert len(reference_table("atari_human_random.csv")) == 57
    with pytest.raises(ValueError, match="no human score for Atari game 'Minecraft'"):
        human_normalized("Minecraft", 1.0)


def test_dmc_returns_are_divided_by_1000_and_classic_control_scaled_from_random_to_solved():
    random = reference_table("classic_random.csv").random
    assert 20 < random["CartPole-v1"] < 25  # a random CartPole policy lasts about 22 steps
    assert random["MountainCar-v0"] == -200.0  # it never reaches the flag in 200 steps
    runs = runs_table([
        ("dmc", "sac", "mlp", "walker-walk", 1.0, 0.0, 0, 500.0),
        ("dmc", "sac", "mlp", "walker-walk", 1.0, 0.0, 1, 1000.0),
        ("classic", "dqn", "mlp", "CartPole-v1", 1.0, 0.0, 0, 475.0),  # Gymnasium's reward_threshold
        ("classic", "dqn", "mlp", "CartPole-v1", 1.0, 0.0, 1, random["CartPole-v1"]),
        ("classic", "dqn", "mlp", "Acrobot-v1", 1.0, 0.0, 0, -100.0),
        ("classic", "sac", "mlp", "Pendulum-v1", 1.0, 0.0, 0, 0.0),  # no threshold: 0, the best return
        ("classic", "sac", "mlp", "Pendulum-v1", 1.0, 0.0, 1, -200.0),
    ])
    pendulum = (-200.0 - random["Pendulum-v1"]) / (0.0 - random["Pendulum-v1"])
    assert normalize(runs).tolist() == pytest.approx([0.5, 1.0, 1.0, 0.0, 1.0, 1.0, pendulum])
    with pytest.raises(ValueError, match="env=procgen has no normalisation rule"):
        normalize(runs.assign(env="procgen"))


def runs_table(rows):
    table = pd.DataFrame(rows, columns=["env", "agent", "network", "game", "width", "sparsity", "seed", "score"])
    table["method"] = np.where(table.sparsity == 0, "dense", "gmp")
    return table


def test_minatar_scores_are_normalised_by_random_and_the_sweeps_dense_smallest_width():
    random = reference_table("minatar_random.csv").random
    runs = runs_table([
        ("minatar", "dqn", "minatar_cnn", "breakout", 1.0, 0.0, 0, 10.0),
        ("minatar", "dqn", "minatar_cnn", "breakout", 1.0, 0.0, 1, 14.0),  # baseline: mean 12
        ("minatar", "dqn", "minatar_cnn", "breakout", 3.0, 0.0, 0, 20.0),  # wider dense: not the baseline
        ("minatar", "dqn", "minatar_cnn", "breakout", 3.0, 0.95, 0, 30.0),
        ("minatar", "dqn", "minatar_cnn", "freeway", 1.0, 0.0, 0, 0.5),  # baseline barely above random: floor 1
        ("minatar", "dqn", "minatar_cnn", "freeway", 3.0, 0.95, 0, 2.0),
    ])
    n = normalize(runs)
    b = random["breakout"]
    assert n[:4].tolist() == pytest.approx([(s - b) / (12 - b) for s in (10, 14, 20, 30)])
    assert n[4:].tolist() == pytest.approx([0.5 - random["freeway"], 2.0 - random["freeway"]])
    with pytest.raises(ValueError, match="dqn on freeway has no complete dense"):
        normalize(runs[~((runs.game == "freeway") & (runs.sparsity == 0))])


def test_mujoco_scores_are_normalised_by_the_suites_random_policy_and_the_sweeps_dense_smallest_width():
    """MinAtar's rule on MuJoCo's raw returns: HalfCheetah's random policy scores about −285 (100 episodes)."""
    random = reference_table("mujoco_random.csv").random
    assert -300 < random["HalfCheetah-v5"] < -270 and len(random) == 11
    runs = runs_table([
        ("mujoco", "sac", "mlp", "HalfCheetah-v5", 1.0, 0.0, 0, 4000.0),
        ("mujoco", "sac", "mlp", "HalfCheetah-v5", 1.0, 0.0, 1, 6000.0),  # baseline: mean 5,000
        ("mujoco", "sac", "mlp", "HalfCheetah-v5", 5.0, 0.9, 0, 7000.0),
        ("mujoco", "sac", "mlp", "HalfCheetah-v5", 5.0, 0.9, 1, random["HalfCheetah-v5"]),
    ])
    r = random["HalfCheetah-v5"]
    assert normalize(runs).tolist() == pytest.approx([(s - r) / (5000 - r) for s in (4000, 6000, 7000, r)])
    assert normalize(runs).iloc[3] == 0.0
    with pytest.raises(ValueError, match="no random score for MuJoCo id 'HalfCheetah-v4'; the table has: Ant-v5,"):
        normalize(runs.assign(game="HalfCheetah-v4"))
    with pytest.raises(ValueError, match="MuJoCo scores are normalised by the sweep's dense baseline"):
        normalize(runs[runs.sparsity > 0])
    assert plot.YLABEL["mujoco"] == "normalised score (0 = random, 1 = smallest dense)"


def test_dopamines_baseline_json_is_read_as_runs_in_file_order_with_iterations_as_agent_steps(tmp_path):
    """Two runs of two iterations, in Dopamine's layout (a run's block, then the next; iterations as int or float)."""
    rows = [{"Iteration": i, "Value": v, "Agent": "SAC"} for i, v in ((0, -1.0), (10, 5.0), (0.0, -3.0), (10.0, 7.0))]
    (tmp_path / "task.json").write_text(json.dumps(rows))
    long = dopamine_baselines.read_json(tmp_path / "task.json")
    assert long.run.tolist() == [1, 1, 2, 2] and long.agent_steps.tolist() == [1000, 11000, 1000, 11000]
    table = dopamine_baselines.wide(long)
    assert table.columns.tolist() == ["iteration", "agent_steps", "run_1", "run_2"]
    assert table.run_2.tolist() == [-3.0, 7.0]
    stats = dopamine_baselines.across_runs(table)
    assert stats["mean"].tolist() == [-2.0, 6.0] and stats["std"].tolist() == pytest.approx([2 ** 0.5] * 2)
    assert stats.ci_high[0] - stats["mean"][0] == pytest.approx(12.706 * 1.0, rel=1e-4)  # t(1) = 12.706, σ/√2 = 1


def test_dopamines_halfcheetah_table_holds_the_published_values():
    """analysis/data/dopamine_sac_halfcheetah.csv: google/dopamine baselines/mujoco/data/halfcheetah.json, 5 runs, read
    by hand at iterations 90 and 100 (agent steps 91k and 101k). Iteration 0 is the uniform warm-up's first episode:
    its mean is the suite's own random-policy mean on HalfCheetah-v5 within noise."""
    table = dopamine_baselines.load("halfcheetah")
    assert len(table) == 101 and table.iteration.tolist() == list(range(0, 1001, 10))
    stats = dopamine_baselines.across_runs(table).set_index("iteration")
    assert stats.loc[100, "mean"] == pytest.approx((4589.0058 + 5605.4177 + 5793.8319 + 5353.2665 + 6007.0465) / 5)
    assert stats.loc[100, "agent_steps"] == 101_000 and stats.loc[100, "runs"] == 5
    assert stats.loc[90, "mean"] == pytest.approx(4925.93, abs=0.01)
    random = reference_table("mujoco_random.csv").random["HalfCheetah-v5"]
    assert abs(stats.loc[0, "mean"] - random) < 30  # -282.5 (5 episodes, std 59) against -285.0 (100 episodes)


def test_iqm_and_cis_are_rliables_on_the_same_matrix():
    rows = [("atari", "dqn", "impala", game, 1.0, 0.0, seed, 0.0) for seed in range(4) for game in ("A", "B")]
    runs = runs_table(rows)
    runs["normalized"] = np.arange(1, 9, dtype=float)  # seeds x games = [[1, 2], [3, 4], [5, 6], [7, 8]]
    matrices, info, left_out = score_matrices(runs)
    (name, matrix), = matrices.items()
    assert matrix.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]] and left_out == []
    summary = aggregate(matrices, info, reps=2000, seed=3)
    assert summary.iqm[0] == pytest.approx(4.5)  # the mean of the middle half, 3..6, by hand
    np.random.seed(3)  # rliable 1.2.0 resamples from NumPy's global generator, ignoring random_state
    point, ci = rly.get_interval_estimates({name: matrix}, lambda m: np.array([metrics.aggregate_iqm(m)]), reps=2000)
    assert summary.iqm[0] == point[name][0]
    assert (summary.ci_low[0], summary.ci_high[0]) == (ci[name][0, 0], ci[name][1, 0])
    assert summary.ci_low[0] < 4.5 < summary.ci_high[0]
    assert (summary.runs[0], summary.seeds[0], summary.games[0]) == (8, 4, 2)


def test_a_seed_missing_on_one_game_is_left_out_and_listed():
    runs = runs_table([("atari", "dqn", "impala", g, 1.0, 0.0, s, 0.0) for s in range(3) for g in ("A", "B")])
    runs["normalized"] = 1.0
    runs.loc[(runs.seed == 2) & (runs.game == "B"), "normalized"] = np.nan
    matrices, info, left_out = score_matrices(runs)
    assert next(iter(matrices.values())).shape == (2, 2)
    assert left_out == ["dqn impala width=1 sparsity=0 seed=2: left out, no complete run on B"]


def test_the_bootstrap_is_reproducible_from_its_seed():
    """rliable ignores the random_state it is given; the seed must still fix the CIs (and leave NumPy's global
    generator as it was)."""
    matrices = {"c": np.random.default_rng(0).random((5, 3))}
    info = {"c": dict(agent="dqn", network="mlp", width=1.0, sparsity=0.0, method="dense", runs=15, seeds=5, games=3)}
    before = np.random.get_state()[1].copy()
    a, b, c = (aggregate(matrices, info, reps=500, seed=s) for s in (7, 7, 8))
    assert a.equals(b) and not a.equals(c)
    assert (np.random.get_state()[1] == before).all()


def test_method_label_names_dense_or_the_pruning_method_and_what_was_added():
    old = OmegaConf.create({"agent": {"name": "dqn"}, "sparsity": 0.95, "seed": 0})  # a run folder from before methods
    assert method_label(old) == "gmp"
    assert method_label(OmegaConf.merge(old, {"sparsity": 0.0})) == "dense"
    new = OmegaConf.merge(old, {"pruning": {"name": "rigl"}, "redo": {"enabled": False}, "reset": {"enabled": False},
                                "agent": {"weight_decay": 0.0}})
    assert method_label(new) == "rigl"
    assert method_label(OmegaConf.merge(new, {"sparsity": 0.0})) == "dense"  # dense whatever the pruning method
    assert method_label(OmegaConf.merge(new, {"sparsity": 0.0, "redo": {"enabled": True}})) == "dense+redo"
    assert method_label(OmegaConf.merge(new, {"pruning": {"name": "gmp"}, "agent": {"weight_decay": 1e-4}})) == "gmp+wd"
    every = {"redo": {"enabled": True}, "reset": {"enabled": True}, "agent": {"weight_decay": 0.1}}
    assert method_label(OmegaConf.merge(new, every)) == "rigl+redo+reset+wd"
    scratch = OmegaConf.merge(new, {"sparsity": 0.0, "init": {"from_run": ""}, "adapter": {"name": "none"}})
    assert method_label(scratch) == "dense"
    assert method_label(OmegaConf.merge(scratch, {"init": {"from_run": "runs/src"}})) == "dense+finetune"
    assert method_label(OmegaConf.merge(scratch, {"init": {"from_run": "runs/src"}, "adapter": {"name": "lora"}})) \
        == "dense+lora"


def test_the_minatar_baseline_is_plain_dense_not_dense_with_redo():
    runs = runs_table([("minatar", "dqn", "minatar_cnn", "breakout", 1.0, 0.0, s, 12.0) for s in (0, 1)])
    redo = runs.assign(score=100.0, method="dense+redo")
    n = normalize(pd.concat([runs, redo], ignore_index=True))
    assert n[:2].tolist() == pytest.approx([1.0, 1.0])


HUMAN_RANDOM = {"Pong": (14.6, -20.7), "Breakout": (30.5, 1.7)}  # DQN Zoo's table, as above
METHODS = {  # method: (extra config, sparsity, human-normalised scores of (seed, game) in RUNS order)
    "dense": ({}, 0.0, [2.0, 0.1, 0.5, 0.7]),  # no new key at all: a run folder from before methods
    "dense+redo": ({"pruning": {"name": "gmp"}, "redo": {"enabled": True}}, 0.0, [0.2, 3.0, 1.0, 0.8]),
    "gmp": ({"pruning": {"name": "gmp"}, "redo": {"enabled": False}, "agent": {"weight_decay": 0.0}}, 0.95,
            [0.0, 0.9, 0.2, 0.4]),
    "rigl": ({"pruning": {"name": "rigl"}}, 0.95, [0.5, -0.1, 1.5, 0.3]),
}
RUNS = [(seed, game) for seed in (0, 1) for game in ("Pong", "Breakout")]


def fake_sweep(root, methods):
    """Run folders as a sweep leaves them: the resolved config, the summary and the evaluations in metrics.jsonl."""
    for method in methods:
        extra, sparsity, normalised = METHODS[method]
        for (seed, game), n in zip(RUNS, normalised, strict=True):
            human, random = HUMAN_RANDOM[game]
            score = random + n * (human - random)
            run = root / method / f"{game}_{seed}"
            run.mkdir(parents=True)
            cfg = {"agent": {"name": "dqn"}, "env": {"name": "atari", "id": game},
                   "network": {"name": "impala", "width": 1.0}, "sparsity": sparsity, "seed": seed}
            OmegaConf.save(OmegaConf.merge(cfg, extra), run / "config.yaml")
            (run / "summary.json").write_text(json.dumps({"final_eval_return": score}))
            evals = [{"step": 100, "eval/episodic_return": random}, {"step": 200, "eval/episodic_return": score}]
            (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    return root


@pytest.fixture
def drawn(monkeypatch):
    """Every figure plot.py saves, by file name, before it is closed."""
    figs, save = {}, figures.save

    def keep(fig, out):
        figs[out.name] = fig
        return save(fig, out)

    monkeypatch.setattr(figures, "save", keep)
    return figs


def test_plot_puts_methods_side_by_side_with_iqms_by_hand(tmp_path, capsys, drawn):
    sweep = fake_sweep(tmp_path / "sweep", METHODS)
    runs = load_runs(sweep)
    assert runs.groupby("method").run.count().to_dict() == {m: 4 for m in METHODS}
    assert (runs.run.str.split("/").str[0] == runs.method).all()
    assert plot.main([str(sweep), "--out", str(tmp_path / "figs"), "--reps", "200"]) == 0
    assert all((tmp_path / "figs" / f"methods_iqm.{ext}").stat().st_size > 0 for ext in ("png", "pdf"))
    summary = pd.read_csv(tmp_path / "figs" / "summary.csv").set_index("method")
    by_hand = {"dense": (0.5 + 0.7) / 2, "dense+redo": (0.8 + 1.0) / 2, "gmp": (0.2 + 0.4) / 2, "rigl": (0.3 + 0.5) / 2}
    assert summary.iqm.to_dict() == pytest.approx(by_hand)  # IQM of 4 scores: the mean of the middle 2
    assert (summary.ci_low <= summary.iqm).all() and (summary.iqm <= summary.ci_high).all()
    assert summary.ci_low.lt(summary.ci_high).all()
    assert summary.sparsity.to_dict() == {"dense": 0.0, "dense+redo": 0.0, "gmp": 0.95, "rigl": 0.95}
    assert (summary.runs == 4).all() and (summary.games == 2).all()
    bars = drawn["methods_iqm"].axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["dense", "dense+redo", "gmp", "rigl"]
    assert [p.get_height() for p in bars.patches] == pytest.approx([by_hand[m] for m in by_hand])
    legend = [t.get_text() for t in drawn["scaling_law"].axes[0].get_legend().get_texts()]
    assert legend == ["dense", "dense+redo", "95% sparse (GMP)", "95% sparse (RigL)"]
    printed = capsys.readouterr().out
    assert "dense+redo" in printed and "rigl" in printed and "methods_iqm.png" in printed


def test_a_plain_gmp_sweep_keeps_its_lines_and_one_method_draws_no_bars(tmp_path, drawn):
    sweep = fake_sweep(tmp_path / "sweep", ["dense", "gmp"])
    assert plot.main([str(sweep), "--reps", "100"]) == 0
    legend = [t.get_text() for t in drawn["scaling_law"].axes[0].get_legend().get_texts()]
    assert legend == ["dense", "95% sparse (GMP)"]  # as before methods were compared
    assert pd.read_csv(sweep / "summary.csv").method.tolist() == ["dense", "gmp"]
    assert (sweep / "methods_iqm.png").is_file()  # dense and GMP are two methods
    dense = fake_sweep(tmp_path / "dense", ["dense"])
    assert plot.main([str(dense), "--reps", "100"]) == 0
    assert (dense / "scaling_law.png").is_file() and not (dense / "methods_iqm.png").exists()


def test_a_packed_study_reads_as_its_raw_runs_and_the_table_is_by_hand(tmp_path):
    """``analysis.pack`` gzips a finished run's metrics (the same bytes when packed twice) and leaves an unfinished
    run alone; the learning curves and ``analysis.study``'s table read the packed file as the raw one."""
    from analysis import pack, study

    root = tmp_path / "study"
    for seed, (final, walls) in enumerate([(4.0, 600.0), (6.0, 900.0)]):
        run = root / f"seed={seed}"
        run.mkdir(parents=True)
        cfg = {"agent": {"name": "dqn"}, "env": {"name": "minatar", "id": "breakout"},
               "network": {"name": "minatar_cnn", "width": 1.0}, "sparsity": 0.0, "seed": seed}
        OmegaConf.save(cfg, run / "config.yaml")
        (run / "summary.json").write_text(json.dumps({"final_eval_return": final, "wall_time_s": walls}))
        rows = [{"step": s, "charts/episodic_return": float(s % 7)} for s in range(1, 151)]
        rows += [{"step": 100, "eval/episodic_return": 1.0}, {"step": 200, "eval/episodic_return": final}]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    unfinished = root / "seed=2"
    unfinished.mkdir()
    OmegaConf.save({**cfg, "seed": 2}, unfinished / "config.yaml")
    (unfinished / "metrics.jsonl").write_text("")
    pack.main([str(root)])
    first = (root / "seed=0" / "metrics.jsonl.gz").read_bytes()
    assert not (unfinished / "metrics.jsonl.gz").exists()
    raw_curve = eval_curve(root / "seed=0")
    for run in ("seed=0", "seed=1"):
        (root / run / "metrics.jsonl").unlink()  # as a clone of the repository has them
    assert eval_curve(root / "seed=0") == raw_curve
    (root / "seed=0" / "metrics.jsonl.gz").unlink()
    (root / "seed=0" / "metrics.jsonl").write_text(gzip.decompress(first).decode())
    pack.main([str(root)])
    assert (root / "seed=0" / "metrics.jsonl.gz").read_bytes() == first  # no timestamp in the gzip header
    by_hand = sum(s % 7 for s in range(51, 151)) / 100  # the last 100 of 150 training episodes
    assert study.training_return(root / "seed=1") == pytest.approx(by_hand)
    study.main([str(root), "--out", str(tmp_path / "out")])
    table = (tmp_path / "out" / "results.md").read_text()
    # the last 20% of 200 steps holds only the final evaluation; both seeds logged the same training episodes
    assert f"| breakout | 1 | 0 | 2 | 5.00 ± 1.41 | 5.00 ± 1.41 | {by_hand:.2f} ± 0.00 | 12.5 | 0.42 |" in table
    assert (tmp_path / "out" / "learning_curves_per_game.png").stat().st_size > 0


@pytest.mark.parametrize("speed", ["charts/SPS_cumulative", "charts/updates_per_second_cumulative"])
def test_a_resumed_runs_wall_time_adds_its_earlier_processes(tmp_path, speed):
    """summary.json times only the last process; each earlier one is its steps over its last cumulative speed
    (agent steps per second online, updates per second offline)."""
    from analysis import study

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"wall_time_s": 50.0}))
    (run / "resumes.jsonl").write_text('{"env_step": 3000}\n{"env_step": 5000}\n')
    rows = [{"step": step, speed: sps} for step, sps in [(1000, 999.0), (3000, 100.0), (4000, 1.0), (5000, 50.0),
                                                          (6000, 7.0)]]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert study.wall_time(run) == pytest.approx(50.0 + 3000 / 100.0 + 2000 / 50.0)
    (run / "resumes.jsonl").unlink()
    assert study.wall_time(run) == 50.0


def test_plot_reads_the_committed_study():
    """The study's committed folder (light files only) is a sweep for plot.py."""
    study = Path(__file__).resolve().parent.parent / "results" / "minatar_dqn_1m"
    runs = load_runs(study)
    done = runs[runs.status == "complete"]
    assert len(done) >= 2
    for run in done.run:
        steps, means, _ = eval_curve(study / run)
        assert steps[-1] == 1_000_000 and len(steps) == 10
        assert means[-1] == json.loads((study / run / "summary.json").read_text())["final_eval_return"]


def test_the_committed_offline_demonstration_reads_on_gradient_updates(tmp_path, monkeypatch):
    """The offline demonstration's committed runs (docs/offline.md) are an offline study: ten evaluations to 100,000
    gradient updates, curves drawn against updates, and a table without the training-return column (no episodes)."""
    from analysis import study

    folder = Path(__file__).resolve().parent.parent / "results" / "minatar_offline_cql"
    runs = load_runs(folder)
    done = runs[runs.status == "complete"]
    assert len(done) >= 4 and done.offline.all()
    for run in done.run:
        steps, means, _ = eval_curve(folder / run)
        assert steps[-1] == 100_000 and len(steps) == 10
        assert means[-1] == json.loads((folder / run / "summary.json").read_text())["final_eval_return"]
    figs = {}
    monkeypatch.setattr(study, "save", lambda fig, out: figs.setdefault(out.name, fig) and [])
    study.main([str(folder), "--out", str(tmp_path)])
    assert {ax.get_xlabel() for ax in figs["learning_curves_per_game"].axes} == {"gradient updates"}
    header, rule = (tmp_path / "results.md").read_text().splitlines()[:2]
    assert "training return" not in header and rule == "|---" * 8 + "|"


def made_up_study(root, final=None):
    """A MinAtar study of made-up run folders: breakout and asterix, widths 1 and 3, dense and GMP 95%, seeds 0-2.
    Evaluations every 100 steps to 1,000 read ``base`` then ``base + 10`` from 800 on (the last 20%: 3 of them), the
    final one ``final(base)``; 150 training episodes of return ``base``; health rows where GMP's dormant fraction
    is lower than dense's."""
    base = {("breakout", 1, 0.0): 10.0, ("breakout", 1, 0.95): 8.0, ("breakout", 3, 0.0): 12.0,
            ("breakout", 3, 0.95): 16.0, ("asterix", 1, 0.0): 20.0, ("asterix", 1, 0.95): 18.0,
            ("asterix", 3, 0.0): 22.0, ("asterix", 3, 0.95): 30.0}
    for (game, width, sparsity), b in base.items():
        for seed in range(3):
            score = b + seed  # seeds 0-2 spread the cell by one point each
            run = root / f"{game}_w{width}_s{sparsity}_seed{seed}"
            run.mkdir(parents=True)
            cfg = {"agent": {"name": "dqn"}, "env": {"name": "minatar", "id": game},
                   "network": {"name": "minatar_cnn", "width": float(width)}, "sparsity": sparsity, "seed": seed}
            OmegaConf.save(cfg, run / "config.yaml")
            last = final(score) if final else score + 10
            (run / "summary.json").write_text(json.dumps({"final_eval_return": last, "wall_time_s": 60.0}))
            rows = [{"step": s, "charts/episodic_return": score} for s in range(1, 151)]
            rows += [{"step": s, "eval/episodic_return": score + (10 if s >= 800 else 0)}
                     for s in range(100, 1000, 100)]
            rows += [{"step": 1000, "eval/episodic_return": last}]
            dormant = 0.2 if sparsity else 0.4
            rows += [{"step": s, "dormant/online/tau_0.1": dormant + 0.01 * seed, "health/online/srank": 50.0 + seed,
                      "health/online/param_norm": 10.0 - 5 * sparsity, "health/online/q_var": 1.0 + seed}
                     for s in range(100, 1001, 100)]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, base


def test_plot_prints_three_scores_their_iqms_the_permutation_p_and_the_interaction(tmp_path, capsys):
    study, base = made_up_study(tmp_path / "study")
    assert plot.main([str(study), "--reps", "500"]) == 0
    printed = capsys.readouterr().out
    summary = pd.read_csv(study / "summary.csv").set_index(["width", "sparsity"])
    random = reference_table("minatar_random.csv").random

    def normalised(score_of):  # the late score's baseline is the dense width-1 late mean, as the final score's
        scale = {g: max(np.mean([score_of(base[(g, 1, 0.0)] + s) for s in range(3)]) - random[g], 1.0)
                 for g in ("breakout", "asterix")}
        return {(w, sp): metrics.aggregate_iqm(np.array([(score_of(base[(g, w, sp)] + s) - random[g]) / scale[g]
                                                         for s in range(3) for g in ("breakout", "asterix")]))
                for (_, w, sp) in base}

    late = normalised(lambda s: (2 * (s + 10) + (s + 10)) / 3)  # 800 and 900 at s + 10, the final one too
    train = normalised(lambda s: s)
    for key, iqm in late.items():
        assert summary.loc[key, "iqm_late"] == pytest.approx(iqm)
        assert summary.loc[key, "iqm_train"] == pytest.approx(train[key])
    assert summary.loc[(3, 0.95), "p_value_final"] > 0 and summary.loc[(1, 0.95), "p_value_late"] < 1
    assert np.isnan(summary.loc[(1, 0.0), "p_value_final"])  # dense is what the others are compared with
    by_hand = (late[(3, 0.95)] - late[(3, 0.0)]) - (late[(1, 0.95)] - late[(1, 0.0)])
    assert summary.loc[(3, 0.95), "interaction_late"] == pytest.approx(by_hand)
    assert np.isnan(summary.loc[(1, 0.95), "interaction_late"])  # width 1 is where the interaction starts
    assert (summary.runs == 6).all()
    for key in ("final", "late", "train"):
        assert f"\n{key}: " in printed
    assert "width 3 gmp - dense" in printed and "interaction from width 1" in printed and "permutation p" in printed


def test_the_mechanism_figure_says_whether_the_papers_direction_shows(tmp_path):
    from analysis import mechanism

    study, _ = made_up_study(tmp_path / "study")
    written, verdicts = mechanism.mechanism(study, tmp_path / "out", reps=200)
    assert all(p.stat().st_size > 0 for p in written)
    shows = verdicts.set_index(["metric", "width"]).shows
    assert shows[("dormant/{net}/tau_0.1", 1.0)] and shows[("dormant/{net}/tau_0.1", 3.0)]  # 0.2 < 0.4: lower
    assert shows[("health/{net}/param_norm", 3.0)]
    assert not shows[("health/{net}/srank", 1.0)]  # equal is not higher
    assert not shows[("health/{net}/q_var", 3.0)]
    assert verdicts.set_index(["metric", "width"]).loc[("dormant/{net}/tau_0.1", 1.0), "dense"] == pytest.approx(0.41)
    assert "| dormant fraction, τ = 0.1 | 1 | 0.41 | 0.21 | lower | yes |" in mechanism.markdown(verdicts)


def test_a_summary_that_counts_every_process_is_not_added_to_again(tmp_path):
    """Run folders written since the loop kept each process's time: summary.json's wall time is the total."""
    from analysis import study

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"wall_time_s": 80.0, "wall_time_s_per_process": [30.0, 50.0]}))
    (run / "resumes.jsonl").write_text('{"env_step": 3000}\n')
    (run / "metrics.jsonl").write_text(json.dumps({"step": 3000, "charts/SPS_cumulative": 100.0}) + "\n")
    assert study.wall_time(run) == 80.0
