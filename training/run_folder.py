"""Where a run lives, and whether a command may use that folder: a new run, a resume of the same config, or a run
already complete.

A run's default folder is named from its command line alone (``default_name``), with no timestamp, so the same
command always reaches the same folder: running it again resumes the run, or says the run is complete. The check is
made twice: by the preflight (before Hydra writes anything into the folder), and by the job itself (which also covers
each job of a multirun sweep).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from omegaconf import DictConfig, OmegaConf

from core.errors import ConfigError
from core.run_files import CONFIG, SUMMARY

FREE_KEYS = ("progress", "checkpoint", "require_clean_tree")  # may change between the first start and a resume
# may change too, and the resume says so: the same arithmetic in other kernels (numbers agree to float rounding)
SWITCHES = ("device", "pruning.sparse_compute")
# keys added after run folders existed, with the value that reproduces what the code did before them: a stored
# config without the key is that value, so older runs still resume (and finished ones are still skipped)
ADDED = {"agent.optimizer": "adam", "agent.rmsprop_alpha": 0.95, "agent.rmsprop_eps": 0.01,
         "agent.rmsprop_centered": True, "network.init": "auto", "tf32": False, "cudnn_benchmark": False,
         "env.minimal_action_set": True, "network.activation": "relu"}


# keys the default folder's name shows in words: the agent, the env id, the method and sparsity, offline, the seed
NAMED = ("agent", "env", "env.id", "sparsity", "seed", "offline")
# keys that are not part of a run's identity: where its folders go, and how it is launched
UNNAMED = ("hydra", "sweep")


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _under(key: str, keys: tuple[str, ...]) -> bool:
    return any(key == k or key.startswith((f"{k}.", f"{k}/")) for k in keys)


def default_name(cfg, overrides: list[str]) -> str:
    """``<agent>_<env.id>[_<method><sparsity>][_offline]_s<seed>[_<hash>]``: what ran, in words, and a short hash
    of the command line's other overrides (sorted, each value as the config resolved it, so ``agent.lr=1e-3`` and
    ``agent.lr=0.001`` are one run). The keys that may change between the start and a resume (``FREE_KEYS``,
    ``SWITCHES``) are left out, so ``progress=false`` added to a resume still reaches the run. The method shows only
    when the run prunes; a ``pruning=`` override of a dense run goes into the hash. ``cfg`` is the composed config
    (Hydra's own node, if any, is not read)."""
    sparse = float(cfg.sparsity) > 0
    parts = [str(cfg.agent.name), str(cfg.env.id).replace("/", "-")]
    if sparse:
        parts.append(f"{cfg.pruning.name}{float(cfg.sparsity):g}")
    if cfg.offline.dataset:
        parts.append("offline")
    parts.append(f"s{cfg.seed}")
    shown = NAMED + (("pruning",) if sparse else ())
    rest = sorted(_normalised(cfg, o) for o in overrides
                  if _key(o) not in shown + SWITCHES and not _under(_key(o), FREE_KEYS + UNNAMED))
    if rest:
        parts.append(hashlib.sha256("\n".join(rest).encode()).hexdigest()[:8])
    return "_".join(parts)


def _normalised(cfg, override: str) -> str:
    """``key=value`` with the value the config holds (a group choice, such as ``network=impala``, as given)."""
    key = _key(override)
    if override.startswith("~"):
        return override
    value = OmegaConf.select(cfg, key, default=None)
    if value is None or isinstance(value, DictConfig):
        return f"{key}={override.split('=', 1)[1] if '=' in override else ''}"
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return f"{key}={json.dumps(value, sort_keys=True, default=str)}"


def run_name_resolver(*, _root_) -> str:
    """``${run_name:}`` in ``hydra.run.dir``: the default folder's name, from the config Hydra is composing and its
    command-line overrides."""
    return default_name(_root_, list(_root_.hydra.overrides.task))


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so a kill never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold a lock on the run folder while training: a second process (a double launch) fails at once instead
    of both writing the same checkpoints and logs. The lock goes with the process, however it ends."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError("hydra.run.dir", str(run_dir), "another process is training in this folder; wait "
                              "for it to end or choose another folder") from None
        yield


