"""Proximal Policy Optimization (Schulman et al. 2017) as CleanRL's ``ppo.py`` (classic control, separate actor and
critic), ``ppo_atari.py`` (one torso, two heads: ``shared_torso``) and ``ppo_continuous_action.py`` (a Gaussian
policy with a state-independent log σ, observation and reward normalisation): GAE(λ), the clipped surrogate, the
clipped value loss, per-minibatch advantage normalisation, the entropy bonus, one global gradient-norm clip, linear
learning-rate annealing, ``update_epochs`` passes over ``num_minibatches`` shuffled minibatches, and the optional
``target_kl`` early stop. Keys are CleanRL's arguments; the parity table is ``docs/agents/ppo.md``.

The on-policy loop (``training/on_policy.py``) steps the environments and hands each step over (``collect``,
``record``); ``learn`` then yields after every gradient update, so the loop counts each one as it happens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Normal

from agents.networks import Init, Network, build_network, trainable
from agents.optimizer import adam
from agents.registry import AGENTS
from agents.rollout import ObservationNormalizer, RewardNormalizer, Rollout
from core.errors import require
from core.protocols import UpdateResult
from core.spaces import ActionKind

HIDDEN_GAIN = math.sqrt(2)  # CleanRL's layer_init default std for every hidden layer
ACTOR_GAIN, CRITIC_GAIN = 0.01, 1.0  # CleanRL's policy-output and value-output gains


class Policy(str, Enum):
    """The action distribution: ``auto`` from the env's actions, ``categorical`` (discrete), ``gaussian``
    (continuous)."""

    auto = "auto"
    categorical = "categorical"
    gaussian = "gaussian"


@dataclass
class PPOConfig:
    """CleanRL's ``ppo.py`` defaults (CartPole); ``conf/tuned/ppo_*.yaml`` set ``ppo_atari.py``'s and
    ``ppo_continuous_action.py``'s."""

    name: str = "ppo"
    learning_rate: float = 2.5e-4  # Adam's learning rate (at the start, with anneal_lr)
    num_envs: int = 4  # environments stepped together (Gymnasium's SyncVectorEnv)
    num_steps: int = 128  # agent steps per environment per rollout; a rollout is num_envs × num_steps agent steps
    anneal_lr: bool = True  # the learning rate falls linearly to 0 over the run's rollouts
    gamma: float = 0.99  # discount factor
    gae_lambda: float = 0.95  # λ of the generalised advantage estimate
    num_minibatches: int = 4  # minibatches per epoch; must divide num_envs × num_steps
    update_epochs: int = 4  # passes over each rollout (K epochs)
    norm_adv: bool = True  # normalise the advantages of each minibatch (mean 0, std 1)
    clip_coef: float = 0.2  # ε of the clipped surrogate (and of the value clip)
    clip_vloss: bool = True  # the clipped value loss of the PPO paper's code; false: plain squared error
    ent_coef: float = 0.01  # weight of the entropy bonus
    vf_coef: float = 0.5  # weight of the value loss
    max_grad_norm: float = 0.5  # the global gradient norm (all networks together) is clipped to this
    target_kl: float | None = None  # stop a rollout's epochs once the approximate KL exceeds it; null = never
    adam_eps: float = 1e-5  # Adam's ε (CleanRL's 1e-5, not PyTorch's 1e-8)
    weight_decay: float = 0.0  # decoupled (AdamW-style) weight decay; 0 = CleanRL's plain Adam
    policy: Policy = Policy.auto  # the action distribution: auto (from the env's actions), categorical or gaussian
    shared_torso: bool = False  # one network with a policy head and a value head (ppo_atari.py); false: two networks
    norm_obs: bool = False  # normalise observations per env with a running mean and variance (continuous PPO)
    clip_obs: float = 10.0  # normalised observations are clipped to ±clip_obs
    norm_reward: bool = False  # divide rewards by the running std of a discounted return per env (continuous PPO)
    clip_reward: float = 10.0  # normalised rewards are clipped to ±clip_reward
    deterministic_eval: bool = False  # evaluate with the mode (argmax or mean); false samples, as CleanRL's eval

    @property
    def batch_size(self) -> int:
        """Agent steps per rollout, CleanRL's ``batch_size``."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    def validate(self) -> None:
        for key in ("learning_rate", "adam_eps", "clip_coef", "max_grad_norm", "clip_obs", "clip_reward"):
            require(getattr(self, key) > 0, key, getattr(self, key), "must be > 0")
        for key in ("num_envs", "num_steps", "num_minibatches", "update_epochs"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1")
        require(self.batch_size % self.num_minibatches == 0, "num_minibatches", self.num_minibatches,
                f"must divide agent.num_envs × agent.num_steps = {self.batch_size} (the rollout is split into equal "
                f"minibatches)")
        require(0 <= self.gamma <= 1, "gamma", self.gamma, "must be in [0, 1]")
        require(0 <= self.gae_lambda <= 1, "gae_lambda", self.gae_lambda, "must be in [0, 1]")
        for key in ("ent_coef", "vf_coef", "weight_decay"):
            require(getattr(self, key) >= 0, key, getattr(self, key), "must be >= 0")
        require(self.target_kl is None or self.target_kl > 0, "target_kl", self.target_kl, "must be > 0, or null")


class RolloutBatch(NamedTuple):
    """One minibatch of a rollout, flattened over steps and envs."""

    obs: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor  # log π_old(a|s), from acting
    advantages: torch.Tensor
    returns: torch.Tensor  # advantages + values: the value target
    values: torch.Tensor  # V_old(s), from acting


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
        next_done: torch.Tensor, gamma: float, gae_lambda: float) -> torch.Tensor:
    """Generalised advantage estimates (Schulman et al. 2016, Eq. 16), (T, N), by CleanRL's backward recursion:
    δ_t = r_t + γ V(s_{t+1}) (1 − d_{t+1}) − V(s_t), A_t = δ_t + γλ (1 − d_{t+1}) A_{t+1}. ``dones[t]`` says the
    observation at t began a new episode (the step before ended one, by termination or truncation alike, as
    CleanRL); ``next_value`` and ``next_done`` are those of the observation after the last step."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        nonterminal = 1.0 - (next_done if t == rewards.shape[0] - 1 else dones[t + 1])
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        delta = rewards[t] + gamma * following * nonterminal - values[t]
        advantages[t] = last = delta + gamma * gae_lambda * nonterminal * last
    return advantages


