"""The composition root: the one module (with ``train.py``) that knows every package.

It holds the top-level config schema, registers every plugin's schema with Hydra, checks the rules between config
fields (which agent fits which env and network, from what each plugin declared when it registered), and builds the
parts a config names. Everything else depends only on ``core`` and on what its own nature needs.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import MISSING, DictConfig, OmegaConf
from torch import nn

from adapters.merge import merged_state_dict
from adapters.registry import ADAPTERS
from agents import replay_dataset as logged
from agents.registry import AGENTS, NETWORKS
from agents.replay import ReplayBuffer, bookkeeping_bytes
from core.callbacks import Callback
from core.errors import ConfigError, UnknownKeyError, elsewhere, require
from core.protocols import Agent, ResumableEnv
from core.registry import Registry
from core.run_files import CONFIG, INIT, is_complete
from core.spaces import ActionKind
from envs import frame_stack, make_env, slot_sizes
from envs.registry import ENVS
from envs.snapshot import EpisodeRecorder
from envs.video import EpisodeVideo, frames_per_second, video_unavailable
from pruning.health import HealthCallback, HealthConfig
from pruning.lottery import Lottery, TicketSource
from pruning.measure import weight_sparsity
from pruning.method import PruningMethod
from pruning.redo import ReDo, ReDoConfig
from pruning.registry import METHODS
from pruning.reset import Reset, ResetConfig
from pruning.sparse_compute import SparseCompute
from pruning.sparse_inference import SparseInference
from training.checkpoint import CheckpointConfig, Checkpointer, CheckpointError
from training.cost import RunShape, core_seconds
from training.init_from_run import InitConfig, InitFromRun, Source, read_source
from training.logger import LoggerConfig
from training.loop import EvalConfig, LoopConfig, count_updates
from training.offline import OfflineConfig
from training.preflight import compose as compose_conf
from training.preflight import config_groups, flat_keys
from training.preflight import preflight as check_command_line
from training.run_folder import run_name_resolver
from training.run_info import check_clean_tree

REGISTRIES: dict[str, Registry] = {"agent": AGENTS, "env": ENVS, "network": NETWORKS, "pruning": METHODS,
                                   "adapter": ADAPTERS}


@dataclass
class Config:
    agent: Any = MISSING
    env: Any = MISSING
    network: Any = MISSING
    pruning: Any = MISSING
    adapter: Any = MISSING  # none, or a parameter-efficient adapter on the frozen networks of init.from_run
    sparsity: float = 0.0  # final sparsity s_F of every pruned network; 0 = dense (same code path, no masks)
    eval: EvalConfig = field(default_factory=EvalConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    redo: ReDoConfig = field(default_factory=ReDoConfig)  # ReDo recycling of dormant units, beside any method
    reset: ResetConfig = field(default_factory=ResetConfig)  # periodic reset of the last layer, beside any method
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    init: InitConfig = field(default_factory=InitConfig)  # start from another run's networks
    logger: LoggerConfig = field(default_factory=LoggerConfig)  # experiment trackers beside TensorBoard
    # train from logged replay (offline.dataset), or write an online run's (offline.write_dataset)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    seed: int = 0  # seeds torch, the agent's and replay's RNGs, and the envs
    total_env_steps: int = 10_000_000  # agent steps: 40M frames on Atari, the paper's budget
    device: str = "auto"  # auto | cpu | cuda | cuda:N; auto in a sweep: GPU (job number mod the visible GPUs)
    tf32: bool = False  # CUDA: TF32 matmuls and convolutions (faster on Ampere and later, ~1e-3 relative rounding)
    cudnn_benchmark: bool = False  # CUDA: cuDNN picks its fastest convolution per shape (not deterministic)
    torch_threads: int = 0  # 0 keeps torch's default (one per physical core)
    log_every_env_steps: int = 1_000  # agent steps between rows of losses and SPS
    progress: bool = True  # the progress bar (steps, SPS, last return, ETA)
    require_clean_tree: bool = False  # refuse to start from uncommitted code (the study presets, for results/)

    @property
    def replay_in_checkpoints(self) -> bool:
        """Offline checkpoints never hold the replay: it is the dataset, read again on resume."""
        return self.checkpoint.replay and not self.offline.enabled


def register_configs() -> None:
    """The top-level schema as ``base_config`` and each plugin's as ``schema/<group>/<name>``, which the YAML files
    in ``conf/<group>/`` extend; and the resolvers ``conf/config.yaml`` uses: ``run_name`` (the default run folder)
    and ``config_groups`` (``--help``)."""
    OmegaConf.register_new_resolver("run_name", run_name_resolver, replace=True)
    OmegaConf.register_new_resolver("config_groups", config_groups, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, registry in REGISTRIES.items():
        for spec in registry.specs():
            cs.store(group=f"schema/{group}", name=spec.name, node=spec.config)


def to_objects(cfg: DictConfig) -> Config:
    """The composed config as dataclass instances (enums resolved, interpolations evaluated)."""
    return OmegaConf.to_object(cfg)


def plain(node: Any) -> dict:
    """A config dataclass (or the whole ``Config``) as plain Python containers, enums as their names: what run
    folders, exports and trackers store."""
    return OmegaConf.to_container(OmegaConf.structured(node), enum_to_str=True)


def typed(registry: Registry, node: Any) -> DictConfig:
    """One group's stored node (``{"name": ..., ...}``) merged onto its plugin's schema."""
    return OmegaConf.merge(OmegaConf.structured(registry.get(node["name"]).config), node)


def config_from_run(dcfg: DictConfig) -> Config:
    """A run folder's ``config.yaml`` (resolved, untyped) as objects: each group's node merged onto its plugin's
    schema, the rest onto the top-level one, so types and enums come back and a misspelt key is refused."""
    base = OmegaConf.structured(Config)
    for group, registry in REGISTRIES.items():
        base[group] = typed(registry, dcfg[group])
    return to_objects(OmegaConf.merge(base, {k: v for k, v in dcfg.items() if k not in REGISTRIES}))


def check_known_keys(node: DictConfig, path: str = "", root: DictConfig | None = None) -> None:
    """Refuse a key its schema lacks. Hydra refuses ``agent.lrr=...`` itself, but ``+agent.bogus=1`` adds the key,
    and the dataclasses would carry it unread: the run would train as if nothing was said. A key that lives
    elsewhere (``+lr=1e-3``, ``+pruning.sparsity=0.9``) is named where it lives."""
    root = node if root is None else root
    kind = OmegaConf.get_type(node)
    known = {f.name for f in fields(kind)} if is_dataclass(kind) else None
    for key, value in node.items_ex(resolve=False):
        full_key = f"{path}.{key}" if path else str(key)
        if known is not None and key not in known:
            shown = value if not isinstance(value, DictConfig) else None
            raise UnknownKeyError(full_key, sorted(known), elsewhere(full_key, shown, flat_keys(root)))
        if isinstance(value, DictConfig):
            check_known_keys(value, full_key, root)


def checked(cfg: DictConfig) -> Config:
    """The composed config as objects, after ``validate``."""
    check_known_keys(cfg)
    objects = to_objects(cfg)
    validate(objects)
    return objects


def device_unavailable(name: str) -> str | None:
    """Why ``device=name`` cannot run on this machine, naming what it has (None if it can): found before any work,
    not at the first ``.to(device)`` after the run folder exists."""
    if name in ("auto", "cpu"):
        return None
    try:
        index = torch.device(name).index
    except RuntimeError:
        return "allowed: auto, cpu, cuda, cuda:N"
    if not torch.cuda.is_available():
        what = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible to this process"
        return f"{what}; allowed here: auto, cpu"
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        return f"this machine has {count} GPU(s): allowed: auto, cpu, cuda, cuda:0 to cuda:{count - 1}"
    return None


def validate(cfg: Config) -> None:
    """Raise ``ConfigError`` for the first value the suite refuses. Runs before Hydra creates a run folder: cheap, but
    with ``init.from_run`` it reads that run's checkpoint and builds this run's env and agent to compare them."""
    require(cfg.total_env_steps >= 1, "total_env_steps", cfg.total_env_steps, "must be a positive integer")
    require(0.0 <= cfg.sparsity < 1.0, "sparsity", cfg.sparsity, "must be in [0, 1) (0 = dense)")
    require(cfg.seed >= 0, "seed", cfg.seed, "must be a non-negative integer")
    require(cfg.log_every_env_steps >= 1, "log_every_env_steps", cfg.log_every_env_steps, "must be >= 1")
    require(cfg.torch_threads >= 0, "torch_threads", cfg.torch_threads, "must be >= 0 (0 = torch's default)")
    require(cfg.device == "auto" or cfg.device == "cpu" or cfg.device.startswith("cuda"), "device", cfg.device,
            "allowed: auto, cpu, cuda, cuda:N")
    why = device_unavailable(cfg.device)
    require(why is None, "device", cfg.device, why)
    for prefix in ("agent", "env", "network", "pruning", "adapter", "eval", "health", "redo", "reset", "checkpoint",
                   "init", "logger", "offline"):
        node = getattr(cfg, prefix)
        if prefix in REGISTRIES:
            REGISTRIES[prefix].get(node.name)  # a YAML option whose plugin is missing
            require(node.name == type(node).name, f"{prefix}.name", node.name,
                    f"it is fixed by the group option; choose {prefix}=<option> instead")
        try:
            node.validate()
        except ConfigError as e:
            raise e.under(prefix) from None
    check_pairing(cfg)
    compute = getattr(cfg.pruning, "sparse_compute", False)  # a plugin's schema need not extend MethodConfig
    require(compute is False or compute is True or compute == "auto", "pruning.sparse_compute", compute,
            "allowed: false, auto, true")
    if cfg.eval.video:
        why = video_unavailable(cfg.env)
        require(why is None, "eval.video", True, why)
    if cfg.logger.wandb:
        why = wandb_unavailable()
        require(why is None, "logger.wandb", True, why)
    if on_policy(cfg):
        check_on_policy(cfg)
    else:
        require(cfg.agent.replay_capacity > cfg.agent.n_step + frame_stack(cfg.env), "agent.replay_capacity",
                cfg.agent.replay_capacity, f"must exceed agent.n_step ({cfg.agent.n_step}) + env.frame_stack "
                f"({frame_stack(cfg.env)})")
    if cfg.redo.enabled and not NETWORKS.get(cfg.network.name).plain_features:
        fits = ", ".join(f"network={s.name}" for s in NETWORKS.specs() if s.plain_features)
        raise ConfigError("redo.enabled", True, f"network={cfg.network.name} has residual paths, through which ReDo's "
                          f"map of incoming and outgoing weights is not written; ReDo works with {fits}")
    if cfg.adapter.name != "none":
        require(cfg.init.from_run != "", "adapter", cfg.adapter.name, "an adapter trains on a frozen trained network: "
                "give init.from_run=<run dir> (a run of this suite)")
        require(cfg.sparsity == 0, "sparsity", cfg.sparsity, f"pruning the adapter itself is not supported yet; "
                f"adapter={cfg.adapter.name} keeps a pruned source's zeros with sparsity=0")
    if cfg.init.from_run:
        init_plan(cfg)
    if cfg.pruning.name == "lottery":
        check_ticket_source(cfg)
    if METHODS.get(cfg.pruning.name).sparse_from_start:
        require(cfg.sparsity > 0, "sparsity", cfg.sparsity, f"pruning={cfg.pruning.name} trains a sparse network from "
                "the first step: give a sparsity in (0, 1) (a dense baseline is pruning=gmp sparsity=0)")
    if cfg.offline.write_dataset:
        discrete = [s.name for s in AGENTS.specs() if s.actions == ActionKind.discrete]
        require(cfg.agent.name in discrete, "offline.write_dataset", cfg.offline.write_dataset,
                f"the DQN Replay Dataset's format holds discrete actions: agent={'|'.join(discrete)} can write it")
    if cfg.offline.enabled:
        check_offline(cfg)
    elif cfg.sparsity > 0 and not on_policy(cfg):
        a = cfg.agent
        require(count_updates(cfg.total_env_steps, a.learning_starts, a.update_period) >= 1, "sparsity",
                cfg.sparsity, f"pruning needs gradient updates, and total_env_steps={cfg.total_env_steps} ends before "
                f"the first one (agent.learning_starts={a.learning_starts})")
    schedule_warning(cfg)  # refuses a schedule no setting could run as meant; the job prints the warning


def total_updates(cfg: Config) -> int:
    """The run's gradient updates: offline its budget, online one every ``agent.update_period`` steps after
    ``agent.learning_starts``, on-policy (PPO) every epoch's minibatches of every whole rollout."""
    if on_policy(cfg):
        a = cfg.agent
        return cfg.total_env_steps // a.batch_size * a.update_epochs * a.num_minibatches
    loop = loop_config(cfg)
    return count_updates(loop.total_env_steps, loop.learning_starts, loop.update_period)


