"""Load a trained run and play it: ``python evaluate.py <run_dir> [--step N] [--episodes 10] [--seed S] [--video [N]]
[--export model.pt] [env.id=... ...]``.

Rebuilds the env and the agent from the run's own ``config.yaml``, loads the networks of its newest complete
checkpoint (or ``--step``) through the checkpoint reader (manifest checked, ``weights_only``), plays full episodes at
the agent's evaluation policy (ε = ``agent.eval_epsilon``; SAC's mean action) on a fresh seed, prints the mean ± std
and writes ``eval/<step>/returns.json``. ``--video`` films the first N episodes (default 1) to MP4s with Gymnasium's
``RecordVideo`` and a ``strip.png`` of 8 frames; ``--export`` writes the acting network alone (below). Overrides such
as ``env.id=Breakout env.mode=4`` (or ``--env.id=...``) evaluate on another game or mode with the same spaces; their
results go to ``eval/<step>_<overrides>/``. A run trained with ``pruning.sparse_inference=true`` plays its converted
layers from CSR, as its own evaluations did. The run folder is never written outside ``eval/`` (and the export path).

``load_exported(path)`` gives back an exported network inside its agent, with the env it was trained on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

import suite
from adapters.merge import merged_state_dict
from agents.registry import AGENTS, NETWORKS
from core.errors import ConfigError
from core.run_files import CONFIG
from envs import make_env
from envs.registry import ENVS
from envs.video import film_strip, frames_per_second, record_episodes, video_unavailable
from pruning.sparse_inference import convert_for_playing
from training.checkpoint import Checkpointer, CheckpointError
from training.loop import play_episodes

SEED_OFFSET = 2_000_003  # default seed: the run's + this, neither its training (seed) nor its evaluation seeds


def load_checkpoint(run_dir: Path, step: int | None) -> tuple[Path, dict, str]:
    """The checkpoint to play: the one at ``step``, or the newest one that reads, as training resumes from the newest
    usable one. A damaged newer one is named in one line and left where it is (evaluation writes nothing there)."""
    checkpoints = Checkpointer(run_dir / "checkpoints", 1)
    steps = checkpoints.steps()
    if not steps:
        raise ConfigError("run_dir", str(run_dir), "that run has no complete checkpoint")
    if step is not None:
        path = checkpoints.at_step(step)
        if path is None:
            raise ConfigError("--step", step, f"{run_dir} has checkpoints at agent steps {', '.join(map(str, steps))}")
        try:
            return path, *Checkpointer.load_state(path)
        except CheckpointError as e:
            raise ConfigError("--step", step, f"checkpoint {path.name} cannot be read: {e}") from None
    damaged = []
    for path in checkpoints.complete():
        try:
            state, sha256 = Checkpointer.load_state(path)
        except CheckpointError as e:
            damaged.append(f"{path.name} ({e})")
            continue
        if damaged:
            print(f"warning: evaluating {path.name}, the newest checkpoint that reads; newer and unreadable: "
                  f"{'; '.join(damaged)}", file=sys.stderr, flush=True)
        return path, state, sha256
    raise ConfigError("run_dir", str(run_dir), f"none of its checkpoints can be read: {'; '.join(damaged)}")


def run_config(run_dir: Path, overrides: list[str]) -> suite.Config:
    """The run's ``config.yaml`` with ``overrides`` applied, checked as far as playing needs (the env and its pairing
    with the agent and network)."""
    if not (run_dir / CONFIG).is_file():
        raise ConfigError("run_dir", str(run_dir), f"not a run folder of this suite (no {CONFIG})")
    dcfg = OmegaConf.load(run_dir / CONFIG)
    for override in overrides:
        key, _, value = override.partition("=")
        if OmegaConf.select(dcfg, key, default="<missing>") == "<missing>":
            raise ConfigError(key, value, "not a key of the run's config")
    dcfg = OmegaConf.merge(dcfg, OmegaConf.from_dotlist(overrides))
    cfg = suite.config_from_run(dcfg)
    try:
        cfg.env.validate()
    except ConfigError as e:
        raise e.under("env") from None
    suite.check_pairing(cfg)
    return cfg


def build(cfg: suite.Config, state: dict, seed: int, device: torch.device, render: bool = False):
    """The env (seeded action space) and the agent with the checkpoint's networks; an adapted run is rebuilt with
    its adapter (which reads ``init.from_run`` to know whether the head was trained)."""
    env = make_env(cfg.env, seed, "eval", render=render)
    plan = suite.init_plan(cfg) if cfg.adapter.name != "none" else None
    agent = suite.build_agent(cfg, env, np.random.default_rng(seed), device, suite.adapter_transform(cfg, plan))
    for name, net in agent.networks().items():
        theirs = state["agent"][name]
        for key, value in net.state_dict().items():
            if key in theirs and tuple(theirs[key].shape) != tuple(value.shape):
                raise ConfigError("env.id", cfg.env.id, f"the run's {name} network does not fit this env ({name}.{key} "
                                  f"is {tuple(theirs[key].shape)} in the run, {tuple(value.shape)} here)")
        net.load_state_dict(theirs)
    load = getattr(agent, "load_acting_state", None)  # what acting needs besides the networks (PPO: obs statistics)
    if load is not None:
        load(state["agent"])
    return env, agent


def sparse_layers(cfg: suite.Config, agent, state: dict) -> list:
    """With ``pruning.sparse_inference=true`` the layers the run had converted when the checkpoint was written play
    from CSR, as its own evaluations did (``pruning.sparse_inference=false`` on the command line plays them dense)."""
    if not getattr(cfg.pruning, "sparse_inference", False):
        return []
    stored = next((s for k, s in state["callbacks"].items() if k.endswith(":SparseInference")), None)
    layers = convert_for_playing(agent.networks(), stored)
    if layers:
        print(f"sparse inference: {', '.join(layer.key for layer in layers)} from CSR, as the run chose")
    return layers


def export(cfg: suite.Config, agent, env, step: int, run_dir: Path, path: Path) -> dict:
    """The acting network (DQN, Rainbow: the online Q-network; SAC: the actor) alone, an adapter folded in, in the
    format of ``suite.export_payload``."""
    name, net = next(iter(agent.networks().items()))
    try:
        state = merged_state_dict(net, masked=False) if cfg.adapter.name != "none" else net.state_dict()
    except ValueError as e:
        raise ConfigError("--export", str(path), f"adapter={cfg.adapter.name}: {e}") from None
    payload = suite.export_payload(cfg, name, net, state, env, step, run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return payload


def load_exported(path: str | Path, seed: int = 0, device: str = "cpu"):
    """An exported network inside a fresh agent of its kind (``agent.act(obs, 0, eval_mode=True)`` acts with it),
    and the env it was trained on, preprocessing included (seeded action space; reset it with a seed)."""
    payload = torch.load(path, map_location=device, weights_only=True)
    if payload.get("format") != suite.EXPORT_FORMAT:
        raise ValueError(f"{path} is not an export of this suite (format {payload.get('format')!r})")

    agent_cfg, network_cfg, env_cfg = (OmegaConf.to_object(suite.typed(r, payload[k])) for r, k in
                                       ((AGENTS, "agent"), (NETWORKS, "network"), (ENVS, "env")))
    spec = AGENTS.get(agent_cfg.name)  # an agent of several action kinds (PPO) is told the env's
    kind = {"action_kind": ENVS.get(env_cfg.name).action_kind(env_cfg)} if len(spec.action_kinds()) > 1 else {}
    agent = spec.target(agent_cfg, network_cfg, tuple(payload["observation_shape"]), payload["n_out"],
                        np.random.default_rng(seed), torch.device(device), **kind)
    agent.networks()[payload["network_name"]].load_state_dict(payload["state_dict"])
    return agent, make_env(env_cfg, seed, "eval")


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("overrides", nargs="*", help="key=value changes to the run's config (env.id=..., env.mode=...)")
    parser.add_argument("--step", type=int, help="the checkpoint's agent step (default: the newest)")
    parser.add_argument("--episodes", type=int, default=10, help="full episodes to play (default 10)")
    parser.add_argument("--seed", type=int, help=f"default: the run's seed + {SEED_OFFSET:,}")
    parser.add_argument("--video", type=int, nargs="?", const=1, default=0, metavar="N",
                        help="film the first N episodes (default 1) to MP4, and a strip.png")
    parser.add_argument("--export", type=Path, metavar="PATH", help="write the acting network alone to PATH")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    args, unknown = parser.parse_known_intermixed_args(argv)
    extra = [u[2:] for u in unknown if u.startswith("--") and "=" in u]
    if len(extra) != len(unknown):
        parser.error(f"unrecognized arguments: {' '.join(u for u in unknown if u[2:] not in extra)}")
    return args, [*args.overrides, *extra]


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse(argv)
    run_dir = args.run_dir
    if args.video:
        os.environ.setdefault("MUJOCO_GL", "egl")  # before dm_control is imported; EGL renders without a display
    try:
        if not run_dir.is_dir():
            raise ConfigError("run_dir", str(run_dir), "no such folder")
        if args.episodes < 1:
            raise ConfigError("--episodes", args.episodes, "must be >= 1")
        if args.video < 0 or args.video > args.episodes:
            raise ConfigError("--video", args.video, f"films between 1 and --episodes ({args.episodes}) episodes")
        cfg = run_config(run_dir, overrides)
        if args.video and (why := video_unavailable(cfg.env)):
            raise ConfigError("--video", args.video, why)
        checkpoint, state, sha256 = load_checkpoint(run_dir, args.step)
        step = int(checkpoint.name.removeprefix("step_"))
        seed = cfg.seed + SEED_OFFSET if args.seed is None else args.seed
        torch.manual_seed(seed)
        env, agent = build(cfg, state, seed, torch.device(args.device), render=args.video > 0)
        sparse = sparse_layers(cfg, agent, state)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    slug = ",".join(o.replace("/", "_") for o in overrides)
    out = run_dir / "eval" / (f"{step}_{slug}" if slug else str(step))
    if args.video:
        env = record_episodes(env, out / "videos", args.video, frames_per_second(cfg.env, env))
    env.reset(seed=seed)
    if args.video:
        try:
            env.render()
        except Exception as e:  # noqa: BLE001 - a renderer's failure is the user's answer, whatever its type
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            print(f"error: --video: {cfg.env.name} cannot render here ({type(e).__name__}: {first})", file=sys.stderr)
            return 2
    try:
        returns, lengths = play_episodes(agent, env, args.episodes, step)
    finally:
        env.close()
    mean, std = float(np.mean(returns)), float(np.std(returns))
    out.mkdir(parents=True, exist_ok=True)
    record = {"run": str(run_dir), "checkpoint": checkpoint.name, "step": step, "sha256": sha256, "seed": seed,
              "overrides": overrides, "sparse_inference": [layer.key for layer in sparse], "episodes": len(returns),
              "returns": returns, "lengths": lengths, "mean": mean, "std": std}
    (out / "returns.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{run_dir} at agent step {step:,}: return {mean:.2f} ± {std:.2f} over {len(returns)} episodes "
          f"(seed {seed}) -> {out / 'returns.json'}")
    if args.video:
        videos = sorted((out / "videos").glob("*.mp4"))
        film_strip(videos[0], out / "strip.png")
        print(f"videos: {', '.join(str(v) for v in videos)}; strip: {out / 'strip.png'}")
    if args.export:
        payload = export(cfg, agent, env, step, run_dir, args.export)
        print(f"exported {payload['network_name']} ({payload['sparsity']:.1%} zeros) to {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