def normalized(advantages: torch.Tensor) -> torch.Tensor:
    """A minibatch's advantages with mean 0 and (Bessel-corrected) std 1, + 1e-8 against a zero std, as CleanRL."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def clipped_surrogate_loss(ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """The PPO-clip objective as a loss (Schulman et al. 2017, Eq. 7, negated):
    mean(max(−A·r, −A·clip(r, 1 − ε, 1 + ε))), r = π(a|s) / π_old(a|s)."""
    return torch.max(-advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)).mean()


def value_loss(new_values: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, clip_coef: float,
               clip_vloss: bool) -> torch.Tensor:
    """½ mean((V − R)²); clipped (the PPO paper's code, CleanRL's default): ½ mean(max((V − R)², (V_clip − R)²)),
    V_clip = V_old + clip(V − V_old, −ε, ε)."""
    unclipped = (new_values - returns) ** 2
    if not clip_vloss:
        return 0.5 * unclipped.mean()
    clipped = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    return 0.5 * torch.max(unclipped, (clipped - returns) ** 2).mean()


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float | None:
    """1 − Var(R − V) / Var(R) of the rollout's value predictions; None when the returns do not vary (CleanRL logs
    NaN there)."""
    y_pred, y_true = values.cpu().numpy(), returns.cpu().numpy()
    var_y = np.var(y_true)
    return None if var_y == 0 else float(1 - np.var(y_true - y_pred) / var_y)


class GaussianHead(nn.Module):
    """The mean of a diagonal Gaussian policy and its state-independent log σ (CleanRL's ``actor_mean`` output layer
    and ``actor_logstd``, zeros at init). ``log_std`` is 1-D, where CleanRL's is (1, |A|), so that it is not among
    the builder's weights (ndim > 1): it is never pruned."""

    def __init__(self, hidden: int, n_out: int):
        super().__init__()
        self.mean = nn.Linear(hidden, n_out)
        self.log_std = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean(x)