def schedule_warning(cfg: Config) -> str | None:
    """The pruning method's word on its schedule at this run's length (``MethodConfig.schedule_warning``)."""
    check = getattr(cfg.pruning, "schedule_warning", None)  # a plugin's schema need not extend MethodConfig
    return check(total_updates(cfg), cfg.sparsity) if check is not None else None


def on_policy(cfg: Config) -> bool:
    """Whether the agent learns from its own rollouts (PPO: ``training/on_policy.py``) rather than from replay."""
    return AGENTS.get(cfg.agent.name).on_policy


def check_on_policy(cfg: Config) -> None:
    """An on-policy run (PPO): whole rollouts within the budget, a policy that fits the env's actions, and a pruning
    schedule that can count its updates before the first."""
    a = cfg.agent
    require(cfg.total_env_steps >= a.batch_size, "total_env_steps", cfg.total_env_steps,
            f"agent={a.name} trains on whole rollouts of agent.num_envs × agent.num_steps = {a.batch_size} agent "
            f"steps: give at least {a.batch_size}")
    kind = ENVS.get(cfg.env.name).action_kind(cfg.env)
    policy = getattr(a, "policy", None)
    wants = {"categorical": ActionKind.discrete, "gaussian": ActionKind.continuous}.get(getattr(policy, "value", ""))
    if wants is not None and wants != kind:
        fits = "categorical" if kind == ActionKind.discrete else "gaussian"
        raise ConfigError("agent.policy", policy.value, f"a {policy.value} policy needs {wants.value} actions; "
                          f"{cfg.env.id} has {kind.value} actions (use agent.policy={fits} or auto)")
    if cfg.sparsity > 0 and getattr(a, "target_kl", None) is not None:
        raise ConfigError("agent.target_kl", a.target_kl, "it stops a rollout's epochs early, so the run's gradient "
                          "updates are not known before it starts, and the pruning schedule counts them: give "
                          "agent.target_kl=null with sparsity > 0")
    require(not cfg.offline.write_dataset, "offline.write_dataset", cfg.offline.write_dataset,
            f"agent={a.name} keeps no replay to write")


