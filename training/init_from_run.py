"""Start a run from the networks of another run of this suite (``init.from_run``): full fine-tuning with
``adapter=none``, or the frozen backbone under an adapter. The source folder is only read: its newest complete
checkpoint (or the one at ``init.step``), ``state.pt`` alone, checked against its manifest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from core.callbacks import Callback
from core.errors import ConfigError, require
from core.protocols import TrainerView
from core.run_files import CONFIG
from training.checkpoint import Checkpointer, CheckpointError


@dataclass
class InitConfig:
    from_run: str = ""  # a run folder of this suite whose networks this run starts from; "" = from scratch
    step: str = "latest"  # latest, or the agent step of one of its checkpoints

    def validate(self) -> None:
        require(self.step == "latest" or str(self.step).isdigit(), "step", self.step,
                "allowed: latest or an agent step (an integer)")


@dataclass
class Source:
    path: str
    step: int
    sha256: str  # of the state.pt it loaded
    state: dict  # the agent's state at that checkpoint (networks by name, targets, optimizers)

    def summary(self) -> dict:
        return {"from_run": self.path, "step": self.step, "sha256": self.sha256}


def read_source(cfg: InitConfig) -> Source:
    """The checkpoint ``cfg`` names; ``ConfigError`` (key ``init.from_run`` or ``init.step``) when there is none."""
    src = Path(cfg.from_run).expanduser()
    require(src.is_dir(), "init.from_run", str(src), "no such folder")
    require((src / CONFIG).is_file(), "init.from_run", str(src), f"not a run folder of this suite (no {CONFIG})")
    checkpoints = Checkpointer(src / "checkpoints", 1)
    steps = checkpoints.steps()
    require(bool(steps), "init.from_run", str(src), "that run has no complete checkpoint to start from")
    path = checkpoints.at_step(None if cfg.step == "latest" else int(cfg.step))
    have = ", ".join(map(str, steps))
    require(path is not None, "init.step", cfg.step, f"{src} has checkpoints at agent steps {have}")
    try:
        state, sha = Checkpointer.load_state(path)
    except CheckpointError as e:
        raise ConfigError("init.from_run", str(src), f"its checkpoint {path.name} cannot be read: {e}") from None
    return Source(str(src), int(path.name.removeprefix("step_")), sha, state["agent"])


def _override_value(value: Any) -> str:
    """A plain config value as Hydra's override grammar writes it."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def inherited_overrides(overrides: list[str], compose: Callable[[list[str]], Any]) -> list[str]:
    """What a run started from ``init.from_run`` takes from its source when the command leaves it unsaid: the agent,
    the network (every key of it) and, when the command names neither ``env`` nor ``env.id``, the env and its game.
    Returned as overrides to add, only those that change the composed config; a key the command sets is never
    touched, so a contradiction is still refused by the fit check. Nothing for a sweep over sources, a missing
    source (the check names it) or a command that does not compose (preflight names that)."""
    given = {o.lstrip("+~").partition("=")[0]: o.partition("=")[2] for o in overrides if "=" in o}
    src = given.get("init.from_run", "")
    if not src or "," in src or not (Path(src).expanduser() / CONFIG).is_file():
        return []
    theirs = OmegaConf.to_container(OmegaConf.load(Path(src).expanduser() / CONFIG))
    try:
        ours = compose(overrides)
        extra = [f"{group}={theirs[group]['name']}" for group in ("agent", "network", "env")
                 if group not in given and not (group == "env" and "env.id" in given)
                 and theirs[group]["name"] != ours[group]["name"]]
        if "env" not in given and "env.id" not in given and theirs["env"]["id"] != compose(overrides + extra).env.id:
            extra.append(f"env.id={theirs['env']['id']}")
        ours = OmegaConf.to_container(compose(overrides + extra).network, resolve=True, enum_to_str=True)
    except Exception:  # noqa: BLE001 - the command's own mistake: preflight reports it in one line
        return []
    if ours["name"] != theirs["network"]["name"]:
        return extra  # another network named on the command line: the fit check refuses it
    return extra + [f"network.{key}={_override_value(value)}" for key, value in theirs["network"].items()
                    if f"network.{key}" not in given and key in ours and ours[key] != value]


class InitFromRun(Callback):
    """Before anything else, loads the source's networks into the agent's networks and their targets (unless the
    run is resumed: its checkpoint has them). Tensors an adapter added are not in the source and keep their init;
    ``skip`` names prefixes left as built (a new head for another action count)."""

    def __init__(self, source: Source, skip: tuple[str, ...] = ()):
        self.source, self.skip = source, skip

    @torch.no_grad()
    def on_train_start(self, trainer: TrainerView) -> None:
        if trainer.resumed:
            return
        targets = trainer.agent.target_networks()
        for name, net in trainer.agent.networks().items():
            state = {k: v for k, v in self.source.state[name].items() if not k.startswith(self.skip)}
            _, unexpected = net.load_state_dict(state, strict=False)
            if unexpected:
                raise ConfigError("init.from_run", self.source.path, f"its {name} network has tensors this one lacks: "
                                  f"{', '.join(unexpected)}")
            if name in targets:
                targets[name].load_state_dict(state, strict=False)
