"""The on-policy loop (PPO): rollouts of ``num_envs`` Gymnasium vector environments for ``num_steps`` steps, then
the agent's gradient updates on that rollout, as CleanRL's ``ppo.py`` orders them.

One iteration is: ``num_steps`` vector steps (act, step every env, hand the outcome to the agent, log finished
episodes), then every gradient update of the rollout, each counted as it is taken (``updates``; the pruning
schedule's clock, read by optimizer-step hooks as in the off-policy loop), then logging, evaluation and the
checkpoint when due. ``env_step`` counts agent steps over all envs (CleanRL's ``global_step``).

Checkpoints, evaluations and stop requests are taken at rollout boundaries only: a resumed run starts the next
rollout with everything (networks, Adam, the agent's normalisation statistics and done flags, RNGs, every env's
episode, log files) as the uninterrupted run had it, so it is the same run. A stop signal is answered after the
rollout and its updates in progress (one iteration, seconds for the suite's settings); a kill loses the work since
the last checkpoint. Each environment is put back as the off-policy loop puts back its one env: its random state
before the episode's reset and the episode's actions re-played (``core.protocols.ResumableEnv``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from core.callbacks import Callback
from core.protocols import OnPolicyAgent, ResumableEnv
from training.checkpoint import Checkpointer
from training.logger import Logger
from training.loop import EVAL_SEED_OFFSET, UPDATE_TIMES_KEPT, LoopConfig, ResumeError, Stopped, Trainer, cuda_rng_state
from training.signals import StopRequest


def crossed(step: int, previous: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in (previous, step]: a period in agent steps met by a rollout that
    advanced the clock from ``previous`` to ``step``."""
    return step // every > previous // every


def finished_episodes(infos: dict[str, Any]) -> list[tuple[int, float, int]]:
    """(env, return, length) of each episode that ended in this vector step, from a same-step autoreset's
    ``final_info``."""
    final = infos.get("final_info", {})
    if "episode" not in final:
        return []
    episode, mask = final["episode"], final["_episode"]
    return [(i, float(episode["r"][i]), int(episode["l"][i])) for i in np.flatnonzero(mask)]


