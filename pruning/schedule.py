"""Gradual magnitude pruning schedule (Zhu & Gupta 2017; Obando-Ceron et al. 2024, Eq. 1), in gradient updates.

``t`` is the 0-based index of a gradient update (the optimizer's step count before it), as in JaxPruner's
``sparsity_schedules.PolynomialSchedule``.
"""

from __future__ import annotations


def gmp_fraction(t: int, t_start: int, t_end: int, power: int = 3) -> float:
    """1 − (1 − p)^3 with JaxPruner's progress p = clip(t + 1 − t_start, 0, t_end − t_start) / (t_end − t_start):
    0 before t_start, 1 from t_end − 1 on. A window of zero length jumps to 1 at t_start. Each layer's sparsity is
    its final sparsity times this fraction (``PolynomialSchedule.get_sparsity_at_step``)."""
    if t_end <= t_start:
        return 1.0 if t >= t_start else 0.0
    progress = min(max(t + 1 - t_start, 0), t_end - t_start) / (t_end - t_start)
    return 1.0 - (1.0 - progress) ** power


def gmp_sparsity(t: int, t_start: int, t_end: int, s_final: float, power: int = 3) -> float:
    """s_t = s_F (1 − (1 − p)^3): the total sparsity at update ``t`` (each layer: its own s_F, same fraction)."""
    return s_final * gmp_fraction(t, t_start, t_end, power)


def pruning_window(total_updates: int, start_frac: float, end_frac: float) -> tuple[int, int]:
    """(t_start, t_end) as update indices: ⌊start_frac·T⌋ and ⌊end_frac·T⌋, the latter capped at the last update
    T − 1 so that the final mask update always happens."""
    last = max(total_updates - 1, 0)
    return min(int(start_frac * total_updates), last), min(int(end_frac * total_updates), last)


def is_mask_update(t: int, t_start: int, t_end: int, every_updates: int) -> bool:
    """JaxPruner's ``PeriodicSchedule``: at every multiple of ``every_updates`` inside [t_start, t_end]; and, unlike
    JaxPruner, also at t_end, so that the run ends at exactly s_F whatever the frequency (JaxPruner's last update is
    the last multiple, short of s_F when t_end is not one). Never after t_end: the mask is frozen."""
    if t < t_start or t > t_end:
        return False
    return t == t_end or t % every_updates == 0
