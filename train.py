"""Train an agent: ``python train.py agent=dqn env.id=Breakout seed=3``.

The Hydra entry point. With ``suite.py`` it is the composition root: ``suite.py`` holds the schema, the registries'
Hydra configs and the rules between fields; this file checks the command line, builds the parts a config names,
runs the loop in ``training/loop.py`` and writes the run folder.
"""

from __future__ import annotations

import signal
import sys


def _interrupted_early(signum, frame) -> None:
    print("interrupted before training started; run the same command again", file=sys.stderr, flush=True)
    sys.exit(128 + signum)


if __name__ == "__main__":  # a Ctrl-C while the imports below load, or during the checks, ends quietly too
    signal.signal(signal.SIGINT, _interrupted_early)

import datetime
import json
import shlex
import traceback
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import suite
from agents.networks import count_parameters
from agents.replay_dataset import RecordingReplay
from core.errors import ConfigError
from core.run_files import CONFIG, INIT, SUMMARY, is_complete
from pruning.measure import weight_sparsity
from pruning.sparse_compute import SparseCompute
from pruning.sparse_inference import SparseInference
from training.checkpoint import Checkpointer, CheckpointError
from training.device import cuda_settings, resolve_device, sweep_job
from training.init_from_run import inherited_overrides
from training.logger import Logger
from training.loop import CheckpointWriteError, Diverged, ResumeError, Stopped, Trainer
from training.offline import OfflineTrainer
from training.on_policy import OnPolicyTrainer
from training.preflight import Complete, UserError
from training.preflight import compose as compose_conf
from training.run_folder import check_same_config, complete_note, exclusive, switched, write_atomic
from training.run_info import check_clean_tree, code_version, version_record
from training.run_log import run_log
from training.signals import Aborted, StopRequest
from training.sweep import clear_failed, mark_failed
from training.wandb_mirror import WandbMirror

suite.register_configs()
COMMAND: list[str] = []  # the command line as the user typed it (set below when run as a script): how to resume


def learner_bytes(agent) -> dict[str, int]:
    """Memory the learner holds, by kind: every network parameter and buffer (targets included), the trainable
    parameters' gradients, and the optimizers' state (Adam: two moments per trainable tensor); on CUDA also the peak
    allocated. What an adapter saves against full fine-tuning. A weight that sparse compute holds (``sparse_held``)
    trains as its kept values: those count as a parameter beside the dense weight, and as the gradient."""
    nets = [*agent.networks().values(), *agent.target_networks().values()]
    seen, params = set(), 0
    for net in nets:
        for t in [*net.parameters(), *net.buffers()]:
            if id(t) not in seen:
                seen.add(id(t))
                params += t.numel() * t.element_size()
    trainable = [p for net in agent.networks().values() for p in net.parameters() if p.requires_grad]
    state = sum(v.numel() * v.element_size() for opt in agent.optimizers().values() for s in opt.state.values()
                for v in s.values() if torch.is_tensor(v))
    held = [p.sparse_held.values for p in trainable if hasattr(p, "sparse_held")]
    held_bytes = sum(v.numel() * v.element_size() for v in held)
    dense = [p for p in trainable if not hasattr(p, "sparse_held")]
    out = {"parameters": params + held_bytes,
           "gradients": sum(p.numel() * p.element_size() for p in dense) + held_bytes,
           "optimizer": state}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_peak"] = torch.cuda.max_memory_allocated()
    return out


def adapter_bytes(agent) -> dict[str, int]:
    """What an adapted run must store beside its source, per network: its trainable tensors (the adapter, and the
    head when it is trained). VeRA's frozen projections are left out: ``adapter.projection_seed`` regenerates them."""
    return {name: sum(p.numel() * p.element_size() for p in net.parameters() if p.requires_grad)
            for name, net in agent.networks().items()}


def train(cfg: suite.Config, run_dir: Path, callbacks=(), transform=None) -> dict:
    """Build everything from ``cfg``, train, and write ``summary.json`` in ``run_dir``; returns the summary.
    ``callbacks`` run after the suite's own (the pruning method, then the health probe); ``transform`` is applied to
    every network the agent builds (an adapter). If ``run_dir`` holds a checkpoint, the run continues from the newest
    one that loads. The folder is locked against a second process, and stop signals are answered from the start
    (during setup they stop the run before the loop)."""
    with exclusive(run_dir), StopRequest() as stop:
        return _train(cfg, run_dir, callbacks, transform, stop)


