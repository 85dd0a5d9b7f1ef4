"""Stop requests from real signals delivered to this process."""

import os
import signal

import pytest

from core.errors import ConfigError
from training.run_folder import exclusive
from training.signals import StopRequest


def test_sigterm_and_sigusr1_set_the_request_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert not stop
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop and stop.name == "SIGUSR1"
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.name == "SIGUSR1"  # the first one wins
    assert signal.getsignal(signal.SIGTERM) is before


def test_submitits_requeue_signal_is_passed_on_even_after_a_sigterm():
    """SLURM may send SIGTERM before submitit's SIGUSR2: the requeue handler must still run."""
    calls = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        with StopRequest() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGUSR2)
            assert calls == [] and stop.name == "SIGUSR2"
        stop.pass_on()
        assert calls == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_a_run_folder_is_locked_against_a_second_process(tmp_path):
    with exclusive(tmp_path):
        with pytest.raises(ConfigError, match="another process is training in this folder"):
            with exclusive(tmp_path):
                pass
    with exclusive(tmp_path):  # released
        pass