OFFLINE_AGENTS = ("dqn", "rainbow")  # CQL with agent=dqn, CQL+C51 with agent=rainbow (Dopamine's offline agents)


def check_offline(cfg: Config) -> None:
    """An offline run: a value-based agent that takes CQL's term, uniform replay, and a dataset folder whose files
    are complete and hold this env's frames and actions (frames checked from the files' headers alone; the action
    stores, 4 bytes a row, are read)."""
    key = "offline.dataset"
    require(cfg.agent.name in OFFLINE_AGENTS, "agent", cfg.agent.name,
            f"offline training is built for {' and '.join(f'agent={a}' for a in OFFLINE_AGENTS)}")
    require(not getattr(cfg.agent, "prioritized", False), "agent.prioritized", True,
            "offline runs sample the dataset uniformly, as Dopamine's offline agents; give agent.prioritized=false")
    require(cfg.agent.update_period == 1, "agent.update_period", cfg.agent.update_period,
            "an offline run updates once per step, and agent.target_update_period counts its updates: give "
            "agent.update_period=1 (+offline=cql and +offline=cql_c51 do)")
    folder = Path(cfg.offline.dataset).expanduser()
    require(folder.is_dir(), key, cfg.offline.dataset, "no such folder: give a folder of logged replay "
            "(the DQN Replay Dataset's <game>/<run>/replay_logs, or an online run's offline.write_dataset)")
    try:
        suffixes = logged.checkpoint_suffixes(folder)
        require(bool(suffixes), key, cfg.offline.dataset, f"it holds no logged replay (no complete set of "
                f"{logged.STORE}observation_ckpt.N.gz and its companions)")
        frame, dtype, n_actions = expected_frame(cfg)
        keep = cfg.offline.transitions_per_file
        for suffix in suffixes:
            path = logged.checkpoint_file(folder, logged.STORE + "observation", suffix)
            shape, stored = logged.array_header(path)
            require(tuple(shape[1:]) == frame and stored == dtype, key, cfg.offline.dataset,
                    f"{path.name} holds frames of {stored}{list(shape[1:])}; env.id={cfg.env.id} has "
                    f"{np.dtype(dtype)}{list(frame)} (a dataset of another env or observation shape)")
            path = logged.checkpoint_file(folder, logged.STORE + "action", suffix)
            actions = logged.load_array(path, None if keep is None else keep + frame_stack(cfg.env))
            top = int(actions.max(initial=0))
            require(top < n_actions and int(actions.min(initial=0)) >= 0, key, cfg.offline.dataset,
                    f"{path.name} holds action {top}; env.id={cfg.env.id} has actions 0 to {n_actions - 1} (a "
                    "dataset of another game)")
    except logged.DatasetError as e:
        raise ConfigError(key, cfg.offline.dataset, str(e)) from None


