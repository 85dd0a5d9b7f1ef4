"""What envs offer and agents and networks accept, as they declare it when they register."""

from __future__ import annotations

from enum import Enum


class ActionKind(str, Enum):
    discrete = "discrete"
    continuous = "continuous"


class ObservationKind(str, Enum):
    pixels = "pixel"  # stacked 84x84 uint8 frames (Atari)
    grid = "grid"  # small 0/1 channel grids (MinAtar's 10x10xC)
    vector = "vector"  # flat float vectors (classic control, dm_control states)
