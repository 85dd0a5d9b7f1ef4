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


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the marks into the test ids
def pytest_collection_modifyitems(items):
    """Under xdist, keep the tests that share a module-scoped fixture (a SLURM or Ray cluster, a finished run) on one
    worker, so that each fixture is built once and two clusters never contend for the same ports; and hand out the
    minutes-long learning runs first, so that no worker starts one while the other has nothing left."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    for item in items:
        defs = getattr(item, "_fixtureinfo", None)
        if defs and any(d.scope == "module" for ds in defs.name2fixturedefs.values() for d in ds):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_configure(config):
    """xdist groups a test through a suffix it writes into the test's id; pytest 9.2 keeps the id in another field,
    so with pytest-xdist 3.8.0 a group's tests spread over the workers (two SLURM clusters on one set of ports, then
    a hung sweep). Refuse that pairing in one line before any test runs."""
    if config.getoption("dist", "no") != "loadgroup" or "PYTEST_XDIST_WORKER" in os.environ:
        return
    from importlib.metadata import version
    if version("pytest-xdist") == "3.8.0" and tuple(int(p) for p in pytest.__version__.split(".")[:2]) >= (9, 2):
        raise pytest.UsageError(f"pytest {pytest.__version__} with pytest-xdist 3.8.0 ignores xdist_group; install "
                                "the test extra's pins: pip install -e '.[test]'")


@pytest.fixture
def compose_cfg():
    """Compose ``conf/`` in-process with Hydra's compose API and return the validated dataclass config."""
    return lambda *overrides: suite.compose(list(overrides))