def expected_frame(cfg: Config) -> tuple[tuple[int, ...], np.dtype, int]:
    """The shape and dtype of one stored frame of ``cfg.env``, and its action count."""
    env = make_env(cfg.env, 0)
    try:
        space = env.observation_space
        return tuple(space.shape[1:] if frame_stack(cfg.env) > 1 else space.shape), space.dtype, n_outputs(env)
    finally:
        env.close()


def wandb_unavailable() -> str | None:
    """Why W&B cannot log from here, in one line (not installed; online without a login, where ``wandb.init`` would
    wait for a key), or None."""
    if importlib.util.find_spec("wandb") is None:
        return 'Weights & Biases is not installed (the wandb extra: pip install -e ".[wandb]")'
    if os.environ.get("WANDB_MODE", "online") in ("offline", "disabled", "dryrun") or os.environ.get("WANDB_API_KEY"):
        return None
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="replace"):
        return None
    return "W&B has no login here: run `wandb login` (or set WANDB_API_KEY), or log offline with WANDB_MODE=offline"


def hparams(cfg: Config) -> dict[str, float | int | str | bool]:
    """What TensorBoard's HParams tab compares a sweep's runs by: the env, network, sparsity, method and seed, and
    every scalar setting of the agent (``agent.lr``, ...)."""
    out: dict[str, Any] = {"agent": cfg.agent.name, "env": cfg.env.name, "env.id": str(cfg.env.id),
                           "network": cfg.network.name, "network.width": float(cfg.network.width),
                           "sparsity": float(cfg.sparsity), "pruning": cfg.pruning.name, "adapter": cfg.adapter.name,
                           "init.from_run": cfg.init.from_run, "redo.enabled": cfg.redo.enabled,
                           "reset.enabled": cfg.reset.enabled, "seed": cfg.seed, "total_env_steps": cfg.total_env_steps}
    for key, value in plain(cfg.agent).items():
        if key != "name":
            out[f"agent.{key}"] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return out


NETWORK_SHAPING_AGENT_KEYS = ("num_atoms", "v_min", "v_max", "dueling", "noisy", "noisy_sigma0")  # Rainbow's head


def check_ticket_source(cfg: Config) -> None:
    """``pruning.mask_from`` must be a finished run of the same agent, env and network, with its ``init.pt``, and
    ``sparsity`` the one it was pruned to."""
    src = Path(cfg.pruning.mask_from).expanduser()
    key = "pruning.mask_from"
    require((src / CONFIG).is_file(), key, str(src), f"no {CONFIG} there: give the folder of a run of this suite")
    require(is_complete(src), key, str(src), "that run has not finished (no summary.json): its final masks do not "
            "exist yet")
    require((src / INIT).is_file(), key, str(src), f"that run did not save its initial weights ({INIT}); run it "
            "with checkpoint.save_init=true")
    theirs = OmegaConf.load(src / CONFIG)
    ours = plain(cfg)
    other = OmegaConf.to_container(theirs)
    for section in ("env", "network"):  # everything that shapes observations and networks
        diff = sorted(k for k in {*ours[section], *other.get(section, {})}
                      if ours[section].get(k) != other.get(section, {}).get(k))
        require(not diff, key, str(src), "that run has " + ", ".join(
            f"{section}.{k}={other.get(section, {}).get(k)}" for k in diff) + f"; this one {section}." +
            ", ".join(f"{k}={ours[section].get(k)}" for k in diff))
    for k in ("name", *NETWORK_SHAPING_AGENT_KEYS):
        require(ours["agent"].get(k) == other["agent"].get(k), key, str(src),
                f"that run has agent.{k}={other['agent'].get(k)}, this one {ours['agent'].get(k)}")
    source_sparsity = float(theirs.sparsity)
    require(cfg.sparsity == source_sparsity, "sparsity", cfg.sparsity,
            f"the masks come from {src}, pruned to sparsity={source_sparsity:g}; give that value")


