"""Sparse inference (``pruning.sparse_inference=true``): once a method's masks stop changing, the large linear layers
of the pruned networks compute their no-grad forwards (acting, evaluation, and no-grad forwards inside an update such
as SAC's next actions or double DQN's online argmax) from a CSR copy of their weights, so a 95%-sparse layer does
about 5% of the work.

The gradient path is untouched: a forward with gradients enabled (the learner's online forward) runs the masked
dense weights exactly as before, and backward through CSR gains nothing on CPU; the learner's no-grad forwards (a
target, next actions) do use CSR. The CSR copy keeps the mask's pattern (its row pointers and column indices are
fixed) and its values are gathered from the dense weight in O(nnz) whenever the weight has changed since (its version
counter moved: an optimizer step, a target copy, a checkpoint load), at the first no-grad forward after the change.

Which layers: ``nn.Linear`` weights the method masks, at least ``MIN_WEIGHTS`` weights and half sparse, and only where
a timed check at batch 1 shows the CSR forward at most ``GAIN_REQUIRED`` of the dense one (on CPU a 256×256 layer is
slower sparse). Convolutions stay dense (im2col over CSR is slower than dense). A converted layer's target copy is
converted with it: re-masked after every update (``pruning.mask_targets=true``) it always holds the pattern; else each
change of the copy is checked in O(n) (see ``SparseLinear``). The timed choice is kept in the checkpoint, so a resumed
run converts the same layers.

Equality: CSR sums in another order than the dense kernel, so outputs agree to float rounding (relative 1e-5), not
bit for bit; a run with ``sparse_inference=true`` is therefore reproducible with itself but not identical to the same
run without it.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.callbacks import Callback
from core.protocols import TrainerView, UpdateResult
from pruning.method import PruningMethod

MIN_WEIGHTS = 1 << 14  # smaller layers stay dense without timing: per-op overhead dominates them
MIN_SPARSITY = 0.5
GAIN_REQUIRED = 0.9  # convert where CSR takes at most this share of the dense forward's time at batch 1
GIVE_UP_AFTER = 3  # refreshes in a row that find a target copy outside the pattern


class MaskChangedError(RuntimeError):
    """A mask changed after its layer was converted: the method said its masks were final."""


class SparseLinear:
    """The CSR copy of one ``nn.Linear``'s masked weight, and the forward that uses it while gradients are off."""

    def __init__(self, key: str, module: nn.Linear, mask: torch.Tensor,
                 current_masks: Callable[[], dict[str, torch.Tensor] | None], verify: bool = False):
        """``current_masks`` returns the method's masks as they are now (a method may swap its whole dict).
        ``verify``: the weight is a copy nothing re-masks (a target), so each refresh checks that it is zero outside
        the pattern; while it is not, forwards run dense, and after ``GIVE_UP_AFTER`` such refreshes in a row (a
        Polyak average, which never reaches exact zeros) the layer goes back to dense for good."""
        self.key, self.module, self.current_masks, self.verify = key, module, current_masks, verify
        self.mask, self.mask_version = mask, mask._version
        self.usable, self.failures, self.gave_up = True, 0, False
        pattern = (mask != 0).to(module.weight.device)
        self.index = pattern.flatten().nonzero().squeeze(1)
        self.values = torch.empty(self.index.numel(), dtype=module.weight.dtype, device=module.weight.device)
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            csr = pattern.to_sparse_csr()
            self.csr = torch.sparse_csr_tensor(csr.crow_indices(), csr.col_indices(), self.values, tuple(mask.shape),
                                               check_invariants=False)
        self.weight_version = -1
        self.refresh()

    @property
    def nnz(self) -> int:
        return self.index.numel()

    def refresh(self) -> None:
        """Gather the weight's values at the pattern (O(nnz)); first check that the mask is the one converted."""
        current = (self.current_masks() or {}).get(self.key)
        if current is not self.mask or current._version != self.mask_version:
            if current is None or not self.same_pattern(current):
                raise MaskChangedError(f"the mask of {self.key} changed after pruning.sparse_inference converted that "
                                       "layer; a method must not change masks once it reports them final")
            self.mask, self.mask_version = current, current._version
        weight = self.module.weight.detach()
        torch.index_select(weight.reshape(-1), 0, self.index, out=self.values)
        self.weight_version = self.module.weight._version
        if self.verify:  # O(n), but only when the copy changed: a hard target's sync
            self.usable = int(weight.count_nonzero()) == int(self.values.count_nonzero())
            self.failures = 0 if self.usable else self.failures + 1
            if self.failures >= GIVE_UP_AFTER:
                self.gave_up = True
                self.remove()

    def same_pattern(self, mask: torch.Tensor) -> bool:
        flat = mask.reshape(-1)
        return int(flat.count_nonzero()) == self.nnz and bool(flat[self.index].all())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = self.module
        if torch.is_grad_enabled():
            return F.linear(x, module.weight, module.bias)
        if module.weight._version != self.weight_version:
            self.refresh()
        if not self.usable:
            return F.linear(x, module.weight, module.bias)
        lead, features = x.shape[:-1], x.shape[-1]
        flat = x.reshape(-1, features)
        if flat.shape[0] == 1:  # acting: CSR matrix-vector is the fast kernel at batch 1
            out = torch.mv(self.csr, flat[0]).unsqueeze(0)
            if module.bias is not None:
                out = out + module.bias
        elif module.bias is not None:
            out = torch.addmm(module.bias.unsqueeze(1), self.csr, flat.T).T
        else:
            out = torch.mm(self.csr, flat.T).T
        return out.reshape(*lead, module.out_features)

    def install(self) -> None:
        self.module.forward = self.forward

    def remove(self) -> None:
        self.module.__dict__.pop("forward", None)


