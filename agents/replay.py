"""One replay buffer for DQN (1-step, uniform) and Rainbow (n-step, prioritized), storing every frame once.

Each slot holds the newest frame of an observation, the action taken, and the transition's n-step return,
discount and horizon. Stacked observations are rebuilt at sample time with one fancy-index gather, zeroing the
frames that precede the episode's first frame (the same zero padding as ``FrameStackObservation(padding_type=
"zero")`` uses when acting). When an episode ends, one extra slot stores the final observation's frame so that
the last transitions have a state to bootstrap from; that slot holds no action and is never sampled.

n-step returns are folded in at add time: each new reward is added, discounted, to the returns of the (at most
n - 1) earlier transitions of the episode still waiting for it. A transition is complete after n rewards, or
earlier when the episode ends: at a termination its discount is 0 (no bootstrap), at a truncation it is
γ^k for the k rewards it got, and it bootstraps from the final observation. Only complete transitions are
sampled, so the learner's target is always ``return + discount · V(obs k slots ahead)``.

With ``prioritized`` a sum tree holds one priority per slot (Schaul et al. 2016, with Dopamine's rules): a
transition gets the largest priority seen so far when it completes, 0 while incomplete or once overwritten.

Following Dopamine's circular buffer, a transition is sampled only if its whole stack window (``stack - 1`` frames
back) and its bootstrap frame lie in written, unbroken storage. For Atari a slot is 7,056 bytes of pixels plus 15
bytes of bookkeeping (23 with priorities), about 7.07 GB for 1M transitions, 7.09 GB with the sum tree.
"""

from __future__ import annotations

import numpy as np
import torch

from agents.staging import StagingBuffer
from agents.sum_tree import SumTree
from core.errors import require
from core.protocols import Batch

IS_EPS = 1e-10  # keeps the importance weight of a zero-priority draw finite


def check_learning_schedule(cfg) -> None:
    """The replay keys every agent config shares: warm-up, batch, capacity, update period (agent steps)."""
    require(cfg.learning_starts >= 1, "learning_starts", cfg.learning_starts,
            "must be >= 1 (the first update needs a complete transition in replay)")
    require(cfg.batch_size >= 1, "batch_size", cfg.batch_size, "must be >= 1")
    require(cfg.replay_capacity >= cfg.batch_size, "replay_capacity", cfg.replay_capacity,
            f"must be >= agent.batch_size ({cfg.batch_size})")
    require(cfg.update_period >= 1, "update_period", cfg.update_period, "must be >= 1")


def bookkeeping_bytes(prioritized: bool, action_dim: int = 1) -> int:
    """Bytes per slot besides the frame: action (one int32, or ``action_dim`` float32), return, discount, horizon,
    two flags (+ a float64 priority)."""
    return 4 * action_dim + 4 + 4 + 1 + 1 + 1 + (8 if prioritized else 0)


