"""Which device a run trains on, and the GPU settings it asks for.

Kept out of ``train.py`` (Hydra's ``__main__``): launchers that pickle the task function by value (Ray, submitit,
joblib's loky) must reach ``torch.backends.cudnn`` by reference, through an importable module."""

from __future__ import annotations

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


def resolve_device(name: str, job: int | None = None, gpus: int | None = None) -> torch.device:
    """``auto``: the CPU where no GPU is visible; in a sweep's job number ``job``, GPU ``job mod gpus`` (the visible
    GPUs: a joblib sweep on one machine spreads its jobs; a SLURM job sees only its own GPU, cuda:0); else cuda."""
    if name != "auto":
        return torch.device(name)
    gpus = torch.cuda.device_count() if gpus is None else gpus
    if gpus == 0:
        return torch.device("cpu")
    return torch.device("cuda" if job is None else f"cuda:{job % gpus}")


def sweep_job() -> int | None:
    """This job's number in a Hydra multirun (None for a single run, or outside Hydra)."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return int(HydraConfig.get().job.num)
    return None


def cuda_settings(cfg) -> None:
    """The GPU settings the config asks for (both off by default: the CPU's numbers, run to run)."""
    torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
    torch.backends.cudnn.allow_tf32 = cfg.tf32
    torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