def sparse_over_dense(layer: SparseLinear, repeats: int = 30) -> float:
    """Median time of the CSR forward over the dense one, one input of batch 1."""
    module = layer.module
    x = torch.randn(1, module.in_features, device=module.weight.device)

    def median(fn) -> float:
        for _ in range(5):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    with torch.inference_mode():
        dense = median(lambda: F.linear(x, module.weight, module.bias))
        sparse = median(lambda: layer.forward(x))
    return sparse / dense


def convert_for_playing(networks: dict[str, nn.Module], stored: dict | None) -> list[SparseLinear]:
    """The online layers a run converted (its checkpointed choice), converted again on loaded weights, for playing
    a checkpoint (``evaluate.py``). Nothing trains there, so a layer's pattern is its weight's nonzeros and no method
    is needed. Nothing is converted if the checkpoint was written before the run converted."""
    layers = []
    for d in (stored or {}).get("decisions") or []:
        if not d["converted"] or d["key"].startswith("target:"):
            continue
        net, name = d["key"].split("/", 1)
        module = dict(networks[net].named_modules())[name.removesuffix(".weight")]
        masks = {d["key"]: module.weight.detach() != 0}
        layer = SparseLinear(d["key"], module, masks[d["key"]], lambda masks=masks: masks)
        layer.install()
        layers.append(layer)
    return layers


@dataclass
class Decision:
    key: str
    shape: tuple[int, int]
    sparsity: float
    converted: bool
    why: str  # "CSR 0.52x dense at batch 1", "small", ...

    def line(self) -> str:
        out, inp = self.shape
        verdict = "CSR" if self.converted else "dense"
        return f"{self.key} ({inp}→{out}, {self.sparsity:.1%} sparse): {verdict}, {self.why}"


