"""Logged replay in the DQN Replay Dataset's format (Agarwal et al. 2020): Dopamine's replay checkpoints.

One checkpoint ``N`` of a folder is the files ``$store$_{observation,action,reward,terminal}_ckpt.N.gz``,
``add_count_ckpt.N.gz`` and ``invalid_range_ckpt.N.gz``: each a ``.npy`` array inside gzip, as Dopamine's
``OutOfGraphReplayBuffer.save`` writes them (``dopamine/tf/replay_memory/circular_replay_buffer.py``). Row ``i``
holds the frame o_i seen before the action, the action a_i, the clipped reward r_i after it, and ``terminal`` 1 if
the episode ended after a_i; each episode starts with ``stack - 1`` rows of zeros (Dopamine's padding), and the
frame after a terminal is never stored. Transitions are rebuilt at load time exactly as ``sample_transition_batch``
builds them: the state is the stack of rows i-stack+1..i, the n-step return sums γ^k r up to and including the first
terminal of the window, the next state is the stack at i + L (L = n, or the terminal's offset + 1), and a start is
valid under ``is_valid_transition``'s rules (the sampling range of a full or filling buffer, ``invalid_range``, no
terminal among the stack's older frames, no episode end without a terminal inside the n-step window).

The suite writes one more store, ``$store$_episode_end_ckpt.N.gz`` (1 on an episode's last row, also where it was
truncated): Dopamine's newer buffers keep the same fact as a pickled set, which is never read here. Dopamine's
loader ignores a store it does not expect. Reading never unpickles (a downloaded dataset is untrusted input).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STORE = "$store$_"
STORES = ("observation", "action", "reward", "terminal")
EPISODE_END = "episode_end"  # the suite's extra store
COUNTERS = ("add_count", "invalid_range")
_NAME = re.compile(r"^(?P<name>.+)_ckpt\.(?P<suffix>\d+)\.gz$")


class DatasetError(ValueError):
    """A dataset folder or file that cannot be read as logged replay; the message names the file and the reason."""


def checkpoint_file(folder: Path, name: str, suffix: int) -> Path:
    return Path(folder) / f"{name}_ckpt.{suffix}.gz"


def save_array(path: Path, array: np.ndarray) -> None:
    """``np.save`` inside gzip, as Dopamine, written to a temporary name first so a kill leaves no half file.
    Level 1: the writer runs inside training, and the frames are mostly zeros."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1, mtime=0) as gz:
        np.save(gz, np.asarray(array), allow_pickle=False)
    tmp.replace(path)


def load_array(path: Path, rows: int | None = None) -> np.ndarray:
    """The stored array, or only its first ``rows`` rows: then only that much of the file is decompressed (the
    paper's 5% reads 50,000 of each file's 1M Atari frames, 0.35 of its 7 GB)."""
    try:
        with gzip.open(path, "rb") as f:
            if rows is None:
                return np.load(f, allow_pickle=False)
            shape, fortran, dtype = _header(f)
            if dtype.hasobject or fortran or not shape:
                raise ValueError("not a plain C-ordered array: pickle or Fortran order would be needed")
            keep = min(rows, shape[0])
            data = f.read(keep * dtype.itemsize * int(np.prod(shape[1:])))
            return np.frombuffer(data, dtype=dtype).reshape(keep, *shape[1:]).copy()
    except ValueError as e:
        if "pickle" in str(e):
            raise DatasetError(f"{path} holds pickled Python objects; logged replay is read without unpickling "
                               "(a dataset is untrusted input), so it is refused") from None
        raise DatasetError(f"{path} is not a .npy array inside gzip: {e}") from None
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path} cannot be read: {e}") from None


def array_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a stored array from its ``.npy`` header alone (a few hundred bytes decompressed)."""
    try:
        with gzip.open(path, "rb") as f:
            shape, _, dtype = _header(f)
    except (ValueError, OSError, EOFError) as e:
        raise DatasetError(f"{path} is not a .npy array inside gzip: {e}") from None
    if dtype.hasobject:
        raise DatasetError(f"{path} holds pickled Python objects; logged replay is read without unpickling "
                           "(a dataset is untrusted input), so it is refused")
    return tuple(shape), dtype


def _header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    major, _ = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    return read(f)


def checkpoint_suffixes(folder: Path) -> list[int]:
    """The checkpoint numbers in ``folder`` that have every file, sorted; a number with some of its files missing is
    refused, naming them."""
    found: dict[int, set[str]] = {}
    for path in Path(folder).iterdir():
        m = _NAME.match(path.name)
        if m:
            found.setdefault(int(m["suffix"]), set()).add(m["name"])
    required = {*(STORE + s for s in STORES), *COUNTERS}
    for suffix, names in sorted(found.items()):
        missing = sorted(required - names)
        if missing and names & {STORE + s for s in STORES}:
            raise DatasetError(f"checkpoint {suffix} in {folder} lacks "
                               f"{', '.join(checkpoint_file(folder, m, suffix).name for m in missing)}")
    return sorted(s for s, names in found.items() if required <= names)


@dataclass
class LoggedRows:
    """One checkpoint's rows, in storage order."""

    observation: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminal: np.ndarray
    episode_end: np.ndarray | None  # the suite's store; None in Dopamine's own files
    add_count: int
    invalid_range: np.ndarray

    def __len__(self) -> int:
        return len(self.action)


