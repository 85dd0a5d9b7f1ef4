"""Sparse compute (``pruning.sparse_compute``) against the masked-dense path, side by side in one process.

Sections (``--only layers,learner,atari,runs``):

- ``layers``: one linear layer's training arithmetic at batch 32 (forward, input gradient, weight gradient at the
  kept entries) and its no-grad forwards at batch 1 and 32, CSR over dense, for the layer shapes of MinAtar's,
  the Nature CNN's and SAC's networks at 80-99% sparsity: the measurements behind ``auto``'s fixed rule; then three
  convolutions' no-grad forward at batch 32 as im2col + CSR, the figure that keeps convolutions dense.
- ``learner``: a learner update (replay sample + update) of MinAtar DQN under ``pruning=static sparsity=0.95`` at
  widths 1, 3 and 5, the switch ``true`` (and ``auto``) over ``false``, on real replay; alternating blocks.
- ``atari``: the same for Atari DQN with the Nature CNN (``network.padding=same``).
- ``runs``: whole ``train.py`` runs, MinAtar Breakout DQN width 5 at 95%, static and GMP, the switch on over off.
  Each run's loop time (``summary.json``'s ``wall_time_s``), its learner memory (``learner_bytes``) and its median
  update. ``--run-steps`` sets their length (the issue's figure: 100,000).

``python benchmarks/sparse_training.py [--only ...] [--threads 1] [--run-steps 100000]`` (run it alone on the machine).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import suite  # noqa: E402
from benchmarks.timing import median_ms, wait  # noqa: E402
from pruning.registry import METHODS  # noqa: E402
from pruning.sparse_compute import Pattern, SparseCompute, _SparseLinearFunction, sparse_matmul  # noqa: E402

suite.register_configs()

SHAPES = {"MinAtar fc1 w1": (128, 1024), "MinAtar fc1 w3": (384, 3072), "MinAtar fc1 w5": (640, 5120),
          "Nature fc1 same": (512, 7744), "SAC fc2 w1": (256, 256), "SAC fc2 w5": (1280, 1280)}
SPARSITIES = (0.8, 0.9, 0.95, 0.99)


class Log:
    def log(self, metrics, step):
        pass


def layer_ratios(out_f: int, in_f: int, sparsity: float, g: torch.Generator, repeats: int) -> list[float]:
    """CSR over dense: training arithmetic at batch 32, no-grad forward at batch 32 and at batch 1."""
    w = torch.randn(out_f, in_f, generator=g)
    w[torch.rand(out_f, in_f, generator=g) < sparsity] = 0
    pattern = Pattern(w != 0)
    values = w.reshape(-1)[pattern.index].clone().requires_grad_(True)
    wd = w.clone().requires_grad_(True)
    x32, x1 = torch.randn(32, in_f, generator=g, requires_grad=True), torch.randn(1, in_f, generator=g)
    grad = torch.randn(32, out_f, generator=g)
    layer = SimpleNamespace(pattern=pattern, dense_grad=False)
    ratios = [median_ms(lambda: _SparseLinearFunction.apply(x32, values, None, layer).backward(grad), repeats, 5) /
              median_ms(lambda: torch.nn.functional.linear(x32, wd).backward(grad), repeats, 5)]
    with torch.no_grad():
        for x in (x32.detach(), x1):
            ratios.append(median_ms(lambda x=x: sparse_matmul(pattern.matrix(values.detach()), x, None), repeats, 5) /
                          median_ms(lambda x=x: torch.nn.functional.linear(x, w), repeats, 5))
    return ratios


CONVS = {"Nature conv2 (32→64, 4×4/2, 20×20 in)": (32, 64, 4, 2, 20), "Nature conv3 (64→64, 3×3/1, 9×9 in)":
         (64, 64, 3, 1, 9), "MinAtar conv1 w5 (4→80, 3×3/1, 10×10 in)": (4, 80, 3, 1, 10)}


def conv_ratio(c_in: int, c_out: int, k: int, stride: int, size: int, sparsity: float, g: torch.Generator,
               repeats: int) -> float:
    """A convolution's no-grad forward at batch 32 as im2col (``unfold``) + CSR product, over the dense kernel."""
    w = torch.randn(c_out, c_in, k, k, generator=g)
    w[torch.rand(w.shape, generator=g) < sparsity] = 0
    x = torch.randn(32, c_in, size, size, generator=g)
    flat = w.reshape(c_out, -1)
    pattern = Pattern(flat != 0)
    values = flat.reshape(-1)[pattern.index].clone()
    side = (size - k) // stride + 1

    def sparse():
        cols = torch.nn.functional.unfold(x, k, stride=stride)  # (32, c_in·k·k, side²)
        cols = cols.transpose(0, 1).reshape(cols.shape[1], -1)
        return torch.mm(pattern.matrix(values), cols).reshape(c_out, 32, side, side).transpose(0, 1)

    with torch.no_grad():
        return median_ms(sparse, repeats, 5) / median_ms(lambda: torch.nn.functional.conv2d(x, w, stride=stride),
                                                        repeats, 5)


