import subprocess
import sys
from pathlib import Path

import pytest

import suite

ROOT = Path(__file__).resolve().parent.parent
suite.register_configs()  # as importing train.py does


def run_train(*overrides: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python train.py <overrides>`` as a user runs it, from the repository root."""
    return subprocess.run([sys.executable, "train.py", *overrides], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def compose_cfg():
    """Compose ``conf/`` in-process with Hydra's compose API and return the validated dataclass config."""
    return lambda *overrides: suite.compose(list(overrides))
