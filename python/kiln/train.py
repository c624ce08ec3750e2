"""Training with Kiln: autodiff over the Kiln IR, optimizers and automatic
mixed precision in a few lines.

    from kiln.train import Model, SGD, DataLoader, amp, cross_entropy

    model = Model.sequential((1, 8, 8), ["conv:16:3:1:1", "bn", "relu", "maxpool:2",
                                         "flatten", "linear:10"], seed=0)
    opt = SGD(model, lr=0.05, momentum=0.9)
    amp.initialize(model, opt, "O1")          # O0 | O1 | O2 | O3, "-bf16" variants
    for epoch in range(5):
        for x, y in loader.epoch(epoch):
            loss = cross_entropy(model.forward(x), y)
            amp.scaled_backward(model, opt, loss)
            opt.step()                        # unscale, skip on inf/NaN, clip, update
    model.save_onnx("model.onnx")

Reduced precision is emulated on the CPU (values rounded to fp16/bf16 with
fp32 accumulation); see docs/TRAINING.md.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from ._core import train as _t

Model = _t.Model
Loss = _t.Loss
Optimizer = _t.Optimizer


def cross_entropy(logits, labels) -> Loss:
    """Softmax cross-entropy of logits [N, C] against integer labels [N] (mean)."""
    return _t.cross_entropy(np.asarray(logits, dtype=np.float32), np.asarray(labels, dtype=np.int64))


def mse(pred, target) -> Loss:
    """Mean squared error."""
    return _t.mse(np.asarray(pred, dtype=np.float32), np.asarray(target, dtype=np.float32))


def SGD(model: Model, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
        weight_decay: float = 0.0, nesterov: bool = False) -> Optimizer:
    """SGD with optional (Nesterov) momentum and L2 weight decay."""
    return Optimizer.sgd(model, lr, momentum, dampening, weight_decay, nesterov)


def Adam(model: Model, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
         weight_decay: float = 0.0) -> Optimizer:
    """Adam with L2 weight decay added to the gradient."""
    return Optimizer.adam(model, lr, betas[0], betas[1], eps, weight_decay, False)


def AdamW(model: Model, lr: float = 1e-3, betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 0.01) -> Optimizer:
    """Adam with decoupled weight decay."""
    return Optimizer.adam(model, lr, betas[0], betas[1], eps, weight_decay, True)


class amp:  # noqa: N801 - used as a namespace: amp.initialize(...), amp.scaled_backward(...)
    """Automatic mixed precision."""

    @staticmethod
    def initialize(model: Model, optimizer: Optimizer, level: str = "O1", init_scale: Optional[float] = None,
                   growth_interval: Optional[int] = None, dynamic: Optional[bool] = None) -> None:
        """Sets the AMP level: O0 (fp32), O1 (per-op lists), O2 (fp16 model, fp32 master weights),
        O3 (pure fp16); "-bf16" for bfloat16. Loss-scaler defaults: 2**16, x2 after 2000 clean
        steps, x0.5 and skip on overflow (static 1 for bf16 and O3)."""
        _t.amp_initialize(model, optimizer, level, init_scale, growth_interval, dynamic)

    @staticmethod
    def scaled_backward(model: Model, optimizer: Optimizer, loss: Loss) -> None:
        """Backward of loss * loss_scale; optimizer.step() unscales."""
        _t.amp_scaled_backward(model, optimizer, loss)


class DataLoader:
    """Mini-batches over arrays with seeded shuffling: epoch e's order depends only on (seed, e)."""

    def __init__(self, x, y, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        self._loader = _t.DataLoader(np.ascontiguousarray(x), np.ascontiguousarray(y), batch_size, shuffle, seed,
                                     drop_last)

    def __len__(self) -> int:
        return len(self._loader)

    def epoch(self, epoch: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        self._loader.set_epoch(epoch)
        for i in range(len(self._loader)):
            yield self._loader.batch(i)


def accuracy(model: Model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of `model` (inference mode) on (x, y), in percent."""
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = model.predict(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32))
        correct += int((np.argmax(logits, axis=1) == y[i:i + batch_size]).sum())
    return 100.0 * correct / max(1, len(x))


__all__: Sequence[str] = ["Model", "Loss", "Optimizer", "SGD", "Adam", "AdamW", "amp", "DataLoader",
                          "cross_entropy", "mse", "accuracy"]
