"""Gradual magnitude pruning (Zhu & Gupta 2017) as Obando-Ceron et al. 2024 use it, through JaxPruner's code
(``MagnitudePruning`` with ``PolynomialSchedule``): each layer's final sparsity from ERK at s_F, computed once, scaled
by the cubic schedule of ``schedule.py`` over the run's gradient updates; masks by |w| of the weights before the
step, recomputed every ``update_freq_updates`` updates inside the window and frozen after it."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import require
from core.protocols import TrainerView, UpdateResult
from pruning.method import MethodConfig, PruningMethod
from pruning.pruner import Distribution, MagnitudePruner, Scope
from pruning.registry import METHODS
from pruning.schedule import gmp_fraction, is_mask_update, pruning_window


@dataclass
class GMPConfig(MethodConfig):
    """GMP as Obando-Ceron et al. 2024 use it (JaxPruner's ``baselines/dopamine/configs``): prune from 20% to 80%
    of the gradient updates, masks recomputed every 1,000 updates, ERK per layer, output layer included."""

    name: str = "gmp"
    start_frac: float = 0.2  # of the run's gradient updates
    end_frac: float = 0.8  # end of the pruning window, as a fraction of the run's gradient updates
    update_freq_updates: int = 1_000  # gradient updates between mask recomputations inside the window
    distribution: Distribution = Distribution.erk  # erk (Erdős–Rényi-Kernel) or uniform per-layer targets
    scope: Scope = Scope.layer  # layer (per-layer targets) or global (one magnitude ranking over all layers)
    prune_output_layer: bool = True  # prune the output (head) layer too, as the paper
    mask_targets: bool = False  # also zero the pruned weights of target networks (docs/agents.md, "Pruning SAC")

    def validate(self) -> None:
        require(0 <= self.start_frac < 1, "start_frac", self.start_frac, "must be in [0, 1)")
        require(self.start_frac < self.end_frac, "start_frac", self.start_frac,
                f"the schedule must start before it ends: pruning.start_frac < pruning.end_frac ({self.end_frac})")
        require(self.end_frac <= 1, "end_frac", self.end_frac, "must be in (pruning.start_frac, 1]")
        require(self.update_freq_updates >= 1, "update_freq_updates", self.update_freq_updates, "must be >= 1")

    def schedule_warning(self, total_updates: int, sparsity: float) -> str | None:
        """A window of fewer updates than ``update_freq_updates`` leaves one or two mask updates, so sparsity jumps
        instead of growing along the cubic schedule (3,000 CartPole steps: 500 updates, window 100-400, one mask
        update at 400, 0 to s_F at once): say so, with both numbers and a period that would make it gradual. A
        window of fewer than 2 updates can never be gradual, whatever the period: refused."""
        if sparsity <= 0:
            return None
        t_start, t_end = pruning_window(total_updates, self.start_frac, self.end_frac)
        window = t_end - t_start
        where = f"updates {t_start:,} to {t_end:,} of the run's {total_updates:,}"
        require(window >= 2, "sparsity", sparsity, f"GMP's window ({where}, pruning.start_frac={self.start_frac} to "
                f"pruning.end_frac={self.end_frac}) holds {window} update(s), too few to prune gradually; give more "
                "total_env_steps (offline: offline.updates), or pruning=static to train sparse from the start")
        if window >= self.update_freq_updates:
            return None

        def steps(every: int) -> int:
            return sum(is_mask_update(t, t_start, t_end, every) for t in range(t_start, t_end + 1))

        now, better = steps(self.update_freq_updates), max(window // 10, 1)
        return (f"warning: GMP's window is {window:,} updates ({where}), shorter than one mask-update period "
                f"(pruning.update_freq_updates={self.update_freq_updates:,}): sparsity goes from 0 to {sparsity:g} in "
                f"{now} step{'s' if now > 1 else ''}, not gradually; pruning.update_freq_updates={better} gives "
                f"{steps(better)} steps")


@METHODS.register("gmp", config=GMPConfig)
class GMP(PruningMethod):
    """Gradual magnitude pruning to ``sparsity`` over the run's gradient updates. At a mask update the masks are
    recomputed before the optimizer step, from the weights it is about to change (JaxPruner's ``update_state``), and
    applied right after it, so everything the agent derives from the step (a target copy, a Polyak average) sees
    them. With ``sparsity=0`` it runs the same schedule, every target sparsity is 0, and no mask is ever created."""

    cfg: GMPConfig

    def __init__(self, cfg: GMPConfig, sparsity: float, log_every_updates: int, seed: int = 0):
        super().__init__(cfg, sparsity, log_every_updates, seed)
        self.last_mask_update: int | None = None  # schedule position: index of the last mask update
        self._state: dict | None = None
        self._hooks: list = []
        self._frozen: list[str] = []
        self.pruner: MagnitudePruner | None = None  # built at on_train_start, once the networks exist
        self.t_start = self.t_end = 0  # the pruning window in gradient updates, from the run's total

    def on_train_start(self, trainer: TrainerView) -> None:
        c, agent = self.cfg, trainer.agent
        self.t_start, self.t_end = pruning_window(trainer.total_updates, c.start_frac, c.end_frac)
        self.pruner = MagnitudePruner(agent.networks(), c.distribution, c.scope, c.prune_output_layer,
                                      agent.target_networks() if c.mask_targets else None, sparsity=self.sparsity)
        if self._state is not None:
            self.pruner.load_state_dict(self._state["pruner"])
            self.target_sparsity, self.last_mask_update = self._state["target"], self._state["last_mask_update"]
        self._hooks, self._frozen = self.pruner.attach(
            agent.optimizers(), lambda networks, _opt: self._mask_update(trainer.updates, networks, apply=False))
        if not trainer.resumed:  # a resumed run logged this at its start already
            self.log_sparsity(trainer)

    def _mask_update(self, t: int, networks: list[str], apply: bool = True) -> None:
        """At update ``t``, recompute the masks of ``networks`` if the schedule says so."""
        if is_mask_update(t, self.t_start, self.t_end, self.cfg.update_freq_updates):
            fraction = gmp_fraction(t, self.t_start, self.t_end)
            self.target_sparsity, self.last_mask_update = self.sparsity * fraction, t
            if self.target_sparsity > 0:
                self.pruner.prune_scaled(fraction, networks, apply=apply)

    def masks_final(self, updates: int) -> bool:
        """After the update at t_end, the last on the schedule; never for a dense run (no masks)."""
        return self.sparsity > 0 and updates > self.t_end

    def on_update_end(self, trainer: TrainerView, result: UpdateResult) -> None:
        t = trainer.updates - 1  # index of the update just taken
        if self._frozen:  # networks no optimizer steps (an adapter froze them) are pruned here
            self._mask_update(t, self._frozen)
        if self.last_mask_update == t or trainer.updates % self.log_every_updates == 0:
            self.log_sparsity(trainer)

    def on_train_end(self, trainer: TrainerView) -> None:
        for handle in self._hooks:
            handle.remove()

    def state_dict(self) -> dict:
        return {"pruner": self.pruner.state_dict(), "target": self.target_sparsity,  # the checkpoint's key as before
                "last_mask_update": self.last_mask_update}

    def load_state_dict(self, state: dict) -> None:
        self._state = state  # applied in on_train_start, once the networks exist
