import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

ROOT = Path(__file__).resolve().parent.parent


def run_train(*overrides: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python train.py <overrides>`` as a user runs it, from the repository root."""
    return subprocess.run([sys.executable, "train.py", *overrides], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def compose_cfg():
    """Compose ``conf/`` in-process with Hydra's compose API and return the validated dataclass config."""
    import train  # noqa: F401  (registers the schemas)
    from training.config import to_objects, validate
    from training.preflight import _compose

    def _make(*overrides: str):
        cfg = to_objects(_compose(list(overrides)))
        GlobalHydra.instance().clear()
        validate(cfg)
        return cfg

    return _make
