"""Read a sweep folder into one table: a row per run folder with its configuration, how it ended, and its score.

A run's score is its final evaluation return (``summary.json``'s ``final_eval_return``: the mean over
``eval.episodes`` episodes at ``eval_epsilon`` after the last agent step). Runs that failed or did not finish keep
their row, with the error or ``unfinished``, so that nothing is dropped without being listed. A run's ``method``
(``method_label``) names what was compared: dense or the pruning method, and what was added to it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from analysis.learning_curve import eval_curve
from core.run_files import CONFIG, SUMMARY, failure, run_dirs, status

COLUMNS = ["run", "status", "error", "agent", "env", "game", "network", "width", "sparsity", "method", "seed",
           "offline", "score"]


def _config(run_dir: Path):
    """The config this folder's job was launched with (Hydra's copy), else the suite's own."""
    for path in (run_dir / ".hydra" / CONFIG, run_dir / CONFIG):
        if path.is_file():
            return OmegaConf.load(path)
    return None


def method_label(cfg) -> str:
    """What a run compared, e.g. "dense", "rigl" or "gmp+wd": dense or the pruning method, then "+redo", "+reset",
    "+wd" for what was added, and for a run started from another ("init.from_run") "+finetune" (full fine-tuning) or
    "+lora", "+vera", "+read"; a run from scratch has none. A key that older run folders lack has its default (GMP,
    nothing added, from scratch), so their runs keep the method they ran."""
    name = "dense" if float(cfg.sparsity) == 0 else str(OmegaConf.select(cfg, "pruning.name") or "gmp")
    added = {"redo": bool(OmegaConf.select(cfg, "redo.enabled")), "reset": bool(OmegaConf.select(cfg, "reset.enabled")),
             "wd": float(OmegaConf.select(cfg, "agent.weight_decay") or 0) > 0}
    labels = [name, *(key for key, on in added.items() if on)]
    if OmegaConf.select(cfg, "init.from_run"):
        adapter = str(OmegaConf.select(cfg, "adapter.name") or "none")
        labels.append("finetune" if adapter == "none" else adapter)
    return "+".join(labels)


def load_runs(sweep_dir: Path) -> pd.DataFrame:
    rows = []
    for run_dir in run_dirs(sweep_dir):
        cfg, state = _config(run_dir), status(run_dir)
        row = {"run": str(run_dir.relative_to(sweep_dir)), "status": state, "error": failure(run_dir)}
        if cfg is not None and OmegaConf.select(cfg, "agent.name") is not None:
            row.update(agent=cfg.agent.name, env=cfg.env.name, game=str(cfg.env.id), network=cfg.network.name,
                       width=float(cfg.network.width), sparsity=float(cfg.sparsity), method=method_label(cfg),
                       seed=int(cfg.seed), offline=bool(OmegaConf.select(cfg, "offline.dataset", default="")))
        if state == "complete":
            row["score"] = float(json.loads((run_dir / SUMMARY).read_text())["final_eval_return"])
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def missing_runs(sweep_dir: Path) -> list[str]:
    """The jobs of the sweep's last launch (Hydra's ``multirun.yaml``: its sweeper params and command line) that
    have no run folder, e.g. jobs a cluster never started; each as its space-separated overrides."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return []
    hydra_cfg = OmegaConf.load(path).hydra
    params = [f"{k}={v}" for k, v in (OmegaConf.select(hydra_cfg, "sweeper.params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *hydra_cfg.overrides.task])
    expected = BasicSweeper.split_arguments(parsed, None)[0]
    found = set()
    for job in sweep_dir.rglob(".hydra/overrides.yaml"):
        found.add(frozenset(OmegaConf.to_container(OmegaConf.load(job))))
    return [" ".join(job) for job in expected if frozenset(job) not in found]


def clock(offline: bool) -> str:
    """What a run's steps count: an offline run's rows are at gradient updates."""
    return "gradient updates" if offline else "agent steps"


def learning_curve(sweep_dir: Path, run: str) -> pd.Series:
    """Evaluation return indexed by agent step (an offline run's: by gradient update)."""
    steps, means, _ = eval_curve(sweep_dir / run)
    return pd.Series(means, index=steps, dtype=float)