def read_checkpoint(folder: Path, suffix: int, rows: int | None = None, stack: int = 1) -> LoggedRows:
    """Checkpoint ``suffix``; with ``rows`` only its first ``rows + stack`` rows, as Dopamine's fixed replay keeps
    the first ``replay_capacity + stack_size`` rows of each file (its "5%" is 50,000 of 1,000,000)."""
    keep = None if rows is None else rows + stack
    stores = {s: load_array(checkpoint_file(folder, STORE + s, suffix), keep) for s in STORES}
    path = checkpoint_file(folder, STORE + EPISODE_END, suffix)
    ends = load_array(path, keep) if path.is_file() else None
    n = len(stores["action"])
    for name, array in [*stores.items(), (EPISODE_END, ends)]:
        if array is not None and len(array) != n:
            raise DatasetError(f"{checkpoint_file(folder, STORE + name, suffix)} has {len(array)} rows, "
                               f"the action store {n}")
    return LoggedRows(stores["observation"], stores["action"].astype(np.int32),
                      stores["reward"].astype(np.float32), stores["terminal"].astype(bool),
                      None if ends is None else ends.astype(bool),
                      int(load_array(checkpoint_file(folder, "add_count", suffix))),
                      load_array(checkpoint_file(folder, "invalid_range", suffix)).astype(np.int64))


def valid_starts(log: LoggedRows, capacity: int, stack: int, n_step: int) -> np.ndarray:
    """Where a transition may start, by Dopamine's ``sample_index_batch`` range and ``is_valid_transition``, for a
    buffer of ``capacity`` rows (the file's own, or the ``rows`` kept); and, for the suite's files, no episode end
    among the stack's older frames (Dopamine's padding rows after a truncation would otherwise be transitions). A
    start whose stack would wrap around the end of the array is dropped as well: its frames are not contiguous."""
    n = len(log)
    idx = np.arange(n)
    cursor = log.add_count % capacity
    if log.add_count >= capacity:
        lo, hi = cursor - capacity + stack - 1, cursor - n_step
        ok = np.zeros(n, dtype=bool)
        ok[np.arange(lo, hi) % capacity] = True
    else:
        ok = (idx >= stack - 1) & (idx < cursor - n_step)
    ok &= idx < capacity
    ok &= idx >= stack - 1
    ok[log.invalid_range[(log.invalid_range >= 0) & (log.invalid_range < n)]] = False
    ends = log.terminal if log.episode_end is None else log.terminal | log.episode_end
    for back in range(1, stack):
        ok[back:] &= ~ends[:-back]
    if log.episode_end is not None:
        for k in range(n_step):  # an episode end without a terminal inside the window: nothing to bootstrap from
            shifted = np.zeros(n, dtype=bool)
            shifted[:n - k] = log.episode_end[k:] & ~log.terminal[k:]
            ok &= ~shifted
    return ok