def layers(repeats: int) -> None:
    print("layer (out×in) | sparsity | train fwd+2 grads b32 | no-grad fwd b32 | no-grad fwd b1   (CSR / dense)")
    g = torch.Generator().manual_seed(0)
    for name, (out_f, in_f) in SHAPES.items():
        for s in SPARSITIES:
            r = layer_ratios(out_f, in_f, s, g, repeats)
            print(f"{name} ({out_f}×{in_f}) | {s:.2f} | {r[0]:.2f} | {r[1]:.2f} | {r[2]:.2f}", flush=True)
    print("convolution, no-grad forward at batch 32, im2col + CSR over dense | 90% | 95% | 99%")
    for name, spec in CONVS.items():
        print(f"{name} | " + " | ".join(f"{conv_ratio(*spec, s, g, repeats):.2f}" for s in (0.9, 0.95, 0.99)),
              flush=True)


def learner_pair(overrides: list[str], modes: tuple, device: str, fill_steps: int):
    """One real agent and replay; a copy per mode under the same static masks, each with its callbacks started."""
    cfg = suite.compose([*overrides, f"device={device}"])
    env = suite.build_env(cfg, "train")
    dev = torch.device(device)
    agent = suite.build_agent(cfg, env, np.random.default_rng(0), dev)
    replay = suite.build_replay(cfg, env, np.random.default_rng(0), dev)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    for _ in range(fill_steps):
        action = env.action_space.sample()
        nxt, reward, terminated, truncated, _ = env.step(action)
        replay.add(obs, action, float(reward), terminated, terminated or truncated, nxt)
        obs = env.reset()[0] if terminated or truncated else nxt
    out = {}
    for mode in modes:
        a = copy.deepcopy(agent)
        trainer = SimpleNamespace(agent=a, updates=0, resumed=False, env_step=0, total_updates=10 ** 6, logger=Log())
        method = METHODS.get(cfg.pruning.name).target(cfg.pruning, cfg.sparsity, log_every_updates=10 ** 9, seed=0)
        cbs = [method] + ([SparseCompute(method, mode)] if mode is not False else [])
        for cb in cbs:
            cb.on_train_start(trainer)
        out[mode] = (a, trainer, cbs)
    return replay, out


def time_updates(replay, runs: dict, batch: int, blocks: int, per_block: int, device: str) -> dict:
    """ms per (sample + update), median over alternating blocks."""
    times = {mode: [] for mode in runs}
    for _ in range(blocks):
        for mode, (agent, trainer, cbs) in runs.items():
            for _ in range(5):
                agent.update(replay.sample(batch))
            wait(device)
            t0 = time.perf_counter()
            for _ in range(per_block):
                result = agent.update(replay.sample(batch))
                trainer.updates += 1
                for cb in cbs:
                    cb.on_update_end(trainer, result)
            wait(device)
            times[mode].append((time.perf_counter() - t0) / per_block * 1e3)
    return {mode: statistics.median(t) for mode, t in times.items()}