def lottery_source(cfg: Config) -> TicketSource:
    """The source run's initial networks and the final ones of its newest complete checkpoint (read only)."""
    src = Path(cfg.pruning.mask_from).expanduser()
    initial = torch.load(src / INIT, map_location="cpu", weights_only=True)
    checkpoints = Checkpointer(src / "checkpoints", 1).complete()
    if not checkpoints:
        raise ConfigError("pruning.mask_from", str(src), "that run has no complete checkpoint to read its final "
                          "masks from")
    try:
        state = Checkpointer(src / "checkpoints", 1).load(checkpoints[0])[0]
    except CheckpointError as e:
        raise ConfigError("pruning.mask_from", str(src), f"its checkpoint {checkpoints[0].name} cannot be read: {e}"
                          ) from None
    return TicketSource(initial, {name: state["agent"][name] for name in initial})


@dataclass
class InitPlan:
    source: Source
    new_head: bool  # the action count differs: the head is built anew (and trained)


_PLANS: dict[str, InitPlan] = {}


def init_plan(cfg: Config) -> InitPlan:
    """Read ``init.from_run`` and check it fits this run before any work: same agent and network, same tensors but
    the head's (observation shape), and a head of another shape (action count) only with ``train_head`` auto or
    true. Builds this run's env and agent once, on the CPU, to compare shapes; kept per config for the process
    (``train.py`` checks a config in its preflight, again as the run starts, and then builds from it)."""
    key = repr((cfg.init, cfg.agent, cfg.env, cfg.network, cfg.adapter))
    if key not in _PLANS:
        _PLANS[key] = _init_plan(cfg)
    return _PLANS[key]


