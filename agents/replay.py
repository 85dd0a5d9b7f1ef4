"""Uniform replay that stores every frame once.

Each slot holds the newest frame of an observation, the action taken, the reward, and two flags. Stacked
observations are rebuilt at sample time with one fancy-index gather, zeroing the frames that precede the
episode's first frame (the same zero padding as ``FrameStackObservation(padding_type="zero")`` uses when acting).
When an episode ends, one extra slot stores the final observation's frame so that the last transition has a next
state; that slot holds no action and is never sampled. For Atari this is 7,056 bytes of pixels plus 9 bytes of
bookkeeping per transition, about 7.07 GB for 1M transitions.

Following Dopamine's circular buffer, a transition is sampled only if its whole stack window (``stack - 1`` frames
back, one ahead) lies in written, unbroken storage.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor  # 1.0 where the next state has no value (no bootstrapping)


class ReplayBuffer:
    ARRAYS = ("frames", "actions", "rewards", "terminated", "first", "valid")

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype, stack: int,
                 rng: np.random.Generator, device: torch.device | str = "cpu"):
        """``stack`` is how many frames each observation holds along its first axis (1 for vector observations)."""
        if stack > 1 and obs_shape[0] != stack:
            raise ValueError(f"obs_shape {obs_shape} does not start with the stack size {stack}")
        self.capacity, self.stack, self.obs_shape = capacity, stack, tuple(obs_shape)
        frame_shape = self.obs_shape[1:] if stack > 1 else self.obs_shape
        self.frames = np.zeros((capacity, *frame_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int32)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.first = np.zeros(capacity, dtype=bool)  # slot holds an episode's first frame
        self.valid = np.zeros(capacity, dtype=bool)  # slot holds a transition (not a final-frame slot)
        self.cursor, self.full = 0, False
        self._episode_start = True
        self.rng, self.device = rng, torch.device(device)
        self._back = np.arange(-(stack - 1), 1)  # offsets of a stack window ending at the slot
        self._ahead = self._back + 1

    def __len__(self) -> int:
        return self.capacity if self.full else self.cursor

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, k).nbytes for k in self.ARRAYS)

    @property
    def bytes_per_slot(self) -> int:
        return sum(getattr(self, k)[0].nbytes for k in self.ARRAYS)

    def state_dict(self) -> dict:
        return {"cursor": self.cursor, "full": self.full, "episode_start": self._episode_start,
                "rng": self.rng.bit_generator.state}

    def arrays(self) -> dict[str, np.ndarray]:
        """The written part of storage (views, not copies), for a checkpoint."""
        return {k: getattr(self, k)[:len(self)] for k in self.ARRAYS}

    def load_state_dict(self, state: dict, arrays: dict[str, np.ndarray] | None) -> None:
        """Restore counters and RNG; with ``arrays`` also the contents, else the buffer starts empty."""
        self.rng.bit_generator.state = state["rng"]
        if arrays is None:
            self.cursor, self.full, self._episode_start = 0, False, True
            return
        for k in self.ARRAYS:
            stored, own = arrays[k], getattr(self, k)
            if stored.shape[1:] != own.shape[1:] or stored.dtype != own.dtype or len(stored) > len(own):
                raise ValueError(f"replay array {k!r} in the checkpoint is {stored.dtype}{stored.shape}, this "
                                 f"buffer holds {own.dtype}{own.shape}")
            own[:len(stored)] = stored
        self.cursor, self.full, self._episode_start = state["cursor"], state["full"], state["episode_start"]

    def _frame(self, obs: np.ndarray) -> np.ndarray:
        return obs[-1] if self.stack > 1 else obs

    def _write(self, frame: np.ndarray, action: int, reward: float, terminated: bool, valid: bool) -> None:
        i = self.cursor
        self.frames[i] = frame
        self.actions[i], self.rewards[i], self.terminated[i] = action, reward, terminated
        self.first[i], self.valid[i] = self._episode_start and valid, valid
        self.cursor = (i + 1) % self.capacity
        self.full = self.full or self.cursor == 0

    def add(self, obs: np.ndarray, action: int, reward: float, terminated: bool, episode_end: bool,
            next_obs: np.ndarray) -> None:
        """Store one transition. ``terminated`` stops bootstrapping; ``episode_end`` (terminated or truncated)
        means the next call starts a new episode from a reset observation."""
        self._write(self._frame(obs), action, reward, terminated, valid=True)
        self._episode_start = False
        if episode_end:
            self._write(self._frame(next_obs), 0, 0.0, False, valid=False)
            self._episode_start = True

    def _sampleable(self, idx: np.ndarray) -> np.ndarray:
        ok = self.valid[idx]
        ahead = (idx + 1) % self.capacity
        ok &= ahead != self.cursor  # the next frame is not written yet
        if self.full:  # the window must not straddle the seam between the newest and the oldest slot
            ok &= (idx - self.cursor) % self.capacity >= self.stack - 1
        return ok

    def sample_indices(self, batch_size: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Uniform over sampleable transitions, by rejection; ``rng`` defaults to the buffer's own."""
        rng = rng or self.rng
        if len(self) < 2:
            raise ValueError("replay holds no complete transition yet")
        idx = rng.integers(0, len(self), size=batch_size)
        bad = ~self._sampleable(idx)
        for _ in range(1000):
            if not bad.any():
                return idx
            idx[bad] = rng.integers(0, len(self), size=int(bad.sum()))
            bad[bad] = ~self._sampleable(idx[bad])
        raise RuntimeError("could not draw sampleable transitions from replay")

    def _stacks(self, end: np.ndarray) -> np.ndarray:
        """Observations whose newest frame is in slot ``end``: shape (B, *obs_shape)."""
        if self.stack == 1:
            return self.frames[end]
        window = (end[:, None] + self._back[None, :]) % self.capacity  # (B, stack), oldest first
        first = self.first[window]
        # keep frame j unless an episode starts after it within the window
        starts_after = np.cumsum(first[:, ::-1], axis=1)[:, ::-1] - first
        out = self.frames[window]
        out[starts_after > 0] = 0
        return out

    def sample(self, batch_size: int) -> Batch:
        idx = self.sample_indices(batch_size)
        return self.batch(idx)

    def sample_obs(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """Observations only, for probes that must not disturb the learner's sampling RNG."""
        return self._to_torch(self._stacks(self.sample_indices(n, rng)))

    def batch(self, idx: np.ndarray) -> Batch:
        obs = self._stacks(idx)
        next_obs = self._stacks((idx + 1) % self.capacity)
        to = self._to_torch
        return Batch(to(obs), to(self.actions[idx].astype(np.int64)), to(self.rewards[idx]), to(next_obs),
                     to(self.terminated[idx].astype(np.float32)))

    def _to_torch(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(self.device, non_blocking=True)
