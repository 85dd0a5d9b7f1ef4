"""Looking inside a network without changing it: noise off, and the outputs (or inputs) of chosen modules captured.

The health probe, ReDo and Rainbow's acting all need the network in eval mode (noisy layers at their means, so
nothing draws from the training RNG) and put back as they found it; the first two also read activations through
forward hooks that must be removed whatever happens.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

# The nonlinearities the probes, ReDo and READ read as layers of units: ReLU everywhere, tanh in the MLP of CleanRL's
# PPO (``network.activation=tanh``)
NONLINEARITIES = (nn.ReLU, nn.Tanh)


@contextmanager
def noise_off(net: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration (noisy layers use their means), then the network's own mode again."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


@contextmanager
def captured(net: nn.Module, outputs: Mapping[Hashable, nn.Module],
             inputs: Mapping[Hashable, nn.Module] | None = None) -> Iterator[dict[Hashable, torch.Tensor]]:
    """With noise off, a dict that each forward inside the block fills: the output of every module in ``outputs``
    and the first input of every module in ``inputs``, under their keys. The hooks go when the block ends."""
    acts: dict[Hashable, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, key=k: acts.__setitem__(key, out))
             for k, m in outputs.items()]
    hooks += [m.register_forward_pre_hook(lambda _m, inp, key=k: acts.__setitem__(key, inp[0]))
              for k, m in (inputs or {}).items()]
    try:
        with noise_off(net):
            yield acts
    finally:
        for h in hooks:
            h.remove()
