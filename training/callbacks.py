"""The callback protocol of the training loop (after Stable-Baselines3's lifecycle).

The loop calls, in order: ``on_train_start`` once; ``on_env_step`` after every env step (and after the
transition is in replay); ``on_update_end`` after every optimizer step, with the update's metrics (this is where
pruning re-applies its masks); ``on_eval_end`` after each evaluation; ``on_train_end`` once. Each hook receives
the ``Trainer``, whose ``env_step`` and ``updates`` counters are the only clocks. Callbacks that hold state return
it from ``state_dict`` so a resumed run continues where it stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.loop import Trainer


class Callback:
    def on_train_start(self, trainer: Trainer) -> None:
        pass

    def on_env_step(self, trainer: Trainer) -> None:
        pass

    def on_update_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        pass

    def on_eval_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        pass

    def on_train_end(self, trainer: Trainer) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
