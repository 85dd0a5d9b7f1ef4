"""Sparse compute (``pruning.sparse_compute=auto|true``): pruned ``nn.Linear`` layers train from CSR, so a 95%-sparse
layer costs about a twentieth of its dense arithmetic and optimizer state.

Every sparse method keeps dense weights with masks multiplied in (as JaxPruner and rigl do), which costs as much as
dense. A converted layer instead holds its kept weights as one dense 1-D tensor, ``values`` (nnz entries, in the CSR
order of the mask's pattern), and that tensor is what the optimizer steps:

- forward: CSR(W)·xᵀ; input gradient: CSR(Wᵀ)·gᵀ; weight gradient only at the kept entries
  (``torch.sparse.sampled_addmm``: the dense gᵀ·x is never formed); no-grad forwards (acting, targets, next actions)
  from CSR too;
- the optimizer's parameter ``W`` is replaced by ``values`` and its Adam moments are gathered at the kept entries
  (``W.sparse_held`` names the layer; ``W.requires_grad`` still says whether the agent lets it train);
- after every optimizer step ``values`` are written back into ``W`` (O(nnz)), so the dense weight that everything
  else reads (target copies, Polyak averages, health probes, checkpoints, the pruner's scores) stays exact, and
  stays 0 outside the pattern; the pruner skips the O(n) mask multiply for such a layer.

When a method changes a mask (GMP's ramp, SET and RigL), the pattern is rebuilt after that step and the moments are
carried over entry by entry: an entry kept in both patterns keeps its value and moments, a newly grown one starts at
0 with zero moments (GMP's masks are nested, so its moments are gathered exactly). RigL asks for the dense gradient
of its mask-update steps only (``PruningMethod.dense_gradient_due``), written into ``W.grad`` for its growth score.
A write to ``W`` from elsewhere (ReDo, a reset, a checkpoint load) is seen through the tensor's version counter and
gathered into ``values``; ``zero_optimizer_state`` reaches the moments of a converted layer.

Which layers: a trained ``nn.Linear`` (not ``NoisyLinear``) whose weight the method masks, once its mask is at least
``MIN_SPARSITY`` sparse. ``true`` converts every such layer; ``auto`` also needs ``AUTO_MIN_WEIGHTS`` weights and
``AUTO_MIN_SPARSITY`` sparsity on CPU, and keeps everything dense on a GPU: a fixed rule measured once
(docs/sparse-compute.md), so the same config computes the same way on every machine of a kind. Convolutions stay dense.

Checkpoints keep the dense format: the optimizer's ``state_dict`` scatters the moments of ``values`` back to the
weight's shape, and the converted layers follow from the masks, so a run resumes with the switch on or off. The
callback holds no state. Sums run in another order than the dense kernels, so numbers agree with the switch-off run
to float rounding (relative 1e-5), not bit for bit. With ``max_grad_norm`` the norm covers the kept entries only
(the masked-dense path also counts the gradients of pruned weights, which its masks then discard).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from core.callbacks import Callback
from core.protocols import TrainerView, UpdateResult
from pruning.method import PruningMethod

MIN_SPARSITY = 0.8  # true: below this no measured layer trains faster from CSR (docs/sparse-compute.md)
# auto: where the training arithmetic at batch 32 and the no-grad forwards at batch 32 and batch 1 all run faster
# from CSR, measured once (benchmarks/sparse_training.py, docs/sparse-compute.md): 1024→128 (MinAtar width 1) is
# slower at batch 1 at every sparsity, 3072→384 (width 3) and larger pay from 90% on, none at 80%.
AUTO_MIN_WEIGHTS = 1 << 20  # 1,048,576 weights
AUTO_MIN_SPARSITY = 0.9


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class Pattern:
    """The kept entries of one weight matrix: flat indices in row-major order, CSR of W and of Wᵀ (``perm`` takes
    ``values`` to Wᵀ's order)."""

    def __init__(self, keep: torch.Tensor):
        out_f, in_f = keep.shape
        self.shape = (out_f, in_f)
        self.index = keep.reshape(-1).nonzero().squeeze(1)
        rows, cols = self.index // in_f, self.index % in_f
        self.crow = torch.zeros(out_f + 1, dtype=torch.int64, device=keep.device)
        self.crow[1:] = torch.bincount(rows, minlength=out_f).cumsum(0)
        self.col = cols
        self.perm = torch.argsort(cols * out_f + rows)
        self.crow_t = torch.zeros(in_f + 1, dtype=torch.int64, device=keep.device)
        self.crow_t[1:] = torch.bincount(cols, minlength=in_f).cumsum(0)
        self.col_t = rows[self.perm]

    @property
    def nnz(self) -> int:
        return self.index.numel()

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.crow, self.col, values, self.shape)

    def transposed(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.crow_t, self.col_t, torch.index_select(values, 0, self.perm), self.shape[::-1])


