"""The training loop. It owns the two clocks (agent steps, gradient updates) and decides when to update,
evaluate, log and checkpoint; agents and callbacks only react.

One agent step is: act, step the env, store the transition, maybe update, maybe log, maybe evaluate, maybe
checkpoint. Checkpoints are taken only at the end of a step, so a resumed run starts the next step with everything
(networks, optimizer, replay, callbacks, RNGs, env, log files) as the uninterrupted run had it.
"""

from __future__ import annotations

import datetime
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from core.callbacks import Callback
from core.errors import require
from core.protocols import Agent, Replay, ResumableEnv, UpdateResult
from training.checkpoint import CheckpointConfig, Checkpointer
from training.logger import Logger
from training.signals import StopRequest

EVAL_SEED_OFFSET = 1_000_003


@dataclass
class EvalConfig:
    every_env_steps: int = 250_000  # agent steps between evaluations (one Dopamine iteration); always once at the end
    episodes: int = 10  # full episodes per evaluation, acted at agent.eval_epsilon
    video: bool = False  # film the first episode of each evaluation (run folder videos/, TensorBoard videos/eval)

    def validate(self) -> None:
        require(self.every_env_steps >= 1, "every_env_steps", self.every_env_steps, "must be >= 1")
        require(self.episodes >= 1, "episodes", self.episodes, "must be >= 1")


@dataclass(frozen=True)
class LoopConfig:
    """What the loop reads from a run's config (the composition root fills it); periods in agent steps."""

    total_env_steps: int
    learning_starts: int  # agent steps before the first update
    update_period: int  # one gradient update every this many agent steps
    batch_size: int
    replay_capacity: int
    reward_clip: float | None  # rewards are clipped to ±c for the learner only
    seed: int
    eval: EvalConfig
    checkpoint: CheckpointConfig
    log_every_env_steps: int
    progress: bool


class Diverged(RuntimeError):
    """A loss or a parameter became NaN or infinite; the run stops before writing anything built on it."""


class CheckpointWriteError(RuntimeError):
    """Writing a checkpoint failed; the previous one is untouched."""


class ResumeError(RuntimeError):
    """A checkpoint that loads but does not fit this run (other callbacks, replay shape, a non-deterministic env)."""


class Stopped(Exception):
    """A stop signal arrived; the checkpoint is written and the run can be resumed (the entry point says how)."""

    def __init__(self, request: StopRequest, env_step: int, checkpoint: Path | None):
        self.request, self.env_step, self.checkpoint = request, env_step, checkpoint
        super().__init__(f"stopped by {request.name} at agent step {env_step}; checkpoint: {checkpoint}")


def evaluate(agent: Agent, env: gym.Env, episodes: int, env_step: int,
             should_stop: Callable[[], bool] = lambda: False, video: str | None = None) -> dict[str, float] | None:
    """Mean raw return of full episodes acted with the agent's evaluation policy (ε = ``eval_epsilon``); None if
    ``should_stop`` turned true before the last episode ended. ``video`` names the film of the first episode (an env
    wrapped in ``envs.video.EpisodeVideo``)."""
    played = play_episodes(agent, env, episodes, env_step, should_stop, video)
    if played is None:
        return None
    returns, lengths = played
    return {"eval/episodic_return": float(np.mean(returns)), "eval/episodic_return_std": float(np.std(returns)),
            "eval/episodic_length": float(np.mean(lengths))}


def play_episodes(agent: Agent, env: gym.Env, episodes: int, env_step: int,
                  should_stop: Callable[[], bool] = lambda: False,
                  video: str | None = None) -> tuple[list[float], list[int]] | None:
    """The raw return and length (agent steps) of each of ``episodes`` full episodes, or None if stopped."""
    returns, lengths = [], []
    while len(returns) < episodes:
        obs, _ = env.reset()
        filming = video is not None and not returns
        if filming:
            env.get_wrapper_attr("start_video")(video)
        done = False
        while not done:
            if should_stop():
                if filming:
                    env.get_wrapper_attr("discard_video")()
                return None
            obs, _, terminated, truncated, info = env.step(agent.act(obs, env_step, eval_mode=True))
            done = terminated or truncated
        if filming:
            env.get_wrapper_attr("finish_video")()
        returns.append(float(info["episode"]["r"]))
        lengths.append(int(info["episode"]["l"]))
    return returns, lengths


UPDATE_TIMES_KEPT = 10_000  # updates timed per process: enough for a median, bounded memory


