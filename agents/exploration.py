"""Exploration schedules as pure functions of the agent-step counter."""

from __future__ import annotations


def linear_epsilon(step: int, warmup_steps: int, decay_steps: int, start: float, end: float) -> float:
    """Dopamine's ``linearly_decaying_epsilon``: ``start`` during warm-up, then linear to ``end`` over
    ``decay_steps`` agent steps, then constant."""
    if decay_steps <= 0:
        return end if step >= warmup_steps else start
    frac = min(max((step - warmup_steps) / decay_steps, 0.0), 1.0)
    return start + frac * (end - start)