def sparse_matmul(pattern_csr: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x·Wᵀ (+ b) with W in CSR; x is (batch, in). Matrix-vector at batch 1, the fast kernel there."""
    if x.shape[0] == 1:
        out = torch.mv(pattern_csr, x[0]).unsqueeze(0)
        return out if bias is None else out + bias
    if bias is not None:
        return torch.addmm(bias.unsqueeze(1), pattern_csr, x.T).T
    return torch.mm(pattern_csr, x.T).T


class _SparseLinearFunction(torch.autograd.Function):
    """y = x·Wᵀ + b with W = CSR(pattern, values); gradients for x, values (kept entries only) and b."""

    @staticmethod
    def forward(ctx, x, values, bias, layer):
        ctx.save_for_backward(x, values)
        ctx.layer, ctx.has_bias = layer, bias is not None
        return sparse_matmul(layer.pattern.matrix(values), x, bias)

    @staticmethod
    def backward(ctx, grad_out):
        x, values = ctx.saved_tensors
        layer = ctx.layer
        pattern = layer.pattern
        grad_x = grad_values = grad_bias = None
        g = grad_out.contiguous()
        if ctx.needs_input_grad[0]:
            grad_x = torch.mm(pattern.transposed(values), g.T).T
        if ctx.needs_input_grad[1]:
            sampled = torch.sparse.sampled_addmm(pattern.matrix(values), g.T.contiguous(), x.contiguous(), beta=0.0)
            grad_values = sampled.values()
        if layer.dense_grad:  # RigL's growth score on its mask-update steps
            dense = torch.mm(g.T, x)
            w = layer.module.weight
            w.grad = dense if w.grad is None else w.grad + dense
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = g.sum(0)
        return grad_x, grad_values, grad_bias, None


class SparseTrainingLinear:
    """One converted ``nn.Linear``: its pattern, the kept weights the optimizer steps, and the forward."""

    def __init__(self, key: str, module: nn.Linear, mask: torch.Tensor, optimizer: torch.optim.Optimizer):
        self.key, self.module, self.optimizer = key, module, optimizer
        self.dense_grad = False
        weight = module.weight
        self.pattern = Pattern(mask != 0)
        self.mask, self.mask_version = mask, mask._version
        with torch.no_grad():
            weight.mul_(mask)
        self.values = nn.Parameter(weight.detach().reshape(-1)[self.pattern.index].clone())
        _swap_parameter(optimizer, weight, self.values, lambda t: t.reshape(-1)[self.pattern.index].clone())
        weight.sparse_held = self  # ``requires_grad`` stays: an agent that freezes the weight freezes ``values``
        self.weight_version = weight._version
        module.forward = self.forward

    @property
    def nnz(self) -> int:
        return self.pattern.nnz

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = self.module
        if module.weight._version != self.weight_version:
            self.gather_from_weight()
        lead, flat = x.shape[:-1], x.reshape(-1, x.shape[-1])
        if torch.is_grad_enabled():
            values = self.values if module.weight.requires_grad else self.values.detach()
            out = _SparseLinearFunction.apply(flat, values, module.bias, self)
        else:
            out = sparse_matmul(self.pattern.matrix(self.values.detach()), flat, module.bias)
        return out.reshape(*lead, module.out_features)

    @torch.no_grad()
    def gather_from_weight(self) -> None:
        """Something wrote the dense weight (ReDo, a reset, a load): take its kept entries, zero the rest."""
        weight = self.module.weight
        weight.mul_(self.mask)
        torch.index_select(weight.reshape(-1), 0, self.pattern.index, out=self.values.data)
        self.weight_version = weight._version

    @torch.no_grad()
    def write_back(self) -> None:
        """After an optimizer step: the stepped kept entries into the dense weight, O(nnz)."""
        weight = self.module.weight
        if weight._version != self.weight_version:  # a write between the last forward and this step
            self.gather_from_weight()
        weight.reshape(-1).scatter_(0, self.pattern.index, self.values.detach())  # faster than index_copy_ on CPU
        self.weight_version = weight._version
        if weight.grad is not None:  # RigL's dense gradient served its growth step
            weight.grad = None

    @torch.no_grad()
    def repattern(self, mask: torch.Tensor) -> None:
        """The method changed the mask: the pattern and ``values`` follow it, the moments entry by entry."""
        self.write_back()
        weight = self.module.weight
        old_index = self.pattern.index
        self.pattern = Pattern(mask != 0)
        self.mask, self.mask_version = mask, mask._version
        weight.mul_(mask)
        new_values = nn.Parameter(weight.reshape(-1)[self.pattern.index].clone())

        def carry(t: torch.Tensor) -> torch.Tensor:
            dense = torch.zeros(weight.numel(), dtype=t.dtype, device=t.device)
            dense[old_index] = t
            return dense[self.pattern.index]

        _swap_parameter(self.optimizer, self.values, new_values, carry)
        self.values = new_values
        self.weight_version = weight._version

    @torch.no_grad()
    def zero_state(self, where: torch.Tensor) -> None:
        """``zero_optimizer_state`` for a converted layer: the moments of the kept entries where ``where`` holds."""
        picked = where.reshape(-1)[self.pattern.index]
        for value in self.optimizer.state.get(self.values, {}).values():
            if torch.is_tensor(value) and value.shape == self.values.shape:
                value.masked_fill_(picked, 0)

    def dense_state(self, t: torch.Tensor) -> torch.Tensor:
        """A moment of ``values`` at the weight's shape (0 at pruned entries), for checkpoints."""
        dense = torch.zeros(self.module.weight.numel(), dtype=t.dtype, device=t.device)
        dense[self.pattern.index] = t
        return dense.view(self.module.weight.shape)

    @torch.no_grad()
    def restore(self) -> None:
        """Back to the masked-dense layer: ``W`` in the optimizer again, its moments scattered."""
        self.write_back()
        weight = self.module.weight
        _swap_parameter(self.optimizer, self.values, weight, self.dense_state)
        del weight.sparse_held
        self.module.__dict__.pop("forward", None)


def _swap_parameter(optimizer: torch.optim.Optimizer, old: torch.Tensor, new: torch.Tensor,
                    convert: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Put ``new`` where ``old`` is in the optimizer's groups; its state tensors shaped like ``old`` converted."""
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if state:
        optimizer.state[new] = {k: convert(v) if torch.is_tensor(v) and v.shape == old.shape else v
                                for k, v in state.items()}


class TargetCSR:
    """A target copy's no-grad forward from CSR: its pattern is its own nonzeros, rebuilt when the copy changes (a
    hard copy every few thousand updates). A copy that is not sparse enough at ``GIVE_UP_AFTER`` changes in a row (a
    Polyak average never reaches exact zeros) stays dense for good."""

    GIVE_UP_AFTER = 3

    def __init__(self, module: nn.Linear, min_sparsity: float):
        self.module, self.min_sparsity = module, min_sparsity
        self.pattern: Pattern | None = None
        self.values: torch.Tensor | None = None
        self.version, self.misses, self.gave_up = -1, 0, False
        module.forward = self.forward

    def refresh(self) -> None:
        """O(n) to count; the pattern is kept (an O(nnz) gather) while the nonzeros are exactly its entries, as under
        a Polyak average of masked weights, and rebuilt otherwise (a hard copy after a mask update)."""
        weight = self.module.weight.detach()
        self.version = weight._version
        nonzero = int(weight.count_nonzero())
        if self.pattern is not None and nonzero == self.pattern.nnz:
            values = torch.index_select(weight.reshape(-1), 0, self.pattern.index)
            if int(values.count_nonzero()) == nonzero:
                self.values, self.misses = values, 0
                return
        keep = weight != 0
        if 1.0 - nonzero / keep.numel() < self.min_sparsity:
            self.pattern, self.misses = None, self.misses + 1
            if self.misses >= self.GIVE_UP_AFTER:
                self.gave_up = True
                self.remove()
            return
        self.pattern, self.misses = Pattern(keep), 0
        self.values = weight.reshape(-1)[self.pattern.index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = self.module
        if torch.is_grad_enabled():
            return nn.functional.linear(x, module.weight, module.bias)
        if module.weight._version != self.version:
            self.refresh()
        if self.pattern is None:
            return nn.functional.linear(x, module.weight, module.bias)
        lead, flat = x.shape[:-1], x.reshape(-1, x.shape[-1])
        out = sparse_matmul(self.pattern.matrix(self.values), flat, module.bias)
        return out.reshape(*lead, module.out_features)

    def remove(self) -> None:
        self.module.__dict__.pop("forward", None)


def eligible(mode: bool | str, weights: int, sparsity: float, device: str = "cpu") -> tuple[bool, str]:
    """The fixed conversion rule: whether a masked linear layer of ``weights`` entries at ``sparsity`` converts on a
    ``device`` of that type. On CUDA, ``auto`` keeps every layer dense: at the suite's layer sizes cuSPARSE took
    1.2-1.3x the dense update on an H200 (docs/sparse-compute.md)."""
    if sparsity < MIN_SPARSITY:
        return False, f"below {MIN_SPARSITY:.0%} sparse"
    if mode == "auto" and device != "cpu":
        return False, f"auto: dense on {device} (cuSPARSE is slower than dense at these sizes)"
    if mode == "auto" and weights < AUTO_MIN_WEIGHTS:
        return False, f"auto: fewer than {AUTO_MIN_WEIGHTS:,} weights"
    if mode == "auto" and sparsity < AUTO_MIN_SPARSITY:
        return False, f"auto: below {AUTO_MIN_SPARSITY:.0%} sparse"
    return True, "CSR"


class SparseCompute(Callback):
    """Converts the method's masked linear layers as they become eligible (at once for static masks, as GMP's ramp
    crosses the rule), follows mask changes after every optimizer step, and converts target copies for no-grad
    forwards. Runs last among the callbacks: its step hooks follow the pruner's, and it holds no state."""

    outside_checkpoints = True

    def __init__(self, method: PruningMethod, mode: bool | str):
        self.method, self.mode = method, mode
        self.layers: dict[str, SparseTrainingLinear] = {}
        self.targets: dict[str, TargetCSR] = {}
        self.decisions: dict[str, str] = {}
        self._seen: dict[str, tuple[int, int]] = {}  # mask identity and version last judged, per key
        self._hooks: list = []
        self._candidates: dict[str, tuple[nn.Linear, torch.optim.Optimizer]] | None = None  # found once masks exist

    def candidates(self, trainer: TrainerView) -> dict[str, tuple[nn.Linear, torch.optim.Optimizer]]:
        """Every trained ``nn.Linear`` whose weight the method masks, with the optimizer that steps it."""
        masks = self.method.current_masks() or {}
        owner = {id(p): opt for opt in trainer.agent.optimizers().values() for g in opt.param_groups
                 for p in g["params"]}
        out = {}
        for net, module in trainer.agent.networks().items():
            for name, m in module.named_modules():
                key = f"{net}/{name}.weight"
                if type(m) is nn.Linear and key in masks and id(m.weight) in owner:
                    out[key] = (m, owner[id(m.weight)])
        return out

    def on_train_start(self, trainer: TrainerView) -> None:
        self._candidates = self.candidates(trainer) if self.method.current_masks() is not None else None
        for optimizer in {id(o): o for o in trainer.agent.optimizers().values()}.values():
            self._hooks.append(optimizer.register_step_post_hook(self._after_step))
            self._hooks.append(optimizer.register_state_dict_post_hook(self._dense_state_dict))
            self._hooks.append(optimizer.register_load_state_dict_pre_hook(self._sparse_state_dict))
        self._convert_eligible(trainer)
        self._dense_grad_for(trainer.updates)

    def _dense_grad_for(self, update: int) -> None:
        due = self.method.dense_gradient_due(update)
        for layer in self.layers.values():
            layer.dense_grad = due

    def _after_step(self, optimizer: torch.optim.Optimizer, *_args) -> None:
        masks = self.method.current_masks() or {}
        for key, layer in self.layers.items():
            if layer.optimizer is not optimizer:
                continue
            mask = masks.get(key)
            if mask is not layer.mask or mask._version != layer.mask_version:
                layer.repattern(mask)
            else:
                layer.write_back()

    def on_update_end(self, trainer: TrainerView, result: UpdateResult) -> None:
        self._convert_eligible(trainer)
        self._dense_grad_for(trainer.updates)

    def _convert_eligible(self, trainer: TrainerView) -> None:
        masks = self.method.current_masks()
        if masks is None:
            return
        if self._candidates is None:
            self._candidates = self.candidates(trainer)
        pruner = getattr(self.method, "pruner", None)
        for key, (module, optimizer) in self._candidates.items():
            mask = masks[key]
            if key in self.layers or self._seen.get(key) == (id(mask), mask._version):
                continue
            self._seen[key] = (id(mask), mask._version)
            sparsity = 1.0 - float(mask.count_nonzero()) / mask.numel()
            ok, why = eligible(self.mode, mask.numel(), sparsity, module.weight.device.type)
            self.decisions[key] = f"{sparsity:.1%} sparse: {why if ok else 'dense, ' + why}"
            if not ok:
                continue
            self.layers[key] = SparseTrainingLinear(key, module, mask, optimizer)
            if pruner is not None:
                pruner.held.add(key)
            self._convert_targets(trainer, key)
            print(f"sparse compute at update {trainer.updates}: {key} {tuple(mask.shape)} trains from CSR "
                  f"({sparsity:.1%} sparse, {self.layers[key].nnz:,} kept weights)", flush=True)

    def _convert_targets(self, trainer: TrainerView, key: str) -> None:
        net, name = key.split("/", 1)
        target = trainer.agent.target_networks().get(net)
        module = dict(target.named_modules()).get(name.removesuffix(".weight")) if target is not None else None
        if type(module) is nn.Linear:
            self.targets[f"target:{key}"] = TargetCSR(module, MIN_SPARSITY)

    def _dense_state_dict(self, optimizer: torch.optim.Optimizer, state: dict) -> dict:
        """The optimizer's ``state_dict`` in the dense format: moments of ``values`` at the weight's shape."""
        index = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
        for layer in self.layers.values():
            i = index.get(id(layer.values))
            if layer.optimizer is optimizer and i is not None and i in state["state"]:
                state["state"][i] = {k: layer.dense_state(v) if torch.is_tensor(v) and v.shape == layer.values.shape
                                     else v for k, v in state["state"][i].items()}
        return state

    def _sparse_state_dict(self, optimizer: torch.optim.Optimizer, state: dict) -> dict:
        """Loading a dense-format ``state_dict`` while converted: gather the moments at the kept entries (into a
        copy: the caller's dict stays as it was)."""
        state = {**state, "state": dict(state["state"])}
        index = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
        for layer in self.layers.values():
            i = index.get(id(layer.values))
            shape = layer.module.weight.shape
            if layer.optimizer is optimizer and i is not None and i in state["state"]:
                state["state"][i] = {k: v.reshape(-1)[layer.pattern.index.to(v.device)].clone()
                                     if torch.is_tensor(v) and v.shape == shape else v
                                     for k, v in state["state"][i].items()}
        return state

    def summary(self) -> dict:
        return {"mode": self.mode, "layers": dict(self.decisions),
                "targets": {k: ("dense for good (never sparse enough)" if t.gave_up else "CSR at each change")
                            for k, t in self.targets.items()}}

    def restore(self) -> None:
        """Back to masked-dense layers and the dense optimizer state (tests compare the two paths this way). The
        run itself ends converted: its last checkpoint is written before ``on_train_end`` in the dense format."""
        pruner = getattr(self.method, "pruner", None)
        for key, layer in self.layers.items():
            layer.restore()
            if pruner is not None:
                pruner.held.discard(key)
        for target in self.targets.values():
            target.remove()
        for handle in self._hooks:
            handle.remove()
        self.layers, self.targets, self._hooks = {}, {}, []