def eta(env_step: int, total: int, learning_starts: int, training_sps: float | None) -> str:
    """Time left, at the speed the remaining steps will run at: "warm-up" until learning starts (acting alone is
    many times faster than training, so its speed would promise far too early an end), then the remaining agent
    steps at the windowed training speed."""
    if env_step <= learning_starts or not training_sps:
        return "warm-up"
    return str(datetime.timedelta(seconds=round((total - env_step) / training_sps)))


def cuda_rng_state() -> dict[str, list[torch.Tensor]]:
    """The CUDA generators' states once a run has used CUDA (SAC's action noise, noisy nets and the replay's sampling
    on the GPU draw from them); nothing on a CPU run, whose checkpoints stay as they were."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return {"cuda_rng": torch.cuda.get_rng_state_all()}
    return {}


def set_cuda_rng_state(states: list[torch.Tensor] | None) -> None:
    """Put the CUDA generators back; a GPU checkpoint resumed where no GPU (or fewer) is visible says so once."""
    if states is None:
        return
    if torch.cuda.is_available() and torch.cuda.device_count() >= len(states):
        for index, state in enumerate(states):
            torch.cuda.set_rng_state(state, index)
        return
    print(f"this checkpoint was written on {len(states)} GPU(s) and resumes without them: the CUDA random streams "
          "are not restored, so the run continues but is not identical to an uninterrupted one", flush=True)


def count_updates(total_env_steps: int, learning_starts: int, update_period: int) -> int:
    """Gradient updates in a run: one at every agent step s with learning_starts < s ≤ total and s % period == 0."""
    return max(total_env_steps // update_period - learning_starts // update_period, 0)


class Trainer:
    """The loop over agent steps (``core.protocols.TrainerView`` is what callbacks see of it). It is written against
    the protocols of ``core``: any agent, replay and resumable env that provide them train here."""

    CLOCK = "agent step"  # what env_step counts, in the lines the loop prints

    def __init__(self, cfg: LoopConfig, agent: Agent, env: ResumableEnv, eval_env: ResumableEnv, replay: Replay,
                 logger: Logger, callbacks: Sequence[Callback] = (), checkpointer: Checkpointer | None = None,
                 stop: StopRequest | None = None):
        self.cfg, self.agent, self.env, self.eval_env = cfg, agent, env, eval_env
        self.replay, self.logger, self.callbacks, self.checkpointer = replay, logger, list(callbacks), checkpointer
        self.env_step = 0
        self.updates = 0
        self.last_eval: dict[str, float] = {}
        self.train_metrics: dict[str, Any] = {}
        self.episode_return = float("nan")
        self.eval_pending = False  # an evaluation due at env_step was interrupted and must run first on resume
        self.replay_stored = True  # False when resuming from a checkpoint without replay
        self.resumed = False
        self.last_checkpoint: Path | None = None
        self._saved_step = -1
        self._resume_state: dict[str, Any] | None = None
        self.update_seconds: list[float] = []  # wall time of the first updates of this process (sample + update)
        self.earlier_wall_time_s: list[float] = []  # each earlier process's loop time, up to its last checkpoint
        self.stop = stop if stop is not None else StopRequest()  # not `or`: an idle request is falsy
        self.total_updates = count_updates(cfg.total_env_steps, cfg.learning_starts, cfg.update_period)
        self.obs: Any = None  # the current observation, from the env's reset or the checkpoint
        # set as the loop starts: wall clock and agent step at its start and at the last log window, the bar
        self._t0 = self._window_t = 0.0
        self._window_step = self._start_step = 0
        self._bar: tqdm | None = None

    # --- checkpoint state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"env_step": self.env_step, "updates": self.updates, "last_eval": self.last_eval,
                "train_metrics": {k: torch.as_tensor(v).detach().cpu() for k, v in self.train_metrics.items()},
                "episode_return": self.episode_return, "eval_pending": self.eval_pending,
                "obs": torch.from_numpy(np.array(self.obs)), "env": self.env.state_dict(),
                "eval_env": self.eval_env.rng_state(), "torch_rng": torch.get_rng_state(), **cuda_rng_state(),
                **self.clock_state()}

    def clock_state(self) -> dict[str, list[float]]:
        """The loop time of every process so far, this one's up to now: a resumed run's wall time and core-hours
        count all of them (the time between a process's last checkpoint and a kill is lost work, not counted)."""
        return {"wall_time_s_per_process": [*self.earlier_wall_time_s, time.perf_counter() - self._t0]}

    def timing(self) -> dict[str, Any]:
        """The summary's timings: ``wall_time_s`` over all processes of the run, and each process's."""
        per_process = self.clock_state()["wall_time_s_per_process"]
        return {"wall_time_s": sum(per_process), "wall_time_s_per_process": per_process,
                "median_update_ms": statistics.median(self.update_seconds) * 1e3 if self.update_seconds else None}

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {"trainer": self.state_dict(), "agent": self.agent.state_dict(), "replay": self.replay.state_dict(),
                 "callbacks": {f"{i}:{type(cb).__name__}": cb.state_dict() for i, cb in self._stateful()},
                 "replay_stored": self.cfg.checkpoint.replay}
        arrays = {f"replay.{k}": v for k, v in self.replay.arrays().items()} if self.cfg.checkpoint.replay else {}
        return state, arrays

    def _stateful(self) -> list[tuple[int, Callback]]:
        return [(i, cb) for i, cb in enumerate(self.callbacks) if not cb.outside_checkpoints]

    def load_checkpoint(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore everything but the envs, which ``run`` rebuilds by re-playing the current episode."""
        names = [f"{i}:{type(cb).__name__}" for i, cb in self._stateful()]
        if names != list(state["callbacks"]):
            raise ResumeError(f"the checkpoint was written with callbacks {list(state['callbacks'])}, this run has "
                              f"{names}")
        try:
            self.agent.load_state_dict(state["agent"])
            replay_arrays = {k.removeprefix("replay."): v for k, v in arrays.items() if k.startswith("replay.")}
            self.load_replay(state["replay"], replay_arrays if state["replay_stored"] else {})
        except (RuntimeError, ValueError, KeyError) as e:
            raise ResumeError(f"it does not fit this run's agent or replay: {str(e).splitlines()[0]}") from None
        for (_, cb), cb_state in zip(self._stateful(), state["callbacks"].values(), strict=True):
            cb.load_state_dict(cb_state)
        t = state["trainer"]
        self.env_step, self.updates, self.last_eval = t["env_step"], t["updates"], t["last_eval"]
        self.train_metrics, self.episode_return = t["train_metrics"], t["episode_return"]
        self.eval_pending, self._saved_step = t["eval_pending"], t["env_step"]
        self.earlier_wall_time_s = list(t.get("wall_time_s_per_process", []))  # older checkpoints: not recorded
        torch.set_rng_state(t["torch_rng"])
        set_cuda_rng_state(t.get("cuda_rng"))
        self._resume_state, self.resumed = t, True

    def load_replay(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """The replay's counters, RNG and, when the checkpoint stored them, contents (a finished run's has none)."""
        self.replay_stored = bool(arrays)
        self.replay.load_state_dict(state, arrays if self.replay_stored else None)

    # --- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> dict:
        with self.stop:
            return self._run()

    def _run(self) -> dict:
        cfg, total = self.cfg, self.cfg.total_env_steps
        for cb in self.callbacks:
            cb.on_train_start(self)
        self.eval_env.reset(seed=cfg.seed + EVAL_SEED_OFFSET)  # seeds the eval env once; later resets continue it
        if self._resume_state is None:
            self.obs, _ = self.env.reset(seed=cfg.seed)
        else:
            s = self._resume_state
            try:
                self.obs = self.env.resume(s["env"], cfg.seed, s["obs"].numpy())
            except RuntimeError as e:
                raise ResumeError(f"cannot resume from {self.last_checkpoint}: {e}") from None
            self.eval_env.set_rng_state(s["eval_env"])
            if not self.replay_stored and self.env_step < total:
                self._refill()
            if self.stop:  # nothing has changed since the checkpoint: no need to write another
                raise Stopped(self.stop, self.env_step, self.last_checkpoint)
        self._t0 = self._window_t = time.perf_counter()
        self._window_step = self._start_step = self.env_step
        self._bar = tqdm(total=total, initial=self.env_step, disable=not cfg.progress, unit="step",
                         dynamic_ncols=True, mininterval=2.0,  # tqdm's own ETA would use the warm-up's speed
                         bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        try:
            if self.eval_pending:
                self._end_of_step()
            while self.env_step < total:
                self._step()
                self._end_of_step()
        finally:
            self._bar.update(self.env_step - self._bar.n)  # the last steps, when total is not a multiple of a window
            self._bar.close()  # before a stop's message, or the bar redraws below it
        for cb in self.callbacks:
            cb.on_train_end(self)
        self.logger.flush()
        return {"env_steps": self.env_step, "updates": self.updates,
                "final_eval_return": self.last_eval["eval/episodic_return"], **self.timing()}

    def _act_and_store(self, cut: bool = False) -> dict | None:
        """One env step with the agent's policy, its transition stored; the episode statistics if it ended.
        ``cut`` ends the episode here as a truncation (the env is reset)."""
        action = self.agent.act(self.obs, self.env_step)
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self.env_step += 1
        clip = self.cfg.reward_clip
        if clip is not None:
            reward = min(max(reward, -clip), clip)
        episode_end = terminated or truncated or cut
        self.replay.add(self.obs, action, reward, terminated or info.get("life_lost", False), episode_end, next_obs)
        self.obs = self.env.reset()[0] if episode_end else next_obs
        return info["episode"] if terminated or truncated else None

    def _step(self) -> None:
        cfg, logger = self.cfg, self.logger
        episode = self._act_and_store()
        if episode is not None:
            self.episode_return = float(episode["r"])
            logger.log({"charts/episodic_return": self.episode_return, "charts/episodic_length": int(episode["l"])},
                       self.env_step)
        for cb in self.callbacks:
            cb.on_env_step(self)
        if self.env_step > cfg.learning_starts and self.env_step % cfg.update_period == 0:
            self._learn()
        if self.env_step % self.cfg.log_every_env_steps == 0:
            now = time.perf_counter()
            sps = (self.env_step - self._window_step) / (now - self._window_t)
            logger.log({**self.train_metrics, "charts/SPS": sps,
                        "charts/SPS_cumulative": (self.env_step - self._start_step) / (now - self._t0),
                        **self.agent.charts(self.env_step), "charts/updates": self.updates},
                       self.env_step)
            self._bar.update(self.env_step - self._bar.n)
            training = sps if self._window_step >= cfg.learning_starts else None  # a window of training steps only
            ret = {"ret": f"{self.episode_return:.1f}"} if math.isfinite(self.episode_return) else {}  # no episode yet
            self._bar.set_postfix(SPS=f"{sps:.0f}", **ret,
                                  ETA=eta(self.env_step, cfg.total_env_steps, cfg.learning_starts, training),
                                  refresh=False)
            self._window_t, self._window_step = now, self.env_step

    def _learn(self) -> None:
        """One gradient update on a sampled batch: timed, checked for NaN, priorities written back, callbacks told."""
        t0 = time.perf_counter()
        batch = self.replay.sample(self.cfg.batch_size)
        result = self.agent.update(batch)
        if len(self.update_seconds) < UPDATE_TIMES_KEPT:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.synchronize()  # the run's device (train.py makes it current): kernels, not launches
            self.update_seconds.append(time.perf_counter() - t0)
        self.updates += 1
        self._check_finite(result)
        if result.priorities is not None:
            self.replay.update_priorities(batch.indices, result.priorities)
        self.train_metrics = result.logged()
        for cb in self.callbacks:
            cb.on_update_end(self, result)

    def _end_of_step(self) -> None:
        """Evaluate and checkpoint when due, then answer a stop request. Always at a step boundary."""
        cfg, step = self.cfg, self.env_step
        if self.eval_pending or step % cfg.eval.every_env_steps == 0 or step == cfg.total_env_steps:
            self._evaluate()
        if not self.eval_pending and (step % cfg.checkpoint.every_env_steps == 0 or step == cfg.total_env_steps):
            self._save()
        if self.stop:
            if self._saved_step != step:
                self._save()
            raise Stopped(self.stop, step, self.last_checkpoint)

    def say(self, message: str) -> None:
        """A line for the user on stdout, above the progress bar when one is drawn (tqdm draws it again below)."""
        if self._bar is not None and not self._bar.disable:
            self._bar.write(message)
        else:
            print(message, flush=True)

    def _evaluate(self) -> None:
        """Says when it starts and what it scored: a final evaluation of 10 Pong episodes takes minutes. If a stop
        request interrupts it, every random state it used (the eval env's, the agent's and torch's) is put back, so
        the checkpoint holds the state from before it and the resumed run re-runs it."""
        before = self.eval_env.rng_state(), self.agent.rng_state(), torch.get_rng_state(), cuda_rng_state()
        video = f"eval_step{self.env_step}" if self.cfg.eval.video else None
        episodes, t0 = self.cfg.eval.episodes, time.perf_counter()
        which = "final evaluation" if self.env_step == self.cfg.total_env_steps else "evaluation"
        where = f"{which} at {self.CLOCK} {self.env_step:,}"
        if self._bar is not None:
            self._bar.update(self.env_step - self._bar.n)  # the bar stands where the evaluation is
        self.say(f"{where}: playing {episodes} episode{'s' if episodes > 1 else ''} ...")
        result = evaluate(self.agent, self.eval_env, episodes, self.env_step, lambda: bool(self.stop), video)
        if result is not None:
            self.say(f"{where}: return {result['eval/episodic_return']:.2f} ± {result['eval/episodic_return_std']:.2f} "
                     f"({time.perf_counter() - t0:.1f} s)")
        if result is None:
            self.eval_env.set_rng_state(before[0])
            self.agent.set_rng_state(before[1])
            torch.set_rng_state(before[2])
            set_cuda_rng_state(before[3].get("cuda_rng"))
            self.eval_pending = True
            return
        self.eval_pending = False
        self.last_eval = result
        self.logger.log(result, self.env_step)
        if video is not None:
            self.logger.video("videos/eval", self.eval_env.get_wrapper_attr("last_video"), self.env_step,
                              self.eval_env.get_wrapper_attr("frames_per_sec"))
        for cb in self.callbacks:
            cb.on_eval_end(self, result)
        self._window_t, self._window_step = time.perf_counter(), self.env_step  # keep evaluation out of training SPS

    def _check_finite(self, result: UpdateResult) -> None:
        """The losses the agent reported, in one host sync per update however many there are (SAC reports five);
        free on CPU, and acting syncs every step anyway. Only a non-finite one is looked at one by one."""
        values = list(result.losses.values())
        if len(values) > 1 and all(torch.is_tensor(v) and v.is_cuda for v in values):
            if bool(torch.isfinite(torch.stack([v.float().reshape(()) for v in values])).all()):
                return
        for tag, value in result.losses.items():
            if not math.isfinite(float(value)):
                raise Diverged(f"{tag} is {float(value)} at update {self.updates} (agent step {self.env_step}); "
                               f"the run stops here. {self._last_good()}")

    def _last_good(self) -> str:
        if self.last_checkpoint is None:
            return "No checkpoint was written before it."
        return f"The last checkpoint, {self.last_checkpoint}, was written before it and is intact."

    def _save(self) -> None:
        if self.checkpointer is None:
            return
        for name, net in self.agent.networks().items():
            if not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
                raise Diverged(f"the {name} network has NaN or infinite weights at update {self.updates} (agent step "
                               f"{self.env_step}); no checkpoint written. {self._last_good()}")
        t0 = time.perf_counter()
        state, arrays = self.checkpoint_state()
        try:
            tmp, nbytes = self.checkpointer.begin(self.env_step, state, arrays)
            self.logger.log({"checkpoint/bytes": nbytes, "checkpoint/seconds": time.perf_counter() - t0},
                            self.env_step)
            self.last_checkpoint = self.checkpointer.commit(tmp, self.env_step, self.logger.offsets())
        except OSError as e:  # a full disk, a lost mount: the half-written folder is removed at the next start
            raise CheckpointWriteError(f"could not write the checkpoint at agent step {self.env_step} in "
                                       f"{self.checkpointer.dir}: {e.strerror or e}. {self._last_good()}") from None
        self._saved_step = self.env_step
        self._window_t = time.perf_counter() - (t0 - self._window_t)  # keep the write out of training SPS

    def _refill(self) -> None:
        """Without stored replay (``checkpoint.replay=false``) the learner would sample from a nearly empty buffer:
        first act for as many env steps as the uninterrupted run's buffer holds by now, up to
        ``agent.learning_starts``. These steps do not count in ``env_step`` and their episodes are not logged, so
        the resumed run keeps its schedules but is not identical to an uninterrupted one. The refill's last
        episode is cut (stored as truncated) and the env reset."""
        step = self.env_step
        n = min(step, self.cfg.learning_starts, self.cfg.replay_capacity)
        print(f"this checkpoint holds no replay (checkpoint.replay=false): refilling it with {n:,} env steps",
              flush=True)
        for i in range(n):
            if self.stop:
                raise Stopped(self.stop, step, self.last_checkpoint)
            self._act_and_store(cut=i == n - 1)
            self.env_step = step