class ReplayBuffer:
    ARRAYS = ("frames", "actions", "returns", "discounts", "horizon", "first", "valid")

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype, stack: int,
                 rng: np.random.Generator, device: torch.device | str = "cpu", n_step: int = 1, gamma: float = 0.99,
                 prioritized: bool = False, action_shape: tuple[int, ...] = (), stage: bool | None = None):
        """``stack`` is how many frames each observation holds along its first axis (1 for vector observations).
        ``action_shape`` is () for discrete actions (stored as int32), else a continuous action's shape (float32).
        ``stage``: batches reach the device in one copy through a pinned buffer (``agents/staging.py``); by default
        on CUDA only."""
        if stack > 1 and obs_shape[0] != stack:
            raise ValueError(f"obs_shape {obs_shape} does not start with the stack size {stack}")
        if not 1 <= n_step <= 255 or capacity <= n_step + stack:
            raise ValueError(f"n_step={n_step} must be in [1, 255] and below capacity - stack ({capacity - stack})")
        self.capacity, self.stack, self.obs_shape = capacity, stack, tuple(obs_shape)
        self.n_step, self.gamma, self.prioritized = n_step, gamma, prioritized
        frame_shape = self.obs_shape[1:] if stack > 1 else self.obs_shape
        self.frames = np.zeros((capacity, *frame_shape), dtype=obs_dtype)
        self.actions = np.zeros((capacity, *action_shape), dtype=np.float32 if action_shape else np.int32)
        self.returns = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        self.horizon = np.zeros(capacity, dtype=np.uint8)  # slots ahead of the bootstrap frame; 0 = incomplete
        self.first = np.zeros(capacity, dtype=bool)  # slot holds an episode's first frame
        self.valid = np.zeros(capacity, dtype=bool)  # slot holds a transition (not a final-frame slot)
        self.tree = SumTree(capacity) if prioritized else None
        self.cursor, self.full = 0, False
        self._episode_start = True
        self._pending: list[int] = []  # slots of this episode still folding in rewards, oldest first
        self._powers = gamma ** np.arange(n_step, dtype=np.float64)
        self.rng, self.device = rng, torch.device(device)
        self.stage = self.device.type == "cuda" if stage is None else stage
        self._staging: dict[tuple, StagingBuffer] = {}
        self._back = np.arange(-(stack - 1), 1)  # offsets of a stack window ending at the slot

    def __len__(self) -> int:
        return self.capacity if self.full else self.cursor

    @property
    def nbytes(self) -> int:
        tree = self.tree.nodes.nbytes if self.tree is not None else 0
        return sum(getattr(self, k).nbytes for k in self.ARRAYS) + tree

    # --- checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"cursor": self.cursor, "full": self.full, "episode_start": self._episode_start,
                "pending": list(self._pending), "rng": self.rng.bit_generator.state,
                "tree": self.tree.state_dict() if self.tree is not None else None}

    def arrays(self) -> dict[str, np.ndarray]:
        """The written part of storage (views, not copies), for a checkpoint."""
        out = {k: getattr(self, k)[:len(self)] for k in self.ARRAYS}
        if self.tree is not None:
            out["priorities"] = self.tree.get(np.arange(len(self)))
        return out

    def load_state_dict(self, state: dict, arrays: dict[str, np.ndarray] | None) -> None:
        """Restore counters and RNG; with ``arrays`` also the contents, else the buffer starts empty."""
        self.rng.bit_generator.state = state["rng"]
        if arrays is None:
            self.cursor, self.full, self._episode_start, self._pending = 0, False, True, []
            if self.tree is not None:
                self.tree.load_state_dict({"max_priority": 1.0}, np.zeros(0))
            return
        missing = set(self.ARRAYS) - set(arrays) | ({"priorities"} - set(arrays) if self.tree is not None else set())
        if missing:
            raise ValueError(f"the checkpoint's replay lacks {sorted(missing)} (another replay layout)")
        for k in self.ARRAYS:
            stored, own = arrays[k], getattr(self, k)
            if stored.shape[1:] != own.shape[1:] or stored.dtype != own.dtype or len(stored) > len(own):
                raise ValueError(f"replay array {k!r} in the checkpoint is {stored.dtype}{stored.shape}, this "
                                 f"buffer holds {own.dtype}{own.shape}")
            own[:len(stored)] = stored
        if self.tree is not None:
            self.tree.load_state_dict(state["tree"], np.asarray(arrays["priorities"]))
        self.cursor, self.full, self._episode_start = state["cursor"], state["full"], state["episode_start"]
        self._pending = list(state["pending"])

    # --- adding -----------------------------------------------------------------------------------------------
    def _frame(self, obs: np.ndarray) -> np.ndarray:
        return obs[-1] if self.stack > 1 else obs

    def _write(self, frame: np.ndarray, action, valid: bool) -> int:
        i = self.cursor
        self.frames[i] = frame
        self.actions[i], self.returns[i], self.discounts[i], self.horizon[i] = action, 0.0, 0.0, 0
        self.first[i], self.valid[i] = self._episode_start and valid, valid
        if self.tree is not None:
            self.tree.set([i], [0.0])
        self.cursor = (i + 1) % self.capacity
        self.full = self.full or self.cursor == 0
        return i

    def _complete(self, slots: list[int], end: int, terminated: bool) -> None:
        """Close the windows of ``slots``; ``end`` is the slot of their bootstrap frame."""
        idx = np.asarray(slots)
        k = (end - idx) % self.capacity
        self.horizon[idx] = k
        self.discounts[idx] = 0.0 if terminated else self.gamma ** k
        if self.tree is not None:
            self.tree.set(idx, np.full(len(idx), self.tree.max_priority))

    def add(self, obs: np.ndarray, action, reward: float, terminated: bool, episode_end: bool,
            next_obs: np.ndarray) -> None:
        """Store one transition. ``terminated`` stops bootstrapping (also mid-episode, e.g. a lost life);
        ``episode_end`` (terminated or truncated) means the next call starts a new episode from a reset
        observation."""
        i = self._write(self._frame(obs), action, valid=True)
        self._episode_start = False
        self._pending.append(i)
        pending = np.asarray(self._pending)
        self.returns[pending] += (self._powers[len(pending) - 1::-1] * reward).astype(np.float32)
        end = self.cursor  # the next observation's frame goes here, now or at the next add
        if terminated or episode_end:
            self._complete(self._pending, end, terminated)
            self._pending = []
        elif len(self._pending) == self.n_step:
            self._complete(self._pending[:1], end, False)
            del self._pending[0]
        if episode_end:
            self._write(self._frame(next_obs), 0, valid=False)
            self._episode_start = True

    def fill(self, frames: np.ndarray, actions: np.ndarray, returns: np.ndarray, discounts: np.ndarray,
             horizon: np.ndarray, start: int = 0) -> None:
        """Slots ``start`` on of a buffer that a fixed dataset fills exactly, one slot per row, with transitions built
        elsewhere (``agents/replay_dataset.py``; a dataset is filled file by file, so only one file is ever held
        twice). The buffer counts as full with its cursor at 0, so a transition whose horizon stays inside it is
        sampleable. Slots keep the dataset's own zero-padding rows, so none is marked as an episode's first."""
        end = start + len(frames)
        if end > self.capacity:
            raise ValueError(f"rows {start} to {end} for a buffer of {self.capacity}")
        rows = slice(start, end)
        self.frames[rows], self.actions[rows], self.returns[rows] = frames, actions, returns
        self.discounts[rows], self.horizon[rows] = discounts, horizon
        self.first[rows], self.valid[rows] = False, horizon > 0
        if self.tree is not None:
            self.tree.set(np.arange(start, end), np.where(horizon > 0, 1.0, 0.0))
        self.cursor, self.full, self._episode_start, self._pending = 0, True, True, []

    # --- sampling ---------------------------------------------------------------------------------------------
    def _sampleable(self, idx: np.ndarray) -> np.ndarray:
        h = self.horizon[idx]
        ok = h > 0
        ok &= (self.cursor - idx) % self.capacity > h  # the bootstrap frame is written
        if self.full:  # the stack window must not straddle the seam between the newest and the oldest slot
            ok &= (idx - self.cursor) % self.capacity >= self.stack - 1
        return ok

    def _resample(self, idx: np.ndarray, draw) -> np.ndarray:
        """Redraw, with ``draw(n)``, every index that is not sampleable (rare: the newest transitions and the
        seam); raises if that does not converge."""
        bad = ~self._sampleable(idx)
        for _ in range(1000):
            if not bad.any():
                return idx
            idx[bad] = draw(int(bad.sum()))
            bad[bad] = ~self._sampleable(idx[bad])
        raise RuntimeError("could not draw sampleable transitions from replay")

    def sample_indices(self, batch_size: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Uniform over sampleable transitions, by rejection; ``rng`` defaults to the buffer's own."""
        rng = rng or self.rng
        if len(self) < 2:
            raise ValueError("replay holds no complete transition yet")
        return self._resample(rng.integers(0, len(self), size=batch_size),
                              lambda n: rng.integers(0, len(self), size=n))

    def sample(self, batch_size: int) -> Batch:
        """Uniform, or proportional to priority (stratified, as Dopamine) with importance weights
        (1/√P(i)) / max_batch (1/√P(i)), i.e. Dopamine's fixed β = 0.5."""
        if self.tree is None:
            return self.batch(self.sample_indices(batch_size))
        tree = self.tree
        if tree.total <= 0:
            raise ValueError("replay holds no complete transition yet")
        idx = self._resample(tree.stratified_sample(batch_size, self.rng),
                             lambda n: tree.find(self.rng.random(n) * tree.total))
        probs = tree.get(idx) / tree.total
        weights = 1.0 / np.sqrt(probs + IS_EPS)
        return self.batch(idx, (weights / weights.max()).astype(np.float32))

    def update_priorities(self, idx: np.ndarray, priorities: torch.Tensor) -> None:
        """New priorities for the sampled slots, as the agent computed them (Rainbow: √(loss + 1e-10))."""
        self.tree.set(idx, priorities.detach().to("cpu", torch.float64).numpy())

    def sample_states(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Observations and the actions taken there, uniform, for probes that must not disturb the learner's
        sampling RNG."""
        idx = self.sample_indices(n, rng)
        parts = self._moved({"obs": self._stacks(idx), "actions": self._actions(idx)})
        return parts["obs"], parts["actions"]

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

    def batch(self, idx: np.ndarray, weights: np.ndarray | None = None) -> Batch:
        weights = np.ones(len(idx), dtype=np.float32) if weights is None else weights
        next_idx = (idx + self.horizon[idx]) % self.capacity
        parts = self._moved({"obs": self._stacks(idx), "actions": self._actions(idx), "returns": self.returns[idx],
                             "next_obs": self._stacks(next_idx), "discounts": self.discounts[idx],
                             "weights": weights})
        return Batch(**parts, indices=idx)

    def _moved(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The arrays as tensors on the replay's device: through one staging buffer per batch layout, or each
        shared (CPU) or copied on its own."""
        if not self.stage:
            return {name: self._to_torch(a) for name, a in arrays.items()}
        key = tuple((name, a.shape, a.dtype.str) for name, a in arrays.items())
        if key not in self._staging:
            self._staging[key] = StagingBuffer({name: (a.shape, a.dtype) for name, a in arrays.items()}, self.device)
        return self._staging[key].to_device(arrays)

    def _actions(self, idx: np.ndarray) -> np.ndarray:
        a = self.actions[idx]
        return a.astype(np.int64) if a.dtype == np.int32 else a  # int64 for torch's gather

    def _to_torch(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(self.device, non_blocking=True)