def transitions(log: LoggedRows, ok: np.ndarray, n_step: int, gamma: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the n-step return, the discount (γ^n, or 0 when a terminal ends the window) and the horizon L (0
    where no transition starts), as ``sample_transition_batch`` computes them."""
    n = len(log)
    returns = np.zeros(n, dtype=np.float32)
    horizon = np.zeros(n, dtype=np.int64)
    open_ = np.ones(n, dtype=bool)  # no terminal yet in the window
    for k in range(n_step):
        reward, term = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=bool)
        reward[:n - k], term[:n - k] = log.reward[k:], log.terminal[k:]
        returns += np.where(open_, np.float32(gamma ** k) * reward, np.float32(0))
        horizon += open_
        open_ &= ~term
    discounts = np.where(open_, np.float32(gamma ** n_step), np.float32(0)).astype(np.float32)
    ok = ok & (np.arange(n) + horizon < n)
    return returns, discounts, np.where(ok, horizon, 0).astype(np.uint8)


class DatasetWriter:
    """Writes an online run's transitions as Dopamine's logged replay: each episode's ``stack - 1`` zero rows, then
    a row per transition; a checkpoint file set every ``rows_per_file`` rows (``add_count`` a multiple of it, cursor
    0, full) and, on ``flush``, the rows since the last one as a filling buffer. ``flush`` comes with every run
    checkpoint, so the files on disk are exactly what the checkpoint has seen, and a resume drops the rest."""

    def __init__(self, folder: Path, frame_shape: Sequence[int], frame_dtype: np.dtype, stack: int, n_step: int,
                 rows_per_file: int):
        self.folder, self.stack, self.n_step, self.rows_per_file = Path(folder), stack, n_step, rows_per_file
        self.folder.mkdir(parents=True, exist_ok=True)
        self._buf = {"observation": np.zeros((rows_per_file, *frame_shape), dtype=frame_dtype),
                     "action": np.zeros(rows_per_file, dtype=np.int32),
                     "reward": np.zeros(rows_per_file, dtype=np.float32),
                     "terminal": np.zeros(rows_per_file, dtype=np.uint8),
                     EPISODE_END: np.zeros(rows_per_file, dtype=np.uint8)}
        self.rows = 0  # in the buffer, not yet in a file
        self.next_suffix = 0
        self.episode_start = True

    def add(self, frame: np.ndarray, action: int, reward: float, terminal: bool, episode_end: bool) -> None:
        if self.episode_start:
            for _ in range(self.stack - 1):
                self._row(0, 0, 0.0, False, False)
        self._row(frame, action, reward, terminal, episode_end)
        self.episode_start = episode_end

    def _row(self, frame, action, reward, terminal, episode_end) -> None:
        i = self.rows
        b = self._buf
        b["observation"][i], b["action"][i], b["reward"][i] = frame, action, reward
        b["terminal"][i], b[EPISODE_END][i] = terminal, episode_end
        self.rows += 1
        if self.rows == self.rows_per_file:
            self.flush()

    def flush(self) -> None:
        """The buffered rows as checkpoint ``next_suffix`` (nothing if there are none)."""
        if self.rows == 0:
            return
        n, cap = self.rows, self.rows_per_file
        full = n == cap
        cursor = 0 if full else n
        invalid = np.array([(cursor - self.n_step + i) % cap for i in range(self.stack + self.n_step)])
        for name, array in self._buf.items():
            save_array(checkpoint_file(self.folder, STORE + name, self.next_suffix), array[:n])
        save_array(checkpoint_file(self.folder, "invalid_range", self.next_suffix), invalid)
        # the counters last: a checkpoint without them is not complete, and is rewritten on resume
        save_array(checkpoint_file(self.folder, "add_count", self.next_suffix), np.array(cap if full else n))
        self.next_suffix += 1
        self.rows = 0

    def state_dict(self) -> dict:
        return {"next_suffix": self.next_suffix, "episode_start": self.episode_start}

    def load_state_dict(self, state: dict) -> None:
        """Back to a checkpoint: the files it had seen stay, later ones (written after it) go."""
        self.next_suffix, self.episode_start, self.rows = state["next_suffix"], state["episode_start"], 0
        for path in self.folder.iterdir():
            m = _NAME.match(path.name)
            if m and int(m["suffix"]) >= self.next_suffix:
                path.unlink()


class RecordingReplay:
    """A replay buffer that also writes every transition it stores with a ``DatasetWriter`` (``offline.write_dataset``).
    Taking its state for a checkpoint writes the buffered rows as a file, and loading one drops the files written
    after it, so the dataset of a resumed run is the uninterrupted run's."""

    def __init__(self, inner, writer: DatasetWriter):
        self.inner, self.writer = inner, writer

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __len__(self) -> int:
        return len(self.inner)

    def add(self, obs: np.ndarray, action, reward: float, terminated: bool, episode_end: bool,
            next_obs: np.ndarray) -> None:
        frame = obs[-1] if self.writer.stack > 1 else obs
        self.writer.add(frame, int(action), reward, terminated, episode_end)
        self.inner.add(obs, action, reward, terminated, episode_end, next_obs)

    def state_dict(self) -> dict:
        self.writer.flush()
        return {**self.inner.state_dict(), "dataset_writer": self.writer.state_dict()}

    def load_state_dict(self, state: dict, arrays: dict[str, np.ndarray] | None) -> None:
        self.writer.load_state_dict(state["dataset_writer"])
        self.inner.load_state_dict(state, arrays)