class OnPolicyTrainer(Trainer):
    """The loop over rollouts. ``envs`` is a ``gymnasium.vector.SyncVectorEnv`` in same-step autoreset mode (an
    episode's end returns the next episode's first observation, the last one in ``final_obs``, as Gymnasium 0.29's
    vector envs did for CleanRL) whose envs are ``ResumableEnv``; ``replay`` is the agent's rollout (what the health
    probe and ReDo draw states from). Callbacks, the logger, evaluation, checkpoints and stop requests are the
    off-policy loop's."""

    agent: OnPolicyAgent

    def __init__(self, cfg: LoopConfig, agent: OnPolicyAgent, envs: gym.vector.SyncVectorEnv, eval_env: ResumableEnv,
                 replay, logger: Logger, callbacks: Sequence[Callback] = (), checkpointer: Checkpointer | None = None,
                 stop: StopRequest | None = None):
        super().__init__(cfg, agent, envs, eval_env, replay, logger, callbacks, checkpointer, stop)
        self.envs: list[ResumableEnv] = list(envs.envs)
        self.batch_env_steps = agent.num_envs * agent.num_steps
        self.num_iterations = cfg.total_env_steps // self.batch_env_steps  # CleanRL's num_iterations
        self.total_updates = self.num_iterations * agent.updates_per_iteration()
        self.last_step = self.num_iterations * self.batch_env_steps  # total_env_steps, whole rollouts (suite.py)
        self.iteration = 0  # rollouts done

    # --- checkpoint state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"env_step": self.env_step, "updates": self.updates, "iteration": self.iteration,
                "last_eval": self.last_eval,
                "train_metrics": {k: torch.as_tensor(v).detach().cpu() for k, v in self.train_metrics.items()},
                "episode_return": self.episode_return, "eval_pending": self.eval_pending,
                "obs": torch.from_numpy(np.array(self.obs)), "envs": [env.state_dict() for env in self.envs],
                "eval_env": self.eval_env.rng_state(), "torch_rng": torch.get_rng_state(), **cuda_rng_state(),
                **self.clock_state()}

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {"trainer": self.state_dict(), "agent": self.agent.state_dict(), "replay": {},
                 "callbacks": {f"{i}:{type(cb).__name__}": cb.state_dict() for i, cb in self._stateful()},
                 "replay_stored": False}
        return state, {}

    def load_replay(self, state: dict, arrays: dict[str, np.ndarray]) -> None:
        """Nothing to restore: a checkpoint is taken between rollouts, when the rollout holds nothing."""
        self.replay_stored = True

    def load_checkpoint(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super().load_checkpoint(state, arrays)
        self.iteration = state["trainer"]["iteration"]

    # --- the loop ---------------------------------------------------------------------------------------------
    def _run(self) -> dict:
        cfg = self.cfg
        for cb in self.callbacks:
            cb.on_train_start(self)
        self.eval_env.reset(seed=cfg.seed + EVAL_SEED_OFFSET)
        if self._resume_state is None:
            self.obs, _ = self.env.reset(seed=cfg.seed)  # env i is seeded with seed + i, as CleanRL's envs.reset
            self.agent.start(self.obs)
        else:
            s = self._resume_state
            self.obs = s["obs"].numpy()
            try:
                for i, (env, state) in enumerate(zip(self.envs, s["envs"], strict=True)):
                    env.resume(state, cfg.seed + i, self.obs[i])
            except (RuntimeError, ValueError) as e:
                raise ResumeError(f"cannot resume from {self.last_checkpoint}: {e}") from None
            self.eval_env.set_rng_state(s["eval_env"])
            if self.stop:
                raise Stopped(self.stop, self.env_step, self.last_checkpoint)
        self._t0 = self._window_t = time.perf_counter()
        self._window_step = self._start_step = self.env_step
        self._bar = tqdm(total=self.last_step, initial=self.env_step, disable=not cfg.progress, unit="step",
                         dynamic_ncols=True, mininterval=2.0,
                         bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        try:
            if self.eval_pending:
                self._end_of_iteration()
            while self.iteration < self.num_iterations:
                self._rollout()
                self._learn_rollout()
                self.iteration += 1
                self._log_iteration()
                self._end_of_iteration()
        finally:
            self._bar.update(self.env_step - self._bar.n)
            self._bar.close()  # before a stop's message, or the bar redraws below it
        for cb in self.callbacks:
            cb.on_train_end(self)
        self.logger.flush()
        return {"env_steps": self.env_step, "updates": self.updates, "iterations": self.iteration,
                "final_eval_return": self.last_eval["eval/episodic_return"], **self.timing()}

    def _rollout(self) -> None:
        for _ in range(self.agent.num_steps):
            self._vector_step()

    def _vector_step(self) -> None:
        """One step of every env (``num_envs`` agent steps); each finished episode is logged at the step it ended
        (CleanRL's ``charts/episodic_return`` at ``global_step``)."""
        actions = self.agent.collect(self.obs)
        next_obs, rewards, terminations, truncations, infos = self.env.step(actions)
        self.env_step += self.agent.num_envs
        if self.cfg.reward_clip is not None:
            rewards = np.clip(rewards, -self.cfg.reward_clip, self.cfg.reward_clip)
        lost = infos.get("life_lost")  # env.profile=nature: a lost life ends the episode for the learner
        if lost is not None:
            terminations = terminations | (lost & infos["_life_lost"])
        final_obs = {int(i): infos["final_obs"][i] for i in np.flatnonzero(infos.get("_final_obs", []))}
        self.agent.record(rewards, terminations, truncations, next_obs, final_obs)
        for _, ret, length in finished_episodes(infos):
            self.episode_return = ret
            self.logger.log({"charts/episodic_return": ret, "charts/episodic_length": length}, self.env_step)
        self.obs = next_obs
        for cb in self.callbacks:
            cb.on_env_step(self)

    def _learn_rollout(self) -> None:
        """Every gradient update of the rollout, each timed, checked for NaN and told to the callbacks as it is
        taken: inside an optimizer-step hook ``updates`` is the index of the update in progress."""
        updates = self.agent.learn(self.obs, self.iteration + 1, self.num_iterations)
        while True:
            t0 = time.perf_counter()
            result = next(updates, None)
            if result is None:
                return
            if len(self.update_seconds) < UPDATE_TIMES_KEPT:
                if torch.cuda.is_available() and torch.cuda.is_initialized():
                    torch.cuda.synchronize()
                self.update_seconds.append(time.perf_counter() - t0)
            self.updates += 1
            self._check_finite(result)
            self.train_metrics = result.logged()
            for cb in self.callbacks:
                cb.on_update_end(self, result)

    def _log_iteration(self) -> None:
        """The last update's losses (CleanRL logs once per rollout), SPS and the agent's charts, every
        ``log_every_env_steps`` (at the first rollout end past each multiple)."""
        step, cfg = self.env_step, self.cfg
        if not crossed(step, step - self.batch_env_steps, cfg.log_every_env_steps):
            return
        now = time.perf_counter()
        sps = (step - self._window_step) / (now - self._window_t)
        self.logger.log({**self.train_metrics, "charts/SPS": sps,
                         "charts/SPS_cumulative": (step - self._start_step) / (now - self._t0),
                         **self.agent.charts(step), "charts/updates": self.updates}, step)
        self._bar.update(step - self._bar.n)
        ret = {"ret": f"{self.episode_return:.1f}"} if math.isfinite(self.episode_return) else {}  # no episode yet
        self._bar.set_postfix(SPS=f"{sps:.0f}", **ret, refresh=False)
        self._window_t, self._window_step = now, step

    def _end_of_iteration(self) -> None:
        """Evaluate and checkpoint when due (a period met by this rollout, or the last rollout), then answer a stop
        request. Always at a rollout boundary."""
        cfg, step = self.cfg, self.env_step
        previous, last = step - self.batch_env_steps, step == self.last_step
        if self.eval_pending or crossed(step, previous, cfg.eval.every_env_steps) or last:
            self._evaluate()
        if not self.eval_pending and (crossed(step, previous, cfg.checkpoint.every_env_steps) or last):
            self._save()
        if self.stop:
            if self._saved_step != step:
                self._save()
            raise Stopped(self.stop, step, self.last_checkpoint)
