"""Checkpoints: everything a run needs to continue exactly where it stopped, written so that a kill at any moment
leaves the previous checkpoint usable.

Layout: ``<run>/checkpoints/step_<agent step>/`` holding ``state.pt`` (tensors and plain Python values only, so it
loads with ``torch.load(weights_only=True)``), one ``.npy`` per replay array (loaded with ``allow_pickle=False``),
``logger.json`` and ``manifest.json``. A checkpoint is written into a hidden folder, each file fsynced, and the
folder renamed into place: a folder named ``step_*`` is complete. The manifest, written last, holds each file's
size and SHA-256, so a file truncated or altered afterwards is caught at load time and the previous checkpoint used.
When a run completes, only its final checkpoint is kept, without the replay buffer.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import require

STATE, MANIFEST, LOGGER = "state.pt", "manifest.json", "logger.json"


@dataclass
class CheckpointConfig:
    every_env_steps: int = 250_000  # agent steps (one Dopamine iteration); also at the end and on a stop request
    keep: int = 2  # newest complete checkpoints kept; an older one is the fallback if the newest is damaged
    replay: bool = True  # store the replay buffer (needed for an exact resume; ~7 GB for 1M Atari transitions)
    save_init: bool = False  # write the networks as built to init.pt (what pruning=lottery starts from)

    def validate(self) -> None:
        require(self.every_env_steps >= 1, "every_env_steps", self.every_env_steps, "must be >= 1 (agent steps)")
        require(self.keep >= 1, "keep", self.keep, "must be >= 1")


class CheckpointError(Exception):
    """A checkpoint that cannot be used (damaged, incomplete, or holding something unsafe to load)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int):
        self.dir, self.keep = Path(directory), keep

    def complete(self) -> list[Path]:
        """Complete checkpoints, newest first."""
        if not self.dir.is_dir():
            return []
        return sorted((p for p in self.dir.glob("step_*") if p.is_dir()), key=lambda p: p.name, reverse=True)

    def at_step(self, step: int | None = None) -> Path | None:
        """The newest complete checkpoint (``step`` None) or the one at agent step ``step``; None if there is none."""
        found = self.complete()
        if step is None:
            return found[0] if found else None
        return next((p for p in found if p.name == f"step_{step:012d}"), None)

    def steps(self) -> list[int]:
        """The agent steps of the complete checkpoints, oldest first."""
        return sorted(int(p.name.removeprefix("step_")) for p in self.complete())

    def begin(self, step: int, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[Path, int]:
        """Write ``state`` and ``arrays`` into a hidden folder; returns it and the bytes written. Nothing is visible
        as a checkpoint until ``commit``."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".tmp-step_{step:012d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        torch.save(state, tmp / STATE)
        for name, array in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        self._files = {}
        for p in sorted(tmp.iterdir()):
            _fsync(p)
            self._files[p.name] = {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        return tmp, sum(f["bytes"] for f in self._files.values())

    def commit(self, tmp: Path, step: int, logger_state: dict[str, Any]) -> Path:
        """Add the logger's file offsets and the manifest, rename into place, and drop old checkpoints. A
        checkpoint already at this step (a stop checkpoint written before an interrupted evaluation) is replaced
        only once the new one is in place."""
        (tmp / LOGGER).write_text(json.dumps(logger_state))
        files = {**self._files, LOGGER: {"bytes": (tmp / LOGGER).stat().st_size, "sha256": _sha256(tmp / LOGGER)}}
        (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=1))
        for name in (LOGGER, MANIFEST):
            _fsync(tmp / name)
        final = self.dir / f"step_{step:012d}"
        old = self.dir / f".old-{final.name}"
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync(self.dir)
        shutil.rmtree(old, ignore_errors=True)
        for stale in self.complete()[self.keep:]:
            shutil.rmtree(stale)
        return final

    def load(self, path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
        """(state, arrays, logger state) of one checkpoint, after checking every file against the manifest."""
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            for name, meta in manifest["files"].items():
                f = path / name
                if not f.is_file():
                    raise CheckpointError(f"{name} is missing")
                if f.stat().st_size != meta["bytes"]:
                    raise CheckpointError(f"{name} has {f.stat().st_size} bytes, the manifest says {meta['bytes']}")
                if _sha256(f) != meta["sha256"]:
                    raise CheckpointError(f"{name} does not match its SHA-256 in the manifest")
            state = torch.load(path / STATE, map_location="cpu", weights_only=True)
            # memory-mapped: copying into the replay buffer does not hold a second 7 GB copy in memory
            arrays = {name[:-4]: np.load(path / name, mmap_mode="r", allow_pickle=False)
                      for name in manifest["files"] if name.endswith(".npy")}
            logger_state = json.loads((path / LOGGER).read_text())
        except CheckpointError:
            raise
        except (FileNotFoundError, ValueError, KeyError, EOFError, RuntimeError, pickle.UnpicklingError) as e:
            # damage or refused content (json/npy/zip errors are ValueError or RuntimeError); any other error,
            # such as a failing disk or a permission problem, propagates: it says nothing about the checkpoint
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise CheckpointError(f"{type(e).__name__}: {first}") from None
        return state, arrays, logger_state

    @staticmethod
    def load_state(path: Path) -> tuple[dict[str, Any], str]:
        """``state.pt`` of one checkpoint alone (networks, optimizers; not the replay), checked against the manifest,
        and its SHA-256: what another run starts from. Reads only."""
        try:
            meta = json.loads((path / MANIFEST).read_text())["files"][STATE]
            f = path / STATE
            if f.stat().st_size != meta["bytes"] or _sha256(f) != meta["sha256"]:
                raise CheckpointError(f"{STATE} does not match the manifest")
            return torch.load(f, map_location="cpu", weights_only=True), meta["sha256"]
        except CheckpointError:
            raise
        except (FileNotFoundError, ValueError, KeyError, EOFError, RuntimeError, pickle.UnpicklingError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise CheckpointError(f"{type(e).__name__}: {first}") from None

    def load_latest(self) -> tuple[Path, dict[str, Any], dict[str, np.ndarray], dict[str, Any]] | None:
        """The newest checkpoint that loads, or None if there is none. Each unusable one is reported in one line on
        stderr and moved to ``checkpoints/unusable/`` (kept for inspection, out of the way of later saves). If
        checkpoints exist but none loads, ``CheckpointError`` is raised: starting again would discard the run."""
        found = self.complete()
        for i, path in enumerate(found):
            try:
                return (path, *self.load(path))
            except CheckpointError as e:
                moved = self._set_aside(path)
                then = "trying the previous one" if i + 1 < len(found) else "no other checkpoint is left"
                print(f"warning: checkpoint {path} is unusable ({e}); moved to {moved}; {then}",
                      file=sys.stderr, flush=True)
        if found:
            raise CheckpointError(f"none of the {len(found)} checkpoints in {self.dir} loads (all moved to "
                                  f"{self.dir / 'unusable'}); the run was not restarted, so nothing else is lost")
        return None

    def finish(self) -> Path | None:
        """For a complete run: keep only the newest checkpoint, without its replay arrays (the bulk: 7 GB on
        Atari). A finished run is never resumed, and its weights, optimizer and masks stay for analysis. The
        manifest is rewritten before any replay file is removed, so a kill in between leaves a loadable checkpoint.
        Idempotent."""
        kept = self.complete()
        if not kept:
            return None
        for old in kept[1:]:
            shutil.rmtree(old)
        path = kept[0]
        manifest = json.loads((path / MANIFEST).read_text())
        dropped = [name for name in manifest["files"] if name.startswith("replay.") and name.endswith(".npy")]
        if not dropped:
            return path  # already finished: write nothing
        for name in dropped:
            del manifest["files"][name]
        tmp = path / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, path / MANIFEST)
        for name in dropped:
            (path / name).unlink()
        return path

    def clean_partial(self) -> None:
        """Remove hidden folders left by a write that was killed; put back a replaced checkpoint whose replacement
        never arrived."""
        if not self.dir.is_dir():
            return
        for tmp in self.dir.glob(".tmp-step_*"):
            shutil.rmtree(tmp, ignore_errors=True)
        for old in self.dir.glob(".old-step_*"):
            final = self.dir / old.name.removeprefix(".old-")
            if final.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(old, final)

    def _set_aside(self, path: Path) -> Path:
        target = self.dir / "unusable" / f"{path.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        target.parent.mkdir(exist_ok=True)
        os.rename(path, target)
        return target