def plain(cfg) -> dict:
    """A composed config as plain YAML values, as ``config.yaml`` stores it."""
    return OmegaConf.to_container(OmegaConf.create(OmegaConf.to_yaml(cfg, resolve=True)))


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def differences(stored: dict, current: dict) -> list[str]:
    b = _flat(current)
    a = {**{k: v for k, v in ADDED.items() if k in b}, **_flat(stored)}
    keys = sorted(k for k in a.keys() | b.keys()
                  if k.split(".")[0] not in FREE_KEYS and k not in SWITCHES and a.get(k) != b.get(k))
    return [f"{k}: {a.get(k, '<absent>')} -> {b.get(k, '<absent>')}" for k in keys]


def switched(run_dir: Path, cfg) -> list[str]:
    """The ``SWITCHES`` a resume flips against the run's stored config, as ``key: old -> new``."""
    a, b = _flat(stored_config(run_dir) or {}), _flat(plain(cfg))
    return [f"{k}: {a.get(k, False)} -> {b.get(k, False)}" for k in SWITCHES if a.get(k, False) != b.get(k, False)]


def stored_config(run_dir: Path) -> dict | None:
    path = run_dir / CONFIG
    return plain(OmegaConf.load(path)) if path.is_file() else None


def check_same_config(run_dir: Path, cfg, key: str = "hydra.run.dir") -> bool:
    """True if ``run_dir`` already holds a run of this config; raises ``ConfigError`` if it holds another one."""
    stored = stored_config(run_dir)
    if stored is None:
        return False
    diff = differences(stored, plain(cfg))
    if diff:
        shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
        raise ConfigError(key, str(run_dir), f"it holds a run with a different config ({shown}); re-run with that "
                          f"run's overrides to resume it, or choose another {key}")
    return True


def complete_note(run_dir: Path) -> str:
    """What rerunning a finished run prints: that nothing is done, where its summary is, and its headline numbers."""
    summary = json.loads((run_dir / SUMMARY).read_text())
    numbers = ", ".join(f"{k.replace('_', ' ')} {summary[k]:.4g}" for k in ("final_eval_return", "sparsity")
                        if isinstance(summary.get(k), (int, float)))
    return (f"run already complete: {run_dir / SUMMARY} ({numbers}); nothing to do. To train this config again, "
            f"delete the folder or give another hydra.run.dir=<folder>")


def existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_writable(path: Path, key: str) -> None:
    """Fail now, not after Hydra has started, if ``path`` cannot be created or written."""
    base = existing_ancestor(path)
    if not base.is_dir():
        raise ConfigError(key, str(path), f"{base} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as e:
        raise ConfigError(key, str(path), f"{base} is not writable ({e.strerror}); choose a writable folder") from None


def check_space(path: Path, need_bytes: int, what: str, key: str) -> None:
    free = shutil.disk_usage(existing_ancestor(path)).free
    if need_bytes > free:
        raise ConfigError(key, str(path), f"not enough disk space: {what} need about {need_bytes / 1e9:.2f} GB, "
                          f"{free / 1e9:.2f} GB are free there; lower checkpoint.keep, set checkpoint.replay=false, "
                          f"or choose another {key}")


def check_memory(need_bytes: int, jobs: int, key: str, value: object, fix: str) -> None:
    """Fail now, not hours later when the replay buffer has filled and the kernel kills the run, if ``jobs`` runs
    of ``need_bytes`` each do not fit in the memory available now."""
    available = psutil.virtual_memory().available
    if need_bytes * jobs > available:
        each = f" for each of {jobs} parallel jobs" if jobs > 1 else ""
        raise ConfigError(key, value, f"the replay buffer needs about {need_bytes / 1e9:.2f} GB of memory{each}, "
                          f"{available / 1e9:.2f} GB are available; {fix}")
