"""The callback protocol of the training loop (after Stable-Baselines3's lifecycle).

The loop calls, in order: ``on_train_start`` once (after a resume, with everything restored); ``on_env_step`` after
every env step (the transition is in replay); ``on_update_end`` after every gradient update, with its
``UpdateResult``; ``on_eval_end`` after each evaluation; ``on_train_end`` once. A callback that changes weights at
every optimizer step (pruning masks, regrowth, moment resets) does it in optimizer-step hooks it installs in
``on_train_start`` (see ``core.protocols.Agent``), so that whatever the agent derives from the stepped weights in
the same update (a target copy, a Polyak average) sees the change. Callbacks that hold state return it from
``state_dict``; the loop checkpoints it, and gives it back through ``load_state_dict`` before ``on_train_start``.
"""

from __future__ import annotations

from typing import Any

from core.protocols import TrainerView, UpdateResult


class Callback:
    #: Holds no state and may be switched on or off between a run and its resume: left out of checkpoints (such a
    #: callback comes after every other, so theirs keep their place).
    outside_checkpoints: bool = False

    def on_train_start(self, trainer: TrainerView) -> None:
        pass

    def on_env_step(self, trainer: TrainerView) -> None:
        pass

    def on_update_end(self, trainer: TrainerView, result: UpdateResult) -> None:
        pass

    def on_eval_end(self, trainer: TrainerView, metrics: dict[str, float]) -> None:
        pass

    def on_train_end(self, trainer: TrainerView) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
