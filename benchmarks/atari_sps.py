"""Training throughput on Atari Pong next to the bare learner step, measured side by side in one process.

    python benchmarks/atari_sps.py [--steps 4000] [--learning-starts 1000]

With one update every 4 agent steps, the loop can at best run 4 / t_learn agent steps per second, where t_learn
is one bare learner step (target forward, online forward, loss, backward, Adam at batch 32 on a replay batch).
The figure of merit is SPS / (4 / t_learn): the share of that bound the whole loop (acting, env, replay,
logging) keeps. The learner step is timed before and after the loop and both are printed, since this machine is
noisy.

Acting runs at the final ε (0.01, a greedy forward on 99% of steps) as in 97.5% of a 10M-step run; pass
``agent.epsilon_decay_steps=250000`` to time the early, mostly random phase instead.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from timing import wait

import suite
import train
from core.callbacks import Callback


class Clock(Callback):
    """Agent steps per second between the first and the last update (so neither warm-up nor the final
    evaluation is counted)."""

    def __init__(self):
        self.first = self.last = None

    def on_update_end(self, trainer, result):
        self.last = (time.perf_counter(), trainer.env_step)
        self.first = self.first or self.last

    @property
    def sps(self) -> float:
        return (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])


class Phases(Callback):
    """Where the loop's time goes, timed inside it: act, env step, replay add, replay sample and update, summed
    between the first and the last update (the window of ``Clock``) and reported per update. On a GPU each part
    waits for its own kernels, so asynchronous work is charged where it is queued."""

    PARTS = ("act", "env", "add", "sample", "update")

    def __init__(self):
        self.device = torch.device("cpu")
        self.sums = dict.fromkeys(self.PARTS, 0.0)
        self.window: dict[str, float] = {}
        self.updates = 0

    def on_update_end(self, trainer, result):
        if not self.updates:
            self.device = trainer.agent.device
            for owner, name, part in ((trainer.agent, "act", "act"), (trainer.env, "step", "env"),
                                      (trainer.replay, "add", "add"), (trainer.replay, "sample", "sample"),
                                      (trainer.agent, "update", "update")):
                setattr(owner, name, self._timed(getattr(owner, name), part))
        self.updates += 1
        self.window = {**self.sums, "updates": self.updates - 1}

    def _timed(self, fn, part):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            wait(self.device)
            self.sums[part] += time.perf_counter() - t0
            return out
        return timed

    def per_update_ms(self) -> dict[str, float]:
        n = max(self.window.get("updates", 0), 1)
        return {part: 1e3 * self.window.get(part, 0.0) / n for part in self.PARTS}


def learner_step_ms(agent, replay, n=50) -> float:
    times = []
    for _ in range(n + 5):
        batch = replay.sample(32)
        wait(agent.device)
        t0 = time.perf_counter()
        agent.update(batch)
        wait(agent.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[5:]) * 1e3


def measure(steps: int, learning_starts: int, overrides: list[str]) -> dict:
    """Train on Pong for ``learning_starts + steps`` agent steps; the loop's SPS and the bare learner step (ms)
    timed after the first update and after the last."""
    cfg = suite.compose([f"total_env_steps={learning_starts + steps}", f"agent.learning_starts={learning_starts}",
                         "agent.replay_capacity=100000", f"eval.every_env_steps={10 ** 9}", "eval.episodes=1",
                         "env.max_episode_steps=2000", "agent.epsilon_decay_steps=1", "progress=false", *overrides])
    clock, grab, phases = Clock(), {}, Phases()

    class Grab(Callback):
        def on_update_end(self, trainer, result):
            if trainer.updates == 1:
                grab["before"] = learner_step_ms(trainer.agent, trainer.replay)

        def on_train_end(self, trainer):
            grab["after"] = learner_step_ms(trainer.agent, trainer.replay)

    with tempfile.TemporaryDirectory() as d:
        train.train(cfg, Path(d), callbacks=[Grab(), clock, phases])
    return {"sps": clock.sps, "before": grab["before"], "after": grab["after"], "phases": phases.per_update_ms()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000, help="agent steps after learning starts")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("overrides", nargs="*", help="extra config overrides, e.g. network.channels_last=false")
    args = parser.parse_args()
    m = measure(args.steps, args.learning_starts, args.overrides)
    t_learn = (m["before"] + m["after"]) / 2
    bound = 4 / (t_learn / 1e3)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, overrides: {args.overrides or 'none'}")
    print(f"bare learner step (batch 32)   before {m['before']:.1f} ms, after {m['after']:.1f} ms")
    print(f"update-bound limit 4/t_learn   {bound:.1f} agent steps/s")
    print(f"training loop SPS              {m['sps']:.1f} agent steps/s over {args.steps} steps")
    print(f"ratio SPS / (4 / t_learn)      {m['sps'] / bound:.3f}   (goal >= 0.9)")
    print("inside the loop, per update:   " + phase_line(m["phases"]))


def phase_line(phases: dict[str, float]) -> str:
    return ", ".join(f"{part} {ms:.2f} ms" for part, ms in phases.items()) + f"; total {sum(phases.values()):.2f} ms"


if __name__ == "__main__":
    main()