def learner(device: str, blocks: int) -> None:
    print("MinAtar DQN breakout, pruning=static sparsity=0.95: ms per learner update (sample + update)")
    print("width | false | true | auto | true/false | auto/false | converted by auto")
    for width in (1, 3, 5):
        replay, runs = learner_pair(["agent=dqn", "env=minatar", "env.id=breakout", f"network.width={width}",
                                     "pruning=static", "sparsity=0.95"], (False, True, "auto"), device, 2000)
        ms = time_updates(replay, runs, 32, blocks, 100, device)
        auto = list(runs["auto"][2][-1].layers)
        print(f"{width} | {ms[False]:.3f} | {ms[True]:.3f} | {ms['auto']:.3f} | {ms[True] / ms[False]:.2f} | "
              f"{ms['auto'] / ms[False]:.2f} | {', '.join(auto) or 'none'}", flush=True)
    learner_bytes_table(runs)


def learner_bytes_table(runs: dict) -> None:
    """Optimizer state of the width-5 runs: Adam's moments, all layers and the converted layer alone."""
    sizes = {}
    for mode, (agent, _, _) in runs.items():
        state = sum(v.numel() * v.element_size() for s in agent.optimizer.state.values() for v in s.values()
                    if torch.is_tensor(v))
        sizes[mode] = state
    dense_fc1 = 2 * runs[False][0].online.features.fc1.weight.numel() * 4
    held = runs[True][2][-1].layers["online/features.fc1.weight"]
    sparse_fc1 = sum(v.numel() * v.element_size() for v in runs[True][0].optimizer.state[held.values].values()
                     if torch.is_tensor(v) and v.dim())
    ratio = sizes[True] / sizes[False]
    print(f"optimizer state, width 5: false {sizes[False]:,} B, true {sizes[True]:,} B ({ratio:.3f}x); "
          f"fc1 alone {sparse_fc1:,} B of {dense_fc1:,} B dense ({sparse_fc1 / dense_fc1:.3f}x)", flush=True)


def atari(device: str, blocks: int) -> None:
    replay, runs = learner_pair(["agent=dqn", "network.padding=same", "agent.replay_capacity=5000", "pruning=static",
                                 "sparsity=0.95"], (False, True), device, 1200)
    ms = time_updates(replay, runs, 32, blocks, 10, device)
    print(f"Atari DQN (Pong), Nature CNN same padding, static 95%: false {ms[False]:.2f} ms, true {ms[True]:.2f} ms "
          f"per update: {ms[True] / ms[False]:.2f}x", flush=True)


def whole_runs(steps: int, methods: list[str]) -> None:
    print(f"whole runs: MinAtar breakout DQN width 5 at 95%, {steps:,} agent steps (loop wall time, alternating)")
    print("method | off s | on s | on/off | update ms off/on | learner bytes off → on (params, grads, optimizer)")
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            result = {}
            for switch in ("false", "true"):
                run_dir = Path(tmp) / f"{method}_{switch}"
                subprocess.run([sys.executable, str(ROOT / "train.py"), "agent=dqn", "env=minatar", "env.id=breakout",
                                "network.width=5", "sparsity=0.95", f"pruning={method}",
                                f"pruning.sparse_compute={switch}", f"total_env_steps={steps}",
                                f"eval.every_env_steps={steps}", "checkpoint.replay=false", "progress=false",
                                f"hydra.run.dir={run_dir}"], check=True, capture_output=True)
                result[switch] = json.loads((run_dir / "summary.json").read_text())
            off, on = result["false"], result["true"]
            lb = [tuple(s["learner_bytes"][k] for k in ("parameters", "gradients", "optimizer")) for s in (off, on)]
            print(f"{method} | {off['wall_time_s']:.1f} | {on['wall_time_s']:.1f} | "
                  f"{on['wall_time_s'] / off['wall_time_s']:.2f} | {off['median_update_ms']:.2f}/"
                  f"{on['median_update_ms']:.2f} | {lb[0]} → {lb[1]}; final eval {off['final_eval_return']} / "
                  f"{on['final_eval_return']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="layers,learner,atari,runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--run-steps", type=int, default=100_000)
    parser.add_argument("--methods", default="static,gmp", help="the whole runs' pruning methods")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}")
    sections = args.only.split(",")
    if "layers" in sections:
        layers(args.repeats)
    if "learner" in sections:
        learner(args.device, args.blocks)
    if "atari" in sections:
        atari(args.device, args.blocks)
    if "runs" in sections:
        whole_runs(args.run_steps, args.methods.split(","))


if __name__ == "__main__":
    main()