class SparseInference(Callback):
    """Converts the method's masked linear layers once ``method.masks_final(updates)`` holds (at once for static
    masks, after GMP's last mask update, after SET/RigL's ``end_frac``). Runs after the method's callback."""

    def __init__(self, method: PruningMethod):
        self.method = method
        self.layers: list[SparseLinear] = []
        self.decisions: list[Decision] | None = None
        self.converted_at: int | None = None  # update count at conversion
        self._targets: dict[str, SparseLinear] = {}
        self._stored: dict | None = None

    def candidates(self, trainer: TrainerView) -> dict[str, nn.Linear]:
        """Every ``nn.Linear`` whose weight the method masks, by mask key (not ``NoisyLinear``: its noise)."""
        masks = self.method.current_masks() or {}
        return {f"{net}/{name}.weight": m for net, module in trainer.agent.networks().items()
                for name, m in module.named_modules() if type(m) is nn.Linear and f"{net}/{name}.weight" in masks}

    def target_copies(self, trainer: TrainerView, key: str) -> list[nn.Linear]:
        net, name = key.split("/", 1)
        target = trainer.agent.target_networks().get(net)
        if target is None:
            return []
        module = dict(target.named_modules()).get(name.removesuffix(".weight"))
        return [module] if type(module) is nn.Linear else []

    def on_train_start(self, trainer: TrainerView) -> None:
        self._maybe_convert(trainer)

    def on_update_end(self, trainer: TrainerView, result: UpdateResult) -> None:
        if self.decisions is None:
            self._maybe_convert(trainer)

    def _maybe_convert(self, trainer: TrainerView) -> None:
        masks = self.method.current_masks()
        if self.decisions is not None or masks is None or not self.method.masks_final(trainer.updates):
            return
        stored = self._stored or {}
        kept = {d["key"]: d for d in stored.get("decisions") or []}  # a resumed run keeps its choice
        decisions = []
        remasked = getattr(getattr(self.method, "pruner", None), "target_params", {})  # mask_targets
        for key, module in self.candidates(trainer).items():
            mask = masks[key]
            sparsity = 1.0 - float((mask != 0).sum()) / mask.numel()
            layer = None
            if key in kept:
                converted, why = kept[key]["converted"], kept[key]["why"]
            elif module.weight.numel() < MIN_WEIGHTS:
                converted, why = False, f"small (< {MIN_WEIGHTS:,} weights)"
            elif sparsity < MIN_SPARSITY:
                converted, why = False, f"below {MIN_SPARSITY:.0%} sparse"
            else:
                layer = SparseLinear(key, module, mask, self.method.current_masks)
                ratio = sparse_over_dense(layer)
                converted, why = ratio <= GAIN_REQUIRED, f"CSR {ratio:.2f}x dense at batch 1"
            shape = tuple(module.weight.shape)
            decisions.append(Decision(key, shape, sparsity, converted, why))
            if not converted:
                continue
            self._install(layer or SparseLinear(key, module, mask, self.method.current_masks))
            for copy in self.target_copies(trainer, key):
                verify = key not in remasked
                self._targets[f"target:{key}"] = self._install(
                    SparseLinear(key, copy, mask, self.method.current_masks, verify=verify))
                decisions.append(Decision(f"target:{key}", shape, sparsity, True,
                                          "checked against the pattern at each change" if verify
                                          else "re-masked after every update"))
        self.decisions = decisions
        self.converted_at = stored.get("converted_at") if kept else trainer.updates
        print(self.report(), flush=True)

    def _install(self, layer: SparseLinear) -> SparseLinear:
        layer.install()
        self.layers.append(layer)
        return layer

    def current(self) -> list[Decision]:
        """The decisions, with the target copies that went back to dense marked so."""
        out = []
        for d in self.decisions or []:
            layer = self._targets.get(d.key)
            if layer is not None and layer.gave_up:
                d = Decision(d.key, d.shape, d.sparsity, False, f"back to dense: the copy held weights outside the "
                             f"pattern at {GIVE_UP_AFTER} changes in a row (a Polyak average never reaches exact 0)")
            out.append(d)
        return out

    def report(self) -> str:
        if not self.decisions:
            return "sparse inference: no masked linear layer to convert; every forward stays dense"
        n = sum(d.converted for d in self.decisions)
        lines = "\n  ".join(d.line() for d in self.decisions)
        return f"sparse inference at update {self.converted_at}: {n} of {len(self.decisions)} layers CSR\n  {lines}"

    def summary(self) -> dict:
        return {"converted_at_update": self.converted_at,
                "layers": {d.key: {"shape": list(d.shape), "sparsity": d.sparsity, "converted": d.converted,
                                   "why": d.why} for d in self.current()}}

    def on_train_end(self, trainer: TrainerView) -> None:
        for layer in self.layers:
            layer.remove()

    def state_dict(self) -> dict:
        if self.decisions is None:
            return {"decisions": None, "converted_at": None}
        return {"decisions": [{"key": d.key, "converted": d.converted, "why": d.why} for d in self.current()],
                "converted_at": self.converted_at}

    def load_state_dict(self, state: dict) -> None:
        self._stored = state
