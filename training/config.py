"""The structured config schema (Hydra ConfigStore) and the value checks that run before any work.

Types and key names are enforced by OmegaConf when Hydra composes; ranges and cross-field rules are checked by
``validate``, which raises ``ConfigError`` naming the full key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from agents.dqn import DQNConfig
from agents.networks import ImpalaConfig, MinAtarCNNConfig, MLPConfig, NatureCNNConfig
from agents.rainbow import RainbowConfig
from agents.sac import SACConfig
from envs.atari import AtariConfig
from envs.classic import ClassicConfig
from envs.dmc import DMCConfig
from envs.minatar import MinAtarConfig
from pruning.health import HealthConfig
from pruning.pruner import PruningConfig
from training.checkpoint import CheckpointConfig
from training.errors import ConfigError, require

AGENTS = {"dqn": DQNConfig, "rainbow": RainbowConfig, "sac": SACConfig}
ENVS = {"atari": AtariConfig, "classic": ClassicConfig, "dmc": DMCConfig, "minatar": MinAtarConfig}
NETWORKS = {"nature_cnn": NatureCNNConfig, "impala": ImpalaConfig, "mlp": MLPConfig, "minatar_cnn": MinAtarCNNConfig}
PIXEL_NETWORKS = ("nature_cnn", "impala")
PRUNING = {"gmp": PruningConfig}
DISCRETE_AGENTS = ("dqn", "rainbow")
CONTINUOUS_AGENTS = ("sac",)


@dataclass
class EvalConfig:
    every_env_steps: int = 250_000  # agent steps between evaluations (one Dopamine iteration); always once at the end
    episodes: int = 10


@dataclass
class Config:
    agent: Any = MISSING
    env: Any = MISSING
    network: Any = MISSING
    pruning: Any = MISSING
    sparsity: float = 0.0  # final sparsity s_F of every pruned network; 0 = dense (same code path, no masks)
    eval: EvalConfig = field(default_factory=EvalConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    seed: int = 0
    total_env_steps: int = 10_000_000  # agent steps: 40M frames on Atari, the paper's budget
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    torch_threads: int = 0  # 0 keeps torch's default (one per physical core)
    log_every_env_steps: int = 1_000
    progress: bool = True


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, schemas in (("agent", AGENTS), ("env", ENVS), ("network", NETWORKS), ("pruning", PRUNING)):
        for name, node in schemas.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


def to_objects(cfg: DictConfig) -> Config:
    """The composed config as dataclass instances (enums resolved, interpolations evaluated)."""
    return OmegaConf.to_object(cfg)


def validate(cfg: Config) -> None:
    """Raise ``ConfigError`` for the first value the suite refuses. Cheap: runs before Hydra creates a run folder."""
    require(cfg.total_env_steps >= 1, "total_env_steps", cfg.total_env_steps, "must be a positive integer")
    require(0.0 <= cfg.sparsity < 1.0, "sparsity", cfg.sparsity, "must be in [0, 1) (0 = dense)")
    require(cfg.seed >= 0, "seed", cfg.seed, "must be a non-negative integer")
    require(cfg.eval.every_env_steps >= 1, "eval.every_env_steps", cfg.eval.every_env_steps, "must be >= 1")
    require(cfg.eval.episodes >= 1, "eval.episodes", cfg.eval.episodes, "must be >= 1")
    require(cfg.log_every_env_steps >= 1, "log_every_env_steps", cfg.log_every_env_steps, "must be >= 1")
    require(cfg.torch_threads >= 0, "torch_threads", cfg.torch_threads, "must be >= 0 (0 = torch's default)")
    require(cfg.device == "auto" or cfg.device == "cpu" or cfg.device.startswith("cuda"), "device", cfg.device,
            "allowed: auto, cpu, cuda, cuda:N")
    for prefix in ("agent", "env", "network", "pruning", "health", "checkpoint"):
        node = getattr(cfg, prefix)
        if hasattr(node, "name"):
            require(node.name == type(node).name, f"{prefix}.name", node.name,
                    f"it is fixed by the group option; choose {prefix}=<option> instead")
        try:
            node.validate()
        except ConfigError as e:
            raise e.under(prefix) from None
    from envs import frame_stack

    require(cfg.agent.replay_capacity > cfg.agent.n_step + frame_stack(cfg.env), "agent.replay_capacity",
            cfg.agent.replay_capacity, f"must exceed agent.n_step ({cfg.agent.n_step}) + env.frame_stack "
            f"({frame_stack(cfg.env)})")
    continuous = env_is_continuous(cfg.env)
    if cfg.agent.name in DISCRETE_AGENTS:
        require(not continuous, "env.id", cfg.env.id,
                f"agent={cfg.agent.name} needs discrete actions; {cfg.env.id} has continuous actions (use agent=sac)")
    if cfg.agent.name in CONTINUOUS_AGENTS:
        require(continuous, "env.id", cfg.env.id, f"agent={cfg.agent.name} needs continuous actions; {cfg.env.id} "
                f"has discrete actions (use agent=dqn or agent=rainbow, or env=dmc)")
    if cfg.sparsity > 0:
        from training.loop import count_updates

        a = cfg.agent
        require(count_updates(cfg.total_env_steps, a.learning_starts, a.update_period) >= 1, "sparsity",
                cfg.sparsity, f"pruning needs gradient updates, and total_env_steps={cfg.total_env_steps} ends before "
                f"the first one (agent.learning_starts={a.learning_starts})")
    require(not (cfg.network.name in PIXEL_NETWORKS and cfg.env.name in ("classic", "dmc")), "network",
            cfg.network.name, f"env={cfg.env.name} has vector observations; use network=mlp")
    require(not (cfg.network.name in PIXEL_NETWORKS and cfg.env.name == "minatar"), "network", cfg.network.name,
            "env=minatar has 10x10 observations; use network=minatar_cnn (or mlp)")
    require(cfg.network.name != "minatar_cnn" or cfg.env.name == "minatar", "network", cfg.network.name,
            f"network=minatar_cnn reads MinAtar's 0/1 grids; for env={cfg.env.name} use "
            f"{'nature_cnn or impala' if cfg.env.name == 'atari' else 'mlp'}")


def env_is_continuous(env_cfg) -> bool:
    """Whether the env's actions are continuous, from the config alone (no env is built)."""
    if env_cfg.name == "classic":
        from envs.classic import CONTINUOUS_IDS

        return env_cfg.id in CONTINUOUS_IDS
    return env_cfg.name == "dmc"
