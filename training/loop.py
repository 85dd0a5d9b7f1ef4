"""The training loop. It owns the two clocks (agent steps, gradient updates) and decides when to update,
evaluate and log; agents and callbacks only react."""

from __future__ import annotations

import time
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from agents.replay import ReplayBuffer
from training.callbacks import Callback
from training.config import Config
from training.logger import Logger


def evaluate(agent, env: gym.Env, episodes: int, env_step: int) -> dict[str, float]:
    """Mean raw return of full episodes acted with the agent's evaluation policy (ε = ``eval_epsilon``)."""
    returns, lengths = [], []
    while len(returns) < episodes:
        obs, _ = env.reset()
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(agent.act(obs, env_step, eval_mode=True))
            done = terminated or truncated
        returns.append(float(info["episode"]["r"]))
        lengths.append(int(info["episode"]["l"]))
    return {"eval/episodic_return": float(np.mean(returns)), "eval/episodic_return_std": float(np.std(returns)),
            "eval/episodic_length": float(np.mean(lengths))}


def count_updates(total_env_steps: int, learning_starts: int, update_period: int) -> int:
    """Gradient updates in a run: one at every agent step s with learning_starts < s ≤ total and s % period == 0."""
    return max(total_env_steps // update_period - learning_starts // update_period, 0)


class Trainer:
    def __init__(self, cfg: Config, agent, env: gym.Env, eval_env: gym.Env, replay: ReplayBuffer, logger: Logger,
                 callbacks: Sequence[Callback] = ()):
        self.cfg, self.agent, self.env, self.eval_env = cfg, agent, env, eval_env
        self.replay, self.logger, self.callbacks = replay, logger, list(callbacks)
        self.env_step = 0
        self.updates = 0
        self.last_eval: dict[str, float] = {}
        self.total_updates = count_updates(cfg.total_env_steps, cfg.agent.learning_starts, cfg.agent.update_period)

    def run(self) -> dict:
        cfg, agent, env, replay, logger = self.cfg, self.agent, self.env, self.replay, self.logger
        total, a = cfg.total_env_steps, cfg.agent
        clip = cfg.env.reward_clip
        for cb in self.callbacks:
            cb.on_train_start(self)
        obs, _ = env.reset(seed=cfg.seed)
        self.eval_env.reset(seed=cfg.seed + 1_000_003)  # seeds the eval env's RNG once; later resets continue it
        t0 = time.perf_counter()
        window_t, window_step = t0, 0
        train_metrics: dict = {}
        episode_return = float("nan")
        bar = tqdm(total=total, disable=not cfg.progress, unit="step", dynamic_ncols=True, mininterval=2.0)
        while self.env_step < total:
            action = agent.act(obs, self.env_step)
            next_obs, reward, terminated, truncated, info = env.step(action)
            self.env_step += 1
            if clip is not None:
                reward = min(max(reward, -clip), clip)
            episode_end = terminated or truncated
            replay.add(obs, action, reward, terminated or info.get("life_lost", False), episode_end, next_obs)
            if episode_end:
                episode_return = float(info["episode"]["r"])
                logger.log({"charts/episodic_return": episode_return,
                            "charts/episodic_length": int(info["episode"]["l"])}, self.env_step)
                obs, _ = env.reset()
            else:
                obs = next_obs
            for cb in self.callbacks:
                cb.on_env_step(self)

            if self.env_step > a.learning_starts and self.env_step % a.update_period == 0:
                train_metrics = agent.update(replay.sample(a.batch_size))
                self.updates += 1
                for cb in self.callbacks:
                    cb.on_update_end(self, train_metrics)

            if self.env_step % cfg.log_every_env_steps == 0:
                now = time.perf_counter()
                sps = (self.env_step - window_step) / (now - window_t)
                logger.log({**train_metrics, "charts/SPS": sps,
                            "charts/SPS_cumulative": self.env_step / (now - t0),
                            "charts/epsilon": agent.epsilon(self.env_step),
                            "charts/updates": self.updates}, self.env_step)
                bar.update(self.env_step - bar.n)
                bar.set_postfix(SPS=f"{sps:.0f}", ret=f"{episode_return:.1f}", refresh=False)
                window_t, window_step = now, self.env_step

            if self.env_step % cfg.eval.every_env_steps == 0 or self.env_step == total:
                self.last_eval = evaluate(agent, self.eval_env, cfg.eval.episodes, self.env_step)
                logger.log(self.last_eval, self.env_step)
                for cb in self.callbacks:
                    cb.on_eval_end(self, self.last_eval)
                window_t, window_step = time.perf_counter(), self.env_step  # keep evaluation out of training SPS
        bar.update(self.env_step - bar.n)
        bar.close()
        for cb in self.callbacks:
            cb.on_train_end(self)
        logger.flush()
        return {"env_steps": self.env_step, "updates": self.updates,
                "final_eval_return": self.last_eval["eval/episodic_return"],
                "wall_time_s": time.perf_counter() - t0}