def _init_plan(cfg: Config) -> InitPlan:
    source = read_source(cfg.init)
    theirs = OmegaConf.load(Path(source.path) / CONFIG)
    key = "init.from_run"
    require(theirs.agent.name == cfg.agent.name, key, source.path,
            f"that run is agent={theirs.agent.name}, this one agent={cfg.agent.name}")
    ours = plain(cfg.network)
    require(OmegaConf.to_container(theirs.network) == ours, key, source.path,
            f"that run's network is {OmegaConf.to_container(theirs.network)}, this one's {ours}")
    env = make_env(cfg.env, 0)
    try:
        agent = build_agent(cfg, env, np.random.default_rng(0), torch.device("cpu"))
    finally:
        env.close()
    new_head = False
    for name, net in agent.networks().items():
        mine, other = net.state_dict(), source.state.get(name, {})
        for k, v in mine.items():
            if k in other and tuple(other[k].shape) == tuple(v.shape):
                continue
            if k.startswith("head.") and k in other:
                new_head = True
                continue
            raise ConfigError(key, source.path, f"its {name} network does not fit this run's observations "
                              f"({name}.{k} is {tuple(other[k].shape) if k in other else 'missing'} there, "
                              f"{tuple(v.shape)} here)")
        layers = [n for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        unknown = [t for t in getattr(cfg.adapter, "targets", []) if t not in layers]
        require(not unknown, "adapter.targets", unknown, f"{name} has the layers {', '.join(layers)}")
    train_head = str(getattr(cfg.adapter, "train_head", "auto")).lower()
    require(not (new_head and train_head == "false"), "adapter.train_head", train_head,
            "the source's head has another action count; use train_head=auto or true (a new head)")
    return InitPlan(source, new_head)


def adapter_transform(cfg: Config, plan: InitPlan | None):
    """The adapter's transform for every network the agent builds (None without an adapter)."""
    train_head = str(getattr(cfg.adapter, "train_head", "auto")).lower()
    head = train_head == "true" or (train_head == "auto" and plan is not None and plan.new_head)
    try:
        return ADAPTERS.get(cfg.adapter.name).target(cfg.adapter, head)
    except ValueError as e:
        raise ConfigError("adapter.targets", list(getattr(cfg.adapter, "targets", [])), str(e)) from None


EXPORT_FORMAT = "pedrl.export/1"


def n_outputs(env) -> int:
    """The network's output count for ``env``'s actions: one per discrete action, or the action dimension."""
    space = getattr(env, "single_action_space", env.action_space)  # a vector env's: one env's
    return int(space.n) if hasattr(space, "n") else int(np.prod(space.shape))


def export_payload(cfg: Config, name: str, net: nn.Module, state: dict[str, torch.Tensor], env, step: int,
                   run_dir: Path, **extra) -> dict:
    """One network as the suite exports it (``evaluate.load_exported`` reads it back): its plain ``state_dict``, the
    agent, network and env configs that rebuild it, the observation shape and output count, and the measured
    sparsity of ``net`` (the network ``state`` is loaded in). Loadable with ``torch.load(..., weights_only=True)``."""
    return {"format": EXPORT_FORMAT, "network_name": name, "state_dict": {k: v.cpu() for k, v in state.items()},
            **{key: plain(getattr(cfg, key)) for key in ("agent", "network", "env")},
            "observation_shape": list(env.observation_space.shape), "n_out": n_outputs(env),
            "sparsity": weight_sparsity({name: net})[name], "step": step, "run": str(run_dir), **extra}


def export_adapted(cfg: Config, agent: Agent, replay: ReplayBuffer, env, step: int, run_dir: Path) -> dict:
    """With ``adapter.export``, each network with its adapter folded in (``adapters/merge.py``) as
    ``export/<network>.pt``, in the format of ``export_payload`` (``export`` says dense or masked). Returns, per
    network, the file and the largest change of its outputs on 256 replay states against the adapted network (float
    rounding for ``dense``; the cost of keeping the zeros for ``masked``)."""
    mode = getattr(cfg.adapter, "export", "none")
    if mode == "none":
        return {}
    (run_dir / "export").mkdir(exist_ok=True)
    inputs = agent.network_inputs(*replay.sample_states(256, np.random.default_rng(cfg.seed)))
    out = {}
    for name, net in agent.networks().items():
        state = merged_state_dict(net, mode == "masked")
        folded = copy.deepcopy(net)
        for module in folded.modules():  # the adapters' hooks off: the plain network the builder made
            module._forward_hooks.clear()
            module._forward_pre_hooks.clear()
        folded.load_state_dict(state, strict=False)
        with torch.no_grad():
            change = float((folded(inputs[name]) - net(inputs[name])).abs().max())
        path = run_dir / "export" / f"{name}.pt"
        torch.save(export_payload(cfg, name, folded, state, env, step, run_dir, export=mode), path)
        out[name] = {"path": str(path.relative_to(run_dir)), "max_output_change": change}
    return out


def check_pairing(cfg: Config) -> None:
    """Whether the agent, env, network and pruning method fit together, from what each declared when it
    registered: the env's action and observation kinds against what the agent and network accept."""
    agent, env = AGENTS.get(cfg.agent.name), ENVS.get(cfg.env.name)
    network, method = NETWORKS.get(cfg.network.name), METHODS.get(cfg.pruning.name)
    actions = env.action_kind(cfg.env)
    if not agent.takes(actions):
        wanted = agent.action_kinds()[0]
        agents = " or ".join(f"agent={s.name}" for s in AGENTS.specs() if s.takes(actions))
        envs = ", ".join(f"env={s.name}" for s in ENVS.specs() if wanted in s.actions)
        raise ConfigError("env.id", cfg.env.id, f"agent={agent.name} needs {wanted.value} actions; "
                          f"{cfg.env.id} has {actions.value} actions (use {agents}, or an env with "
                          f"{wanted.value} actions: {envs})")
    if env.observations not in network.observations:
        fits = " or ".join(f"network={s.name}" for s in NETWORKS.specs() if env.observations in s.observations)
        raise ConfigError("network", network.name, f"env={env.name} has {env.observations.value} observations; use "
                          f"{fits}")
    if agent.networks is not None and network.name not in agent.networks:
        raise ConfigError("network", network.name, f"agent={agent.name} takes "
                          f"{' or '.join(f'network={n}' for n in agent.networks)}")
    if method.agents is not None and agent.name not in method.agents:
        raise ConfigError("pruning", method.name, f"pruning={method.name} works with "
                          f"{' or '.join(f'agent={n}' for n in method.agents)}")


def compose(overrides: list[str]) -> Config:
    """The checked config of ``python train.py <overrides>``, in this process (tests, benchmarks, notebooks)."""
    try:
        return checked(compose_conf(overrides))
    finally:
        GlobalHydra.instance().clear()


def preflight(argv: list[str]) -> str | None:
    """Check a ``train.py`` command line before anything runs: raises ``training.preflight.UserError`` (one line).
    For a multirun, returns the line that says how many runs it holds and what they cost."""
    return check_command_line(argv, checked, replay_bytes, check_run_keys, run_seconds)


def run_seconds(cfg: Config) -> float | None:
    """Core-seconds the run takes on a CPU, from the measured per-step costs of ``training/cost.py`` (None where
    they are not measured)."""
    return core_seconds(RunShape(cfg.agent.name, cfg.env.name, cfg.network.name, float(cfg.network.width),
                                 0 if cfg.offline.enabled else cfg.total_env_steps, total_updates(cfg)))


def check_run_keys(overrides: list[str], cfg: Config) -> None:
    """What the composed config alone cannot tell: keys this run's mode would ignore, and uncommitted code under
    a preset whose runs are meant for results/."""
    check_mode_keys(overrides, cfg)
    check_clean_tree(cfg.require_clean_tree)


# keys an offline run ignores, with what it reads instead (None: nothing, it takes no environment steps)
ONLINE_ONLY = {"total_env_steps": "offline.updates", "log_every_env_steps": "offline.log_every_updates",
               "eval.every_env_steps": "offline.eval_every_updates",
               "checkpoint.every_env_steps": "offline.eval_every_updates", "checkpoint.replay": None,
               "agent.learning_starts": None, "agent.replay_capacity":
               "offline.transitions_per_file", "agent.epsilon_start": None, "agent.epsilon_end": None,
               "agent.epsilon_decay_steps": None, "offline.rows_per_file": None}
OFFLINE_ONLY = ("offline.updates", "offline.cql_alpha", "offline.transitions_per_file", "offline.eval_every_updates",
                "offline.log_every_updates")


def check_mode_keys(overrides: list[str], cfg: Config) -> None:
    """A key given on the command line that this run's mode (online or offline) would ignore is refused: the run
    would not do what the command says."""
    given = {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[-1] for o in overrides}
    if cfg.offline.enabled:
        for key, instead in ONLINE_ONLY.items():
            if key in given:
                raise ConfigError(key, given[key], "an offline run (offline.dataset) takes no environment steps and "
                                  + (f"counts gradient updates: use {instead}" if instead else "ignores it"))
    else:
        for key in OFFLINE_ONLY:
            if key in given:
                raise ConfigError(key, given[key], "it applies to an offline run: give offline.dataset=<folder of "
                                  "logged replay>")


def replay_bytes(cfg: Config) -> int:
    """Upper estimate of the replay buffer's size once full (frame + bookkeeping per slot the run can fill): the
    memory a run holds, and the bulk of each checkpoint. Builds no Atari env. Offline, the dataset's rows (read
    from the files' headers)."""
    if on_policy(cfg):
        return 0  # no replay: a rollout of a few thousand states, and checkpoints between rollouts hold none
    frame, action_dim = slot_sizes(cfg.env)
    extra = bookkeeping_bytes(getattr(cfg.agent, "prioritized", False), action_dim)
    if cfg.offline.enabled:
        folder = Path(cfg.offline.dataset).expanduser()
        rows = dataset_rows(folder, logged.checkpoint_suffixes(folder), cfg.offline.transitions_per_file,
                            frame_stack(cfg.env))
        return rows * (frame + extra)
    return min(cfg.agent.replay_capacity, cfg.total_env_steps) * (frame + extra)


def build_env(cfg: Config, mode: str, video_dir: Path | None = None) -> ResumableEnv:
    """The training env (its action space seeded with the run's seed) or the evaluation env (seed + 1), wrapped so
    a checkpoint can put it back. With ``eval.video`` the evaluation env renders and films into ``video_dir``."""
    film = mode == "eval" and cfg.eval.video
    env = make_env(cfg.env, cfg.seed if mode == "train" else cfg.seed + 1, mode, render=film)
    if film:
        env = EpisodeVideo(env, video_dir, frames_per_second(cfg.env, env))
    return EpisodeRecorder(env)


def build_vector_env(cfg: Config) -> gym.vector.SyncVectorEnv:
    """An on-policy agent's ``agent.num_envs`` training envs, each built as ``build_env`` builds the one training env
    (so each is resumable), stepped by Gymnasium's ``SyncVectorEnv`` with same-step autoreset: an episode's end
    returns the next episode's first observation, the last one in ``final_obs`` (CleanRL's Gymnasium 0.29)."""
    return gym.vector.SyncVectorEnv([lambda: build_env(cfg, "train") for _ in range(cfg.agent.num_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def build_agent(cfg: Config, env: ResumableEnv | gym.vector.VectorEnv, rng: np.random.Generator,
                device: torch.device, transform=None) -> Agent:
    """``transform`` is applied to every network the agent builds (an adapter), before its optimizers exist. An agent
    that takes both kinds of action (PPO) is told which the env has."""
    spec = AGENTS.get(cfg.agent.name)
    kind = {"action_kind": ENVS.get(cfg.env.name).action_kind(cfg.env)} if len(spec.action_kinds()) > 1 else {}
    space = getattr(env, "single_observation_space", env.observation_space)
    agent = spec.target(cfg.agent, cfg.network, space.shape, n_outputs(env), rng, device, transform=transform, **kind)
    if cfg.offline.enabled:
        agent.cql_alpha = cfg.offline.cql_alpha
    return agent


def build_replay(cfg: Config, env: ResumableEnv, rng: np.random.Generator, device: torch.device
                 ) -> ReplayBuffer | logged.RecordingReplay:
    """The online replay (recording into ``offline.write_dataset`` when given), or the offline dataset's."""
    if cfg.offline.enabled:
        return dataset_replay(cfg, env, rng, device)
    obs = env.observation_space
    replay = ReplayBuffer(cfg.agent.replay_capacity, obs.shape, obs.dtype, frame_stack(cfg.env), rng, device,
                          n_step=cfg.agent.n_step, gamma=cfg.agent.gamma,
                          prioritized=getattr(cfg.agent, "prioritized", False), action_shape=env.action_space.shape)
    if not cfg.offline.write_dataset:
        return replay
    stack = frame_stack(cfg.env)
    writer = logged.DatasetWriter(Path(cfg.offline.write_dataset).expanduser(),
                                  obs.shape[1:] if stack > 1 else obs.shape, obs.dtype, stack, cfg.agent.n_step,
                                  cfg.offline.rows_per_file)
    return logged.RecordingReplay(replay, writer)


def dataset_replay(cfg: Config, env: ResumableEnv, rng: np.random.Generator, device: torch.device) -> ReplayBuffer:
    """Every file of ``offline.dataset`` (its first ``transitions_per_file`` rows each), one replay buffer of all
    their rows, each transition built as Dopamine builds it (``agents/replay_dataset.py``), read file by file into
    the buffer. Dopamine's fixed replay holds 5 files drawn anew each iteration and samples a batch from one of them;
    here every file is held at once and batches are uniform over all of it: the same data, without the
    per-iteration subset."""
    folder, a, stack, keep = Path(cfg.offline.dataset).expanduser(), cfg.agent, frame_stack(cfg.env), \
        cfg.offline.transitions_per_file
    suffixes = logged.checkpoint_suffixes(folder)
    obs = env.observation_space
    replay = ReplayBuffer(dataset_rows(folder, suffixes, keep, stack), obs.shape, obs.dtype, stack, rng, device,
                          n_step=a.n_step, gamma=a.gamma)
    start = 0
    for suffix in suffixes:
        try:
            log = logged.read_checkpoint(folder, suffix, keep, stack)
        except logged.DatasetError as e:
            raise ConfigError("offline.dataset", cfg.offline.dataset, str(e)) from None
        ok = logged.valid_starts(log, len(log) if keep is None else min(keep, len(log)), stack, a.n_step)
        replay.fill(log.observation, log.action, *logged.transitions(log, ok, a.n_step, a.gamma), start=start)
        start += len(log)
    count = int((replay.horizon > 0).sum())
    require(count >= a.batch_size, "offline.dataset", cfg.offline.dataset,
            f"it holds {count} transitions, fewer than agent.batch_size ({a.batch_size})")
    return replay


def dataset_rows(folder: Path, suffixes: list[int], keep: int | None, stack: int) -> int:
    """Rows an offline run loads: each file's, or its first ``keep`` + ``stack`` (read from the headers alone)."""
    rows = [logged.array_header(logged.checkpoint_file(folder, logged.STORE + "action", s))[0][0] for s in suffixes]
    return sum(r if keep is None else min(r, keep + stack) for r in rows)


def build_callbacks(cfg: Config, plan: InitPlan | None = None) -> tuple[PruningMethod, list[Callback]]:
    """The suite's own callbacks in the order they run: loading ``init.from_run`` (``plan``), the pruning method,
    ReDo and the last-layer reset when enabled (after the method, under its masks), sparse inference when enabled,
    the health probe, then sparse compute when enabled (last: its step hooks follow the pruner's, and a checkpoint
    may be resumed with it on or off); and the method alone (its ``target_sparsity`` goes into ``summary.json``).

    The measured ``sparsity/*`` rows share ``health.every_updates`` on purpose, not a key of their own: sparsity is
    one more health reading, and on the same updates each TensorBoard step holds both, so dormancy or rank can be
    read against the sparsity of that very network (mask updates add their own rows)."""
    warning = schedule_warning(cfg)
    if warning:
        print(warning, flush=True)
    method = METHODS.get(cfg.pruning.name).target(cfg.pruning, cfg.sparsity, log_every_updates=cfg.health.every_updates,
                                                  seed=cfg.seed)
    if isinstance(method, Lottery):
        method.source = lottery_source(cfg)
    extra: list[Callback] = []
    if cfg.redo.enabled:
        extra.append(ReDo(cfg.redo, cfg.seed, method.current_masks))
    if cfg.reset.enabled:
        extra.append(Reset(cfg.reset, cfg.seed, method.current_masks))
    compute = getattr(cfg.pruning, "sparse_compute", False)  # a plugin's schema need not extend MethodConfig
    if compute is not False and cfg.sparsity == 0:
        if compute is True:  # auto means "where it pays", and at sparsity 0 nowhere does: no warning for a sweep
            why = (f"adapter={cfg.adapter.name} trains no pruned weight (the source's pruned backbone is frozen)"
                   if cfg.adapter.name != "none" else "a dense network has no masked layer to train from CSR")
            print(f"warning: pruning.sparse_compute=true does nothing with sparsity=0: {why}", flush=True)
        compute = False
    last: list[Callback] = [SparseCompute(method, compute)] if compute is not False else []
    if getattr(cfg.pruning, "sparse_inference", False) and compute is not False:
        print("note: pruning.sparse_compute also runs the no-grad forwards from CSR; pruning.sparse_inference adds "
              "nothing to it and is left off", flush=True)
    elif getattr(cfg.pruning, "sparse_inference", False):
        if cfg.sparsity > 0:
            extra.append(SparseInference(method))
        else:
            print("warning: pruning.sparse_inference=true does nothing with sparsity=0: a dense network has no masked "
                  "layer to convert", flush=True)
    first = [InitFromRun(plan.source, ("head.",) if plan.new_head else ())] if plan is not None else []
    return method, [*first, method, *extra, HealthCallback(cfg.health, cfg.seed), *last]


def loop_config(cfg: Config) -> LoopConfig:
    """The loop's periods. Offline, its clock is the gradient update: the budget, evaluation, checkpoint and log
    periods are ``offline``'s, in updates, one update per step from the first; checkpoints never store the replay
    (the dataset is read again on resume)."""
    a, o = cfg.agent, cfg.offline
    if o.enabled:
        return LoopConfig(total_env_steps=o.updates, learning_starts=0, update_period=1, batch_size=a.batch_size,
                          replay_capacity=a.replay_capacity, reward_clip=cfg.env.reward_clip, seed=cfg.seed,
                          eval=EvalConfig(o.eval_every_updates, cfg.eval.episodes, cfg.eval.video),
                          checkpoint=CheckpointConfig(o.eval_every_updates, cfg.checkpoint.keep, False,
                                                      cfg.checkpoint.save_init),
                          log_every_env_steps=o.log_every_updates, progress=cfg.progress)
    if on_policy(cfg):  # no replay, minibatches from the rollout; the budget is whole rollouts, as CleanRL's
        return LoopConfig(total_env_steps=cfg.total_env_steps // a.batch_size * a.batch_size, learning_starts=0,
                          update_period=1,
                          batch_size=a.minibatch_size, replay_capacity=0, reward_clip=cfg.env.reward_clip,
                          seed=cfg.seed, eval=cfg.eval, checkpoint=cfg.checkpoint,
                          log_every_env_steps=cfg.log_every_env_steps, progress=cfg.progress)
    return LoopConfig(total_env_steps=cfg.total_env_steps, learning_starts=a.learning_starts,
                      update_period=a.update_period, batch_size=a.batch_size, replay_capacity=a.replay_capacity,
                      reward_clip=cfg.env.reward_clip, seed=cfg.seed, eval=cfg.eval, checkpoint=cfg.checkpoint,
                      log_every_env_steps=cfg.log_every_env_steps, progress=cfg.progress)
