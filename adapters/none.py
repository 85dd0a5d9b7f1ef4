"""``adapter=none``: no adapter. With ``init.from_run`` this is full fine-tuning (the baseline every adapter is
compared with); without it, training from scratch."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.registry import ADAPTERS


@dataclass
class NoAdapterConfig:
    name: str = "none"

    def validate(self) -> None:
        pass


@ADAPTERS.register("none", config=NoAdapterConfig)
def no_adapter(cfg: NoAdapterConfig, train_head: bool):
    return None