class ActorCriticHead(nn.Module):
    """``ppo_atari.py``'s two heads on one torso: the policy's outputs, then the value, concatenated."""

    def __init__(self, actor: nn.Module, critic: nn.Linear):
        super().__init__()
        self.actor, self.critic = actor, critic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.actor(x), self.critic(x)], dim=-1)


class PolicyNetwork(Network):
    """A network initialised as CleanRL's ``layer_init``: orthogonal weights with a gain per layer, zero biases.
    Each layer keeps its gain (``orthogonal_gain``), so ReDo and resets re-draw it the same way."""

    @torch.no_grad()
    def fresh_parameters(self, layer: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
        gain = getattr(layer, "orthogonal_gain", None)
        if gain is None:
            return super().fresh_parameters(layer, generator)
        weight = torch.empty(layer.weight.shape)
        nn.init.orthogonal_(weight, gain, generator=generator)
        return {"weight": weight.to(layer.weight), "bias": torch.zeros_like(layer.bias)}


@torch.no_grad()
def orthogonal_init(layer: nn.Module, gain: float) -> None:
    """CleanRL's ``layer_init(layer, std=gain)``: orthogonal weight, zero bias. Drawn into a contiguous tensor and
    copied, so a channels-last convolution keeps its memory format."""
    layer.weight.copy_(nn.init.orthogonal_(torch.empty(layer.weight.shape, device=layer.weight.device), gain))
    nn.init.zeros_(layer.bias)
    layer.orthogonal_gain = gain


LAYERS = (nn.Linear, nn.Conv2d)


@AGENTS.register("ppo", config=PPOConfig, actions=(ActionKind.discrete, ActionKind.continuous), on_policy=True)
class PPO:
    def __init__(self, cfg: PPOConfig, network_cfg, obs_shape: tuple[int, ...], n_out: int, rng: np.random.Generator,
                 device: torch.device, transform=None, action_kind: ActionKind = ActionKind.discrete):
        """``n_out``: the action count, or the action dimension of a continuous env. ``transform`` (an adapter) is
        applied to each network after CleanRL's init, before the optimizer exists."""
        self.cfg, self.rng, self.device, self.n_out = cfg, rng, device, n_out
        self.num_envs, self.num_steps = cfg.num_envs, cfg.num_steps
        self.continuous = action_kind == ActionKind.continuous
        orthogonal = getattr(network_cfg, "init", Init.auto) == Init.auto  # network.init=xavier|torch overrides it

        def build(n: int, head, head_gain) -> Network:
            net = build_network(network_cfg, obs_shape, n, head=head, cls=PolicyNetwork).to(device)
            if orthogonal:
                for layer in net.features.modules():
                    if isinstance(layer, LAYERS):
                        orthogonal_init(layer, HIDDEN_GAIN)
                for layer, gain in head_gain(net.head):
                    orthogonal_init(layer, gain)
            return transform(net) if transform is not None else net

        def policy_head(hidden: int, n: int) -> nn.Module:
            return GaussianHead(hidden, n) if self.continuous else nn.Linear(hidden, n)

        def policy_layer(head: nn.Module) -> nn.Linear:
            return head.mean if isinstance(head, GaussianHead) else head

        if cfg.shared_torso:
            self.actor_critic = build(n_out, lambda hidden, n: ActorCriticHead(policy_head(hidden, n),
                                                                               nn.Linear(hidden, 1)),
                                      lambda head: [(policy_layer(head.actor), ACTOR_GAIN), (head.critic, CRITIC_GAIN)])
            self._networks = {"actor_critic": self.actor_critic}
        else:  # the critic first, as CleanRL's Agent builds them
            self.critic = build(1, None, lambda head: [(head, CRITIC_GAIN)])
            self.actor = build(n_out, policy_head, lambda head: [(policy_layer(head), ACTOR_GAIN)])
            self._networks = {"actor": self.actor, "critic": self.critic}
        self._params = trainable(*self._networks.values())
        self.optimizer = adam(self._params, cfg.learning_rate, cfg.adam_eps, cfg.weight_decay, device)
        self.rollout = Rollout(cfg.num_steps, cfg.num_envs, tuple(obs_shape), (n_out,) if self.continuous else (),
                               device)
        self.next_done = torch.zeros(cfg.num_envs, device=device)
        self.obs_norm = ObservationNormalizer(cfg.num_envs, tuple(obs_shape), cfg.clip_obs) if cfg.norm_obs else None
        self.reward_norm = RewardNormalizer(cfg.num_envs, cfg.gamma, cfg.clip_reward) if cfg.norm_reward else None
        self.eval_generator = torch.Generator(device).manual_seed(int(rng.integers(2**63)))

    # --- the parts the suite reads --------------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return dict(self._networks)

    def target_networks(self) -> dict[str, nn.Module]:
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One Adam over every network, as CleanRL's ``optim.Adam(agent.parameters())``."""
        return {"agent": self.optimizer}

    def network_inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: obs for name in self._networks}

    def charts(self, env_step: int) -> dict[str, float]:
        return {"charts/learning_rate": self.optimizer.param_groups[0]["lr"]}

    def updates_per_iteration(self) -> int:
        """Gradient updates per rollout when every epoch runs (``target_kl`` may stop earlier)."""
        return self.cfg.update_epochs * self.cfg.num_minibatches

    # --- the policy -------------------------------------------------------------------------------------------
    def policy_and_value(self, x: torch.Tensor) -> tuple[Distribution, torch.Tensor]:
        """π(·|s) and V(s), (B,), for a batch of (normalised) observations."""
        if self.cfg.shared_torso:
            out = self.actor_critic(x)
            return self._dist(out[:, :self.n_out], self.actor_critic.head.actor), out[:, self.n_out]
        return self._dist(self.actor(x), self.actor.head), self.critic(x).squeeze(1)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.shared_torso:
            return self.actor_critic(x)[:, self.n_out]
        return self.critic(x).squeeze(1)

    def _dist(self, out: torch.Tensor, head: nn.Module) -> Distribution:
        if not self.continuous:
            return Categorical(logits=out)
        return Normal(out, head.log_std.expand_as(out).exp())

    def _log_prob_entropy(self, dist: Distribution, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log π(a|s) and the entropy, summed over action dimensions for a Gaussian."""
        if self.continuous:
            return dist.log_prob(actions).sum(1), dist.entropy().sum(1)
        return dist.log_prob(actions.long()), dist.entropy()

    def _input(self, obs: np.ndarray) -> torch.Tensor:
        """A batch of observations as the networks take them: row i normalised with env i's statistics."""
        if self.obs_norm is not None:
            obs = self.obs_norm.batch(obs)
        return torch.as_tensor(np.asarray(obs), device=self.device)

    def _env_actions(self, actions: torch.Tensor) -> np.ndarray:
        """What the envs get: continuous actions clipped to the suite's [-1, 1] (CleanRL's ``ClipAction``; the
        rollout keeps the unclipped sample)."""
        out = actions.cpu().numpy()
        return np.clip(out, -1.0, 1.0) if self.continuous else out

    def act(self, obs: np.ndarray, env_step: int, eval_mode: bool = False):
        """One env's action (evaluation): sampled from its own generator, or the mode with ``deterministic_eval``.
        Observations are normalised with env 0's statistics, which evaluation does not update."""
        x = torch.as_tensor(np.asarray(obs if self.obs_norm is None else self.obs_norm(obs, 0)),
                            device=self.device).unsqueeze(0)
        with torch.inference_mode():
            dist, _ = self.policy_and_value(x)
            if self.continuous:
                mean, std = dist.mean, dist.stddev
                action = mean if self.cfg.deterministic_eval else \
                    mean + std * torch.randn(mean.shape, generator=self.eval_generator, device=self.device)
                return self._env_actions(action)[0]
            probs = dist.probs
            action = probs.argmax(1) if self.cfg.deterministic_eval else \
                torch.multinomial(probs, 1, generator=self.eval_generator).squeeze(1)
            return int(action.item())

    # --- the rollout --------------------------------------------------------------------------------------------
    def start(self, obs: np.ndarray) -> None:
        """The envs' first observations (the run's start only: a resumed run has its statistics back)."""
        if self.obs_norm is not None:
            for i, o in enumerate(obs):
                self.obs_norm.update(i, o)

    def collect(self, obs: np.ndarray) -> np.ndarray:
        """Act on every env's observation (torch's generator, as CleanRL) and store the step's observation, done flag,
        action, log-probability and value; returns the envs' actions."""
        r, t = self.rollout, self.rollout.t
        x = self._input(obs)
        r.store_obs(x)
        r.dones[t] = self.next_done
        with torch.no_grad():
            dist, value = self.policy_and_value(x)
            action = dist.sample()
            r.logprobs[t] = self._log_prob_entropy(dist, action)[0]
        r.values[t], r.actions[t] = value, action
        return self._env_actions(action)

    def record(self, rewards: np.ndarray, terminations: np.ndarray, truncations: np.ndarray, next_obs: np.ndarray,
               final_obs: dict[int, np.ndarray]) -> None:
        """The step's outcome: rewards (normalised with ``norm_reward``), whether each env's episode ended (either
        way), and the observations that update the normalisation, an episode's final one before the reset one."""
        if self.obs_norm is not None:
            for i, o in final_obs.items():
                self.obs_norm.update(i, o)
            for i, o in enumerate(next_obs):
                self.obs_norm.update(i, o)
        if self.reward_norm is not None:
            rewards = self.reward_norm(rewards, terminations)
        self.rollout.rewards[self.rollout.t] = torch.as_tensor(rewards, dtype=torch.float32, device=self.device)
        self.next_done = torch.as_tensor(np.logical_or(terminations, truncations), dtype=torch.float32,
                                         device=self.device)
        self.rollout.t += 1

    # --- learning -------------------------------------------------------------------------------------------
    def learn(self, obs: np.ndarray, iteration: int, num_iterations: int) -> Iterator[UpdateResult]:
        """The updates on the full rollout, one gradient step per minibatch, yielded as each is taken; ``obs`` is
        the observation after the rollout's last step and ``iteration`` counts from 1 (CleanRL's annealing:
        lr = (1 − (iteration − 1) / num_iterations) · learning_rate)."""
        c, r = self.cfg, self.rollout
        if c.anneal_lr:
            self.optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * c.learning_rate
        with torch.no_grad():
            next_value = self.value(self._input(obs))
            advantages = gae(r.rewards, r.values, r.dones, next_value, self.next_done, c.gamma, c.gae_lambda)
            returns = advantages + r.values
        flat = RolloutBatch(r.obs.flatten(0, 1), r.actions.flatten(0, 1), r.logprobs.reshape(-1),
                            advantages.reshape(-1), returns.reshape(-1), r.values.reshape(-1))
        explained = explained_variance(flat.values, flat.returns)
        b_inds = np.arange(c.batch_size)
        clipfrac_sum, n = 0.0, 0
        for _epoch in range(c.update_epochs):
            self.rng.shuffle(b_inds)  # in place, each epoch from the last one's order, as CleanRL's np.random.shuffle
            for start in range(0, c.batch_size, c.minibatch_size):
                mb = torch.from_numpy(b_inds[start:start + c.minibatch_size]).to(self.device)
                result = self.update(RolloutBatch(*(part[mb] for part in flat)))
                clipfrac_sum, n = clipfrac_sum + result.metrics["losses/clipfrac"], n + 1
                result.metrics["losses/clipfrac"] = clipfrac_sum / n  # the mean so far: at the last, the rollout's
                if explained is not None:
                    result.metrics["losses/explained_variance"] = explained
                yield result
            if c.target_kl is not None and float(result.metrics["losses/approx_kl"]) > c.target_kl:
                break
        r.t = 0

    def update(self, batch: RolloutBatch) -> UpdateResult:
        """One gradient step on a minibatch (``ppo.py``'s inner loop): the clipped surrogate, the (clipped) value
        loss and the entropy bonus in one loss, the global gradient norm clipped, one Adam step. Tags are
        CleanRL's."""
        c = self.cfg
        dist, new_values = self.policy_and_value(batch.obs)
        new_logprobs, entropy = self._log_prob_entropy(dist, batch.actions)
        logratio = new_logprobs - batch.logprobs
        ratio = logratio.exp()
        with torch.no_grad():  # http://joschu.net/blog/kl-approx.html
            old_approx_kl = (-logratio).mean()
            approx_kl = ((ratio - 1) - logratio).mean()
            clipfrac = ((ratio - 1.0).abs() > c.clip_coef).float().mean()
        advantages = normalized(batch.advantages) if c.norm_adv else batch.advantages
        pg_loss = clipped_surrogate_loss(ratio, advantages, c.clip_coef)
        v_loss = value_loss(new_values, batch.returns, batch.values, c.clip_coef, c.clip_vloss)
        entropy_loss = entropy.mean()
        loss = pg_loss - c.ent_coef * entropy_loss + v_loss * c.vf_coef
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self._params, c.max_grad_norm)
        self.optimizer.step()
        return UpdateResult(losses={"losses/policy_loss": pg_loss.detach(), "losses/value_loss": v_loss.detach()},
                            metrics={"losses/entropy": entropy_loss.detach(), "losses/old_approx_kl": old_approx_kl,
                                     "losses/approx_kl": approx_kl, "losses/clipfrac": clipfrac})

    # --- state ----------------------------------------------------------------------------------------------
    def sample_states(self, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rollout.sample_states(n, rng)

    def load_acting_state(self, state: dict) -> None:
        """What acting needs from a checkpoint besides the networks: the observation statistics (``evaluate.py``)."""
        if self.obs_norm is not None:
            self.obs_norm.load_state_dict(state["obs_norm"])

    def rng_state(self) -> dict:
        return {"numpy": self.rng.bit_generator.state, "eval": self.eval_generator.get_state()}

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state["numpy"]
        self.eval_generator.set_state(state["eval"])

    def state_dict(self) -> dict:
        """At a rollout boundary (the only place the loop checkpoints): the networks by name, Adam, the done flags
        the next rollout starts from, the normalisation statistics and the RNGs. The rollout itself is empty."""
        return {**{name: net.state_dict() for name, net in self._networks.items()},
                "optimizer": self.optimizer.state_dict(), "next_done": self.next_done.cpu(),
                "obs_norm": None if self.obs_norm is None else self.obs_norm.state_dict(),
                "reward_norm": None if self.reward_norm is None else self.reward_norm.state_dict(),
                **self.rng_state()}

    def load_state_dict(self, state: dict) -> None:
        for name, net in self._networks.items():
            net.load_state_dict(state[name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.next_done = state["next_done"].to(self.device)
        if self.obs_norm is not None:
            self.obs_norm.load_state_dict(state["obs_norm"])
        if self.reward_norm is not None:
            self.reward_norm.load_state_dict(state["reward_norm"])
        self.set_rng_state(state)
