import os
import subprocess
import sys
from pathlib import Path

if "PYTEST_XDIST_WORKER" in os.environ:  # before torch is imported: workers share the cores instead of each taking all
    _cores = len(os.sched_getaffinity(0))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import pytest  # noqa: E402

import suite  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
suite.register_configs()  # as importing train.py does


def run_train(*overrides: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python train.py <overrides>`` as a user runs it, from the repository root."""
    return subprocess.run([sys.executable, "train.py", *overrides], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def pytest_collection_modifyitems(items):
    """Keep the tests that share a module-scoped fixture (a SLURM or Ray cluster, a finished run) on one xdist
    worker, so that each fixture is built once, as in a one-process run."""
    for item in items:
        defs = getattr(item, "_fixtureinfo", None)
        if defs and any(d.scope == "module" for ds in defs.name2fixturedefs.values() for d in ds):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


@pytest.fixture
def compose_cfg():
    """Compose ``conf/`` in-process with Hydra's compose API and return the validated dataclass config."""
    return lambda *overrides: suite.compose(list(overrides))
