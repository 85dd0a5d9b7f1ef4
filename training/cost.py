"""What a run costs on a CPU, from per-step times the suite measured: a sweep says how many runs it holds and about
how many core-hours they take before it launches.

A run's time is its agent steps times the cost of one (env step, acting forward, replay add) plus its gradient
updates times the cost of one (sample, forward, backward, optimizer step), in core-milliseconds on one thread of
the 2-core x86 development machine (docs/benchmarks.md). The update cost is measured for one width and one agent
per (env, network); other widths scale it by a power of the width, other agents by a factor, both from measured or
counted ratios. Evaluations, checkpoints and start-up are left out (a few percent on MinAtar). Calibrated on the
study's 36 runs, it gives them 15.9 core-hours against the 15.8 measured; on runs it was not fitted to, the MinAtar
paper's protocol (an update every step) comes out 23% under its measured time and the offline CQL runs 2% under
(``tests/test_cost.py``). Elsewhere it rests on fewer numbers, and a GPU changes everything.
"""

from __future__ import annotations

from dataclasses import dataclass

ROUGH = "rough: ±25% for DQN on MinAtar and CartPole, where measured; a factor of 2 elsewhere; a GPU is far faster"

# core-ms per gradient update at width 1, (agent, env, network) -> ms
UPDATE_MS = {
    ("dqn", "minatar", "minatar_cnn"): 1.8,  # results/minatar_dqn_1m: median_update_ms of the 36 study runs, 1.6-2.4
    ("dqn", "atari", "nature_cnn"): 58.5,  # docs/benchmarks.md, benchmarks/iqn_updates.py, one thread
    ("dqn", "atari", "impala"): 202.0,  # the Nature CNN's time x 3.45, the ratio of their multiply-adds (counted)
    ("rainbow", "atari", "nature_cnn"): 68.0,  # docs/benchmarks.md: a 44 ms Rainbow learner step beside DQN's 38
    ("rainbow", "atari", "impala"): 234.0,  # the same ratio, 1.16
    ("dqn", "classic", "mlp"): 1.2,  # docs/benchmarks.md: CartPole, 99k updates and 100k steps in 2-3 minutes
    ("rainbow", "classic", "mlp"): 2.3,  # docs/benchmarks.md: Rainbow on CartPole, 49.5k updates in 139-149 s
    # docs/benchmarks.md: IQN and M-IQN on CartPole at width 2, 14-15 ms an update with four runs on two cores (half
    # a core each: about 7 core-ms), over 2 ** 1.59 for width 2
    ("iqn", "classic", "mlp"): 2.3,
    ("miqn", "classic", "mlp"): 2.3,
    ("sac", "dmc", "mlp"): 14.4,  # docs/benchmarks.md, benchmarks/sac_updates.py: 2x256, batch 256, one thread
    ("sac", "classic", "mlp"): 14.4,  # the same networks and batch (Pendulum's smaller input: not measured apart)
    ("ppo", "classic", "mlp"): 1.8,  # docs/agents/ppo.md: CartPole, 500k steps, median update 1.77 ms (minibatch 128)
}
# an agent's update against DQN's on the same env and network, where it is not measured above
AGENT_FACTOR = {
    "rainbow": 1.5,  # 1.16 on Atari (44 against 38 ms), 1.9 on CartPole
    "iqn": 25.0,  # benchmarks/iqn_updates.py: 25 on Atari and MinAtar width 3, 34 at MinAtar width 1
    "miqn": 33.0,  # the same: 28 on Atari, 33 and 47 on MinAtar
}
# update time grows as width ** exponent
WIDTH_EXPONENT = {
    "minatar_cnn": 1.33,  # measured: 7.8 ms at width 3 (study runs), 16.8 ms at width 5 (benchmarks/minatar_dqn.py)
    "mlp": 1.59,  # measured: SAC's update, 14.4 ms at width 1, 185 ms at width 5
    "nature_cnn": 1.9,  # multiply-adds counted at widths 1, 3, 5 (x7.6, x20.5), not timed
    "impala": 1.9,  # the same (x8.3, x22.8)
}
# core-ms per agent step besides updates: the env step, the acting forward and the replay add
ACT_MS = {
    "minatar": 0.4,  # the study runs' wall time less their updates
    "atari": 2.0,  # docs/benchmarks.md: acting forward 1.0-1.25 ms, env step 0.5 ms, replay add 0.07 ms
    "classic": 0.3,  # CartPole runs' wall time less their updates
    "dmc": 1.0,  # not measured: small beside SAC's 14 ms update
}


@dataclass(frozen=True)
class RunShape:
    """What a run's cost depends on here."""

    agent: str
    env: str
    network: str
    width: float
    env_steps: int  # agent steps (0 offline)
    updates: int  # gradient updates


def update_ms(run: RunShape) -> float | None:
    """Core-ms of one gradient update of ``run``'s agent and network at its width; None where nothing is measured."""
    base = UPDATE_MS.get((run.agent, run.env, run.network))
    if base is None and run.agent in AGENT_FACTOR and ("dqn", run.env, run.network) in UPDATE_MS:
        base = UPDATE_MS[("dqn", run.env, run.network)] * AGENT_FACTOR[run.agent]
    exponent = WIDTH_EXPONENT.get(run.network)
    if base is None or exponent is None:
        return None
    return base * run.width ** exponent


def core_seconds(run: RunShape) -> float | None:
    """Core-seconds of ``run`` on one thread of the development machine; None where its costs are not measured."""
    per_update, per_step = update_ms(run), ACT_MS.get(run.env)
    if per_update is None or per_step is None:
        return None
    return (run.env_steps * per_step + run.updates * per_update) / 1e3
