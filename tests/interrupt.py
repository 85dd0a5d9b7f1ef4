"""Run ``train.py`` and send a real signal to the run's own process at an exact point, for the resume tests.

``python -m tests.interrupt SIGNAL step N <overrides>``: after agent step N (before its evaluation and checkpoint); in
an on-policy run, after the vector step that reaches agent step N, mid-rollout unless N ends one.
``python -m tests.interrupt SIGNAL eval N <overrides>``: during the evaluation at agent step N, at its 5th action.
``python -m tests.interrupt SIGNAL update N <overrides>``: after gradient update N of an offline run.
``SIGNAL`` may be ``SIGINTx2``: Ctrl-C pressed twice in a row.
``train.py`` runs by its full path, so the harness works from any folder (a default run folder lands under the
current one) and the command a stopped run prints runs as it is from there.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

import training.loop as loop
import training.offline as offline
import training.on_policy as on_policy


def main() -> None:
    name, _, times = sys.argv[1].partition("x")
    sig, where, at, times = signal.Signals[name], sys.argv[2], int(sys.argv[3]), int(times or 1)
    if where == "step":
        step = loop.Trainer._step

        def _step(trainer):
            step(trainer)
            if trainer.env_step == at:
                for _ in range(times):
                    os.kill(os.getpid(), sig)

        loop.Trainer._step = _step
        vector_step = on_policy.OnPolicyTrainer._vector_step

        def _vector_step(trainer):
            vector_step(trainer)
            if trainer.env_step == at:
                for _ in range(times):
                    os.kill(os.getpid(), sig)

        on_policy.OnPolicyTrainer._vector_step = _vector_step
    elif where == "update":
        update = offline.OfflineTrainer._update

        def _update(trainer):
            update(trainer)
            if trainer.updates == at:
                for _ in range(times):
                    os.kill(os.getpid(), sig)

        offline.OfflineTrainer._update = _update
    else:
        evaluate = loop.evaluate

        def _evaluate(agent, env, episodes, env_step, should_stop, video=None):
            if env_step != at:
                return evaluate(agent, env, episodes, env_step, should_stop, video)
            act, calls = agent.act, [0]

            def counting_act(*args, **kwargs):
                calls[0] += 1
                if calls[0] == 5:
                    for _ in range(times):
                        os.kill(os.getpid(), sig)
                return act(*args, **kwargs)

            agent.act = counting_act
            try:
                return evaluate(agent, env, episodes, env_step, should_stop, video)
            finally:
                agent.act = act

        loop.evaluate = _evaluate
    train = str(Path(__file__).resolve().parent.parent / "train.py")
    sys.argv = [train, *sys.argv[4:]]
    runpy.run_path(train, run_name="__main__")  # as a user runs it (Hydra finds conf/ next to train.py)


if __name__ == "__main__":
    main()
