"""One host-to-device copy per replay batch.

A batch has seven parts (observations, actions, returns, next observations, discounts, weights, and on a probe the
actions again); copied one by one from ordinary memory, each is a separate, synchronous transfer (``non_blocking``
does nothing from pageable memory). On a GPU the replay packs every part into one pinned byte buffer and moves it
in a single asynchronous copy; the device tensors are views into the one device buffer. Two host buffers take
turns, and a buffer is refilled only after the copy that last read it has finished, so the learner can queue the
next batch while the previous one is still in flight. On the CPU nothing is copied at all (``torch.from_numpy``
shares the arrays), so the replay stages only on CUDA.
"""

from __future__ import annotations

import numpy as np
import torch

ALIGN = 8  # bytes: every part starts where an int64 or float64 view of it is legal


def layout(parts: dict[str, tuple[tuple[int, ...], np.dtype]]) -> tuple[dict[str, tuple[int, int]], int]:
    """Byte offset and size of each part, in order, each start aligned; and the total size."""
    offsets, total = {}, 0
    for name, (shape, dtype) in parts.items():
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        offsets[name] = (total, nbytes)
        total += -(-nbytes // ALIGN) * ALIGN
    return offsets, max(total, ALIGN)


class StagingBuffer:
    def __init__(self, parts: dict[str, tuple[tuple[int, ...], np.dtype]], device: torch.device | str):
        """``parts``: name -> (shape, numpy dtype) of every array of one batch."""
        self.device = torch.device(device)
        self.parts = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in parts.items()}
        self.offsets, self.nbytes = layout(self.parts)
        pin = self.device.type == "cuda"
        self._hosts = [torch.empty(self.nbytes, dtype=torch.uint8, pin_memory=pin) for _ in range(2)]
        self._copied = [None, None]  # the CUDA event after the last copy out of each host buffer
        self._turn = 0

    def _views(self, host: torch.Tensor) -> dict[str, np.ndarray]:
        raw = host.numpy()
        return {name: raw[start:start + size].view(dtype).reshape(shape)
                for name, (shape, dtype), (start, size) in self._table()}

    def _table(self):
        return [(name, self.parts[name], self.offsets[name]) for name in self.parts]

    def to_device(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The arrays on the device, through one copy: written into the free host buffer, moved at once."""
        host = self._hosts[self._turn]
        if self._copied[self._turn] is not None:
            self._copied[self._turn].synchronize()  # that buffer's previous copy has been read out
        views = self._views(host)
        for name, array in arrays.items():
            views[name][...] = array
        moved = host.to(self.device, non_blocking=True, copy=True)  # copy: on the CPU too, never the host buffer
        if self.device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
            self._copied[self._turn] = event
        self._turn = 1 - self._turn
        return {name: moved[start:start + size].view(torch_dtype(dtype)).view(shape)
                for name, (shape, dtype), (start, size) in self._table()}


def torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
