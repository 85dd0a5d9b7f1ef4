"""The suite's headline speed figures, measured side by side in one process and printed as ratios.

    python -m benchmarks.all [--quick] [--device cpu|cuda] [--only acting,minatar,atari,gmp]

- acting: the acting forward (batch 1, inference mode) of a statically pruned network with
  ``pruning.sparse_inference`` against the same masked network run dense: Nature CNN (same and valid padding) at
  90/95/99%, and SAC's actor (batch 1) and critic (batch 256, an update's no-grad forward) at widths 1 and 5, 95%.
- minatar: MinAtar DQN (the shipped defaults: an update every 4 steps, one thread) ms per agent step at widths
  1/3/5, at ε = 0.01 as in most of a run, and what ``+sweep=scaling_law_minatar`` costs in core-hours at 5M steps.
- atari: Pong training SPS over its update bound 4 / t_learn (the bare learner step, timed before and after the
  loop), for DQN and Rainbow, dense and 90% sparse (GMP over these short runs); and a statically 95%-sparse DQN's
  training SPS with ``pruning.sparse_inference`` over without (CSR acting and CSR target forwards).
- gmp: Pong training time at 95% sparsity over dense, and the health probe's share of training time.

Each figure comes from runs that alternate within this process, so drift on a noisy machine hits both sides of a
ratio. ``--quick`` shortens every run (a smoke test of the command, not a measurement). ``--device cuda`` runs
every section on the GPU (training runs get ``device=cuda``), waiting for its kernels wherever a time is taken.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks import each other by name

import atari_sps  # noqa: E402
import pruning_overhead  # noqa: E402
from timing import median_ms, wait  # noqa: E402

import suite  # noqa: E402
import train  # noqa: E402
from pruning.sparse_inference import SparseInference  # noqa: E402
from pruning.sparse_training import SparseTraining  # noqa: E402

SECTIONS = ("acting", "minatar", "atari", "gmp")
MINATAR_WIDTHS = (1, 3, 5)
SCALING_LAW_RUNS_PER_WIDTH = 5 * 2 * 5  # games × sparsities × seeds of +sweep=scaling_law_minatar
SCALING_LAW_STEPS = 5_000_000


class _Log:
    def log(self, metrics, step):
        pass


def pruned_agent(overrides: list[str], obs_shape: tuple[int, ...], n_out: int, sparsity: float, device: str):
    """A real agent, statically pruned (ERK) by the real method, and the sparse-inference callback for it."""
    cfg = suite.compose(["pruning=static", f"sparsity={sparsity}", *overrides])
    agent = suite.AGENTS.get(cfg.agent.name).target(cfg.agent, cfg.network, obs_shape, n_out,
                                                    np.random.default_rng(0), torch.device(device))
    trainer = SimpleNamespace(agent=agent, updates=0, resumed=False, env_step=0, total_updates=1, logger=_Log())
    method = SparseTraining(cfg.pruning, sparsity, log_every_updates=10 ** 9, seed=0)
    method.on_train_start(trainer)
    return agent, SparseInference(method), trainer


def forward_ms(net, x, repeats: int) -> float:
    def once():
        with torch.inference_mode():
            net(x)
        wait(x.device)
    return median_ms(once, repeats, warmup=10)


def acting(quick: bool, device: str) -> list[tuple[str, str, str]]:
    rows, repeats = [], 20 if quick else 200
    cases = [(f"Nature CNN ({pad}) {s:.0%}, batch 1", ["agent=dqn", f"network.padding={pad}"], (4, 84, 84), 6, s,
              lambda a: a.online, lambda: torch.randint(0, 256, (1, 4, 84, 84), dtype=torch.uint8))
             for pad in ("same", "valid") for s in (0.9, 0.95, 0.99)]
    for width in (1, 5):
        sac = ["agent=sac", "env=dmc", f"network.width={width}"]
        cases.append((f"SAC actor width {width} 95%, batch 1", sac, (5,), 1, 0.95, lambda a: a.actor.features,
                      lambda: torch.randn(1, 5)))
        cases.append((f"SAC critic width {width} 95%, batch 256", sac, (5,), 1, 0.95, lambda a: a.critic1.features,
                      lambda: torch.randn(256, 6)))
    for name, overrides, shape, n_out, sparsity, pick, make_x in cases:
        agent, converter, trainer = pruned_agent(overrides, shape, n_out, sparsity, device)
        net, x = pick(agent), make_x().to(device)
        dense = [forward_ms(net, x, repeats)]
        with contextlib.redirect_stdout(io.StringIO()):
            converter.on_train_start(trainer)
        sparse = [forward_ms(net, x, repeats)]
        for layer in converter.layers:  # alternate once more: dense, sparse
            layer.remove()
        dense.append(forward_ms(net, x, repeats))
        for layer in converter.layers:
            layer.install()
        sparse.append(forward_ms(net, x, repeats))
        inside = {id(m) for m in net.modules()}
        n = sum(id(layer.module) in inside for layer in converter.layers)
        d, s = statistics.mean(dense), statistics.mean(sparse)
        rows.append((f"acting forward, sparse / dense: {name}", f"{s / d:.2f}",
                     f"{d:.3f} → {s:.3f} ms, {n} layer{'s' if n != 1 else ''} CSR"))
    return rows


def minatar_ms_per_step(width: int, steps: int, device: str, learning_starts: int = 1000) -> tuple[float, dict]:
    cfg = suite.compose(["agent=dqn", "env=minatar", "env.id=breakout", f"network.width={width}", f"device={device}",
                         f"total_env_steps={learning_starts + steps}", f"agent.learning_starts={learning_starts}",
                         "agent.epsilon_decay_steps=1", f"eval.every_env_steps={10 ** 9}", "eval.episodes=1",
                         "checkpoint.replay=false", "progress=false"])
    clock, phases = atari_sps.Clock(), atari_sps.Phases()
    with tempfile.TemporaryDirectory() as d:
        train.train(cfg, Path(d), callbacks=[clock, phases])
    return 1e3 / clock.sps, phases.per_update_ms()


def minatar(quick: bool, device: str) -> list[tuple[str, str, str]]:
    steps = {1: 2000, 3: 1000, 5: 500} if quick else {1: 20_000, 3: 8_000, 5: 4_000}
    times: dict[int, list[float]] = {w: [] for w in MINATAR_WIDTHS}
    parts: dict[int, dict] = {}
    for _ in range(2):
        for width in MINATAR_WIDTHS:
            ms, parts[width] = minatar_ms_per_step(width, steps[width], device)
            times[width].append(ms)
    rows, total = [], 0.0
    for width in MINATAR_WIDTHS:
        ms = statistics.mean(times[width])
        hours = SCALING_LAW_RUNS_PER_WIDTH * SCALING_LAW_STEPS * ms / 1e3 / 3600
        total += hours
        rows.append((f"MinAtar DQN ms per agent step, width {width}", f"{ms:.3f}",
                     f"runs {', '.join(f'{t:.3f}' for t in times[width])}; {1e3 / ms:,.0f} steps/s; per update "
                     f"(4 steps): {atari_sps.phase_line(parts[width])}"))
    rows.append(("scaling_law_minatar preset (150 runs × 5M steps), core-hours", f"{total:,.0f}",
                 "one core per run, at the widths' ms per step"))
    return rows


def atari(quick: bool, device: str) -> list[tuple[str, str, str]]:
    steps, starts = (400, 300) if quick else (3000, 1000)
    rows = []
    for agent in ("dqn", "rainbow"):
        for sparsity in (0.0, 0.9):
            m = atari_sps.measure(steps, starts, [f"agent={agent}", f"sparsity={sparsity}",
                                                  "pruning.update_freq_updates=100", f"device={device}"])
            t_learn = (m["before"] + m["after"]) / 2
            bound = 4e3 / t_learn
            rows.append((f"Atari Pong {agent} {sparsity:.0%}: loop SPS / update bound", f"{m['sps'] / bound:.3f}",
                         f"{m['sps']:.1f} SPS, learner step {m['before']:.1f}/{m['after']:.1f} ms, bound {bound:.1f}; "
                         f"per update in the loop: {atari_sps.phase_line(m['phases'])}"))
    runs = {si: atari_sps.measure(steps, starts, ["pruning=static", "sparsity=0.95", f"pruning.sparse_inference={si}",
                                                  f"device={device}"])
            for si in ("false", "true")}
    off, on = runs["false"], runs["true"]
    rows.append(("Atari Pong dqn static 95%: training SPS, sparse inference / off", f"{on['sps'] / off['sps']:.3f}",
                 f"{off['sps']:.1f} → {on['sps']:.1f} SPS; per update in the loop, off: "
                 f"{atari_sps.phase_line(off['phases'])}; on: {atari_sps.phase_line(on['phases'])}"))
    return rows


def gmp(quick: bool, device: str) -> list[tuple[str, str, str]]:
    steps, rounds = (400, 1) if quick else (4000, 2)
    dense, sparse, shares, parts = [], [], [], {}
    for _ in range(rounds):
        sps, share = pruning_overhead.run(steps, 0.0, [f"device={device}"], parts)
        dense.append(sps)
        shares.append(share)
        sps, share = pruning_overhead.run(steps, 0.95, [f"device={device}"], parts)
        sparse.append(sps)
        shares.append(share)
    ratio = statistics.mean(dense) / statistics.mean(sparse)
    return [("Atari Pong training time, GMP 95% / dense", f"{ratio:.3f}",
             f"dense {statistics.mean(dense):.1f} SPS, GMP {statistics.mean(sparse):.1f} SPS"),
            ("health probe share of training time", f"{100 * statistics.median(shares):.2f}%",
             "at the default health.every_updates")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs: checks the command, measures nothing")
    parser.add_argument("--device", default="cpu", help="where every section runs (cpu, cuda, cuda:N)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; allowed: {', '.join(SECTIONS)}")
    suite.register_configs()
    start = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}"
          f"{' (quick: not a measurement)' if args.quick else ''}", flush=True)
    rows: list[tuple[str, str, str]] = []
    threads = torch.get_num_threads()
    for section in only:
        torch.set_num_threads(threads)  # a MinAtar run sets one thread for the whole process
        t0 = time.perf_counter()
        new = globals()[section](args.quick, args.device)
        rows += new
        for name, value, detail in new:
            print(f"{name:<62} {value:>8}   {detail}", flush=True)
        print(f"  ({section}: {time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\n{'figure':<62} {'value':>8}")
    for name, value, _ in rows:
        print(f"{name:<62} {value:>8}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