def _train(cfg: suite.Config, run_dir: Path, callbacks, transform, stop: StopRequest) -> dict:
    code = code_version()  # the code this process imported: edits to the tree while it trains do not change it
    device = resolve_device(cfg.device, sweep_job())
    if device.type == "cuda":
        cuda_settings(cfg)
        if device.index is not None:
            torch.cuda.set_device(device)  # cuda:N is current: synchronize() and the memory peak read it
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    agent_seed, replay_seed = np.random.SeedSequence(cfg.seed).spawn(2)
    eval_env = suite.build_env(cfg, "eval", run_dir / "videos")
    on_policy = suite.on_policy(cfg)  # PPO: agent.num_envs envs in one vector env, rollouts instead of replay
    env = (eval_env if cfg.offline.enabled  # offline: no environment steps
           else suite.build_vector_env(cfg) if on_policy else suite.build_env(cfg, "train"))
    plan = suite.init_plan(cfg) if cfg.init.from_run else None
    transform = transform or suite.adapter_transform(cfg, plan)
    agent = suite.build_agent(cfg, env, np.random.default_rng(agent_seed), device, transform)
    replay = agent.rollout if on_policy else suite.build_replay(cfg, env, np.random.default_rng(replay_seed), device)
    n_params = {name: count_parameters(net) for name, net in agent.networks().items()}
    n_trainable = {name: sum(p.numel() for p in net.parameters() if p.requires_grad)
                   for name, net in agent.networks().items()}
    print(f"parameters: {n_params} | run folder: {run_dir}", flush=True)
    checkpointer = Checkpointer(run_dir / "checkpoints", cfg.checkpoint.keep)
    checkpointer.clean_partial()
    latest = checkpointer.load_latest()
    Logger.rewind(run_dir, latest[3] if latest else None)  # drop what was logged after the checkpoint
    tracker = WandbMirror(run_dir, suite.plain(cfg),
                          cfg.logger.wandb_project, cfg.logger.wandb_entity, cfg.logger.wandb_group) \
        if cfg.logger.wandb else None
    logger = Logger(run_dir, [tracker] if tracker else [])
    pruning, own = suite.build_callbacks(cfg, plan)
    trainer = (OfflineTrainer if cfg.offline.enabled else OnPolicyTrainer if on_policy else Trainer)(
        suite.loop_config(cfg), agent, env, eval_env, replay, logger, [*own, *callbacks], checkpointer, stop)
    if latest:
        path, state, arrays, _ = latest
        trainer.last_checkpoint = path
        try:
            trainer.load_checkpoint(state, arrays)
        except ResumeError as e:
            raise ResumeError(f"cannot resume from {path}: {e}") from None
        del latest, state, arrays  # release the memory-mapped replay files
        clock = (f"update {trainer.updates:,} of {cfg.offline.updates:,}" if cfg.offline.enabled else
                 f"agent step {trainer.env_step:,} of {cfg.total_env_steps:,}")
        print(f"resuming from {path} ({clock})", flush=True)
        with open(run_dir / "resumes.jsonl", "a") as f:
            f.write(json.dumps({"checkpoint": path.name, "env_step": trainer.env_step, "code": code}) + "\n")
    else:
        logger.log({**{f"charts/num_params/{k}": v for k, v in n_params.items()},
                    **{f"charts/num_trainable_params/{k}": v for k, v in n_trainable.items()}}, 0)
        if cfg.checkpoint.save_init:
            tmp = run_dir / f".{INIT}.tmp"
            torch.save({name: net.state_dict() for name, net in agent.networks().items()}, tmp)
            tmp.replace(run_dir / INIT)
    try:
        result = trainer.run()
        if isinstance(replay, RecordingReplay):
            replay.writer.flush()
        sparsity = weight_sparsity(agent.networks())
        logger.hparams(suite.hparams(cfg), {"hparams/final_eval_return": result["final_eval_return"],
                                            "hparams/sparsity": sparsity["total"]}, trainer.env_step)
    finally:
        logger.close()
        if tracker:
            tracker.finish()
        if env is not eval_env:
            env.close()
        eval_env.close()
    exported = suite.export_adapted(cfg, agent, replay, eval_env, trainer.env_step, run_dir)  # one env's spaces
    sparse = [cb for cb in own if isinstance(cb, SparseInference)]
    compute = [cb for cb in own if isinstance(cb, SparseCompute)]
    summary = {**result, "frames": result["env_steps"] * getattr(cfg.env, "frame_skip", 1),
               "sparsity": sparsity.pop("total"), "sparsity_per_network": sparsity,
               "target_sparsity": pruning.target_sparsity, "num_params": n_params,
               "seed": cfg.seed, "agent": cfg.agent.name, "env": cfg.env.name, "env_id": cfg.env.id,
               "network": cfg.network.name, "code": code, "num_trainable_params": n_trainable,
               "trainable_fraction": sum(n_trainable.values()) / sum(n_params.values()),
               "learner_bytes": learner_bytes(agent),
               **({"adapter_bytes": adapter_bytes(agent)} if cfg.adapter.name != "none" else {}),
               **({"init": plan.source.summary()} if plan is not None else {}),
               **({"sparse_inference": sparse[0].summary()} if sparse else {}),
               **({"sparse_compute": compute[0].summary()} if compute else {}),
               **({"export": exported} if exported else {})}
    write_atomic(run_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
    checkpointer.finish()
    print(closing_line(summary, run_dir, cfg.eval.episodes), flush=True)
    return summary


def closing_line(summary: dict, run_dir: Path, episodes: int) -> str:
    """The one line a finished run ends with: its score, sparsity, time (the training loop's, over every process of a
    resumed run, as ``summary.json``'s ``wall_time_s``) and where everything is."""
    wall = datetime.timedelta(seconds=round(summary["wall_time_s"]))
    processes = len(summary.get("wall_time_s_per_process", [None]))
    if run_dir.is_relative_to(Path.cwd()):
        run_dir = run_dir.relative_to(Path.cwd())  # runs/<name>, as the user will type it
    return (f"done: final eval return {summary['final_eval_return']:.2f} ({episodes} episode"
            f"{'s' if episodes > 1 else ''}), sparsity "
            f"{summary['sparsity']:.3f}, wall time {wall}{f' over {processes} starts' if processes > 1 else ''}; "
            f"run folder "
            f"{run_dir} ({SUMMARY}, metrics.jsonl, tb/, train.log)")


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(dcfg: DictConfig) -> None:
    """One run. In a sweep, a job that fails writes ``failed.json`` in its folder and returns, so the launcher goes
    on with the other jobs (``training/sweep.py`` reports them at the end); alone, it exits with the error."""
    hc = HydraConfig.get()
    run_dir, in_sweep = Path(hc.runtime.output_dir), hc.mode == RunMode.MULTIRUN
    clear_failed(run_dir)
    with run_log(run_dir) as note:  # what the run prints also goes to its train.log
        try:
            run(dcfg, run_dir)
        except Stopped as e:
            print(f"{e}; {resume_hint(in_sweep)}", file=sys.stderr, flush=True)
            e.request.pass_on()  # under submitit: its handler requeues the job and exits
            sys.exit(128 + e.request.signum)
        except (ConfigError, Diverged, ResumeError, CheckpointError, CheckpointWriteError) as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            if not in_sweep:
                sys.exit(2 if isinstance(e, ConfigError) else 1)
            mark_failed(run_dir, f"error: {e}", 2 if isinstance(e, ConfigError) else 1)
        except Exception:
            if not in_sweep:
                note(traceback.format_exc())  # Hydra prints it to the terminal
                raise
            traceback.print_exc()
            mark_failed(run_dir, traceback.format_exc(), 1)


def resume_hint(in_sweep: bool) -> str:
    """How to resume a stopped run: the exact command (its folder is named from it, so the same command reaches
    it), or, for a job of a sweep, the sweep's command."""
    if in_sweep or not COMMAND:
        return "to resume, run the sweep's command again (it resumes unfinished runs and skips complete ones)"
    return f"to resume, run the same command again: {shlex.join(['python', *COMMAND])}"


def run(dcfg: DictConfig, run_dir: Path) -> None:
    cfg = suite.checked(dcfg)
    check_clean_tree(cfg.require_clean_tree)  # again in the job: a cluster may start it after the tree changed
    resuming = check_same_config(run_dir, dcfg, "run folder")
    if resuming and is_complete(run_dir):
        Checkpointer(run_dir / "checkpoints", cfg.checkpoint.keep).finish()  # if a kill came right after summary
        print(complete_note(run_dir), flush=True)
        return
    for change in switched(run_dir, dcfg) if resuming else []:
        print(f"resuming with {change}: the same arithmetic in other kernels, so numbers agree with an unswitched "
              "run to float rounding, not bit for bit", flush=True)
    if not resuming:
        write_atomic(run_dir / CONFIG, OmegaConf.to_yaml(dcfg, resolve=True))
        write_atomic(run_dir / "version.json", json.dumps(version_record(), indent=2) + "\n")
    train(cfg, run_dir)


if __name__ == "__main__":
    COMMAND = list(sys.argv)
    try:
        inherited = inherited_overrides(sys.argv[1:], compose_conf)
        if inherited:
            print(f"init.from_run: taken from the source run: {' '.join(inherited)}", flush=True)
            sys.argv += inherited
        plan = suite.preflight(sys.argv[1:])
        if plan:
            print(plan, flush=True)  # a sweep's runs and cost, before it launches
        main()
    except Complete as e:
        print(e, flush=True)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Aborted as e:  # a second Ctrl-C while the first was being answered
        print(e, file=sys.stderr, flush=True)
        sys.exit(128 + signal.SIGINT)
