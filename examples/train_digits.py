#!/usr/bin/env python3
"""Train a small CNN on scikit-learn's digits at AMP levels O0 (fp32), O1,
O2 and O1-bf16 with the same seeds, and print the table of held-out accuracy
and training throughput (docs/TRAINING.md).

    PYTHONPATH=build/python python examples/train_digits.py
    PYTHONPATH=build/python python examples/train_digits.py --levels O0,O1,O2,O3,O1-bf16,O2-bf16
    PYTHONPATH=build/python python examples/train_digits.py --export examples/models/digits_cnn.onnx

Throughput is training samples per second (wall clock, and per second of
this process's CPU time, which a loaded machine disturbs less) of Kiln's CPU training path,
where fp16/bf16 are emulated (rounding with fp32 accumulation): it shows the
cost of the emulation, not the speed-up of real tensor cores.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from kiln import datasets
from kiln.train import SGD, DataLoader, Model, accuracy, amp, cross_entropy

LAYERS = ["conv:16:3:1:1", "bn", "relu", "maxpool:2",
          "conv:32:3:1:1", "bn", "relu", "maxpool:2",
          "flatten", "linear:10"]


def train(level: str, split: datasets.Split, epochs: int, batch_size: int, lr: float, seed: int):
    model = Model.sequential((1, 8, 8), LAYERS, seed=seed)
    opt = SGD(model, lr=lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
    amp.initialize(model, opt, level)
    loader = DataLoader(split.x_train, split.y_train, batch_size, shuffle=True, seed=seed)
    samples = 0
    seconds = 0.0
    cpu_seconds = 0.0
    loss = None
    for epoch in range(epochs):
        opt.lr = lr * 0.5 * (1 + np.cos(np.pi * epoch / epochs))  # cosine decay, per epoch
        start = time.perf_counter()
        cpu_start = time.process_time()
        for x, y in loader.epoch(epoch):
            loss = cross_entropy(model.forward(x), y)
            amp.scaled_backward(model, opt, loss)
            opt.step()
            samples += len(y)
        seconds += time.perf_counter() - start
        cpu_seconds += time.process_time() - cpu_start
    return {
        "level": level,
        "model": model,
        "accuracy": accuracy(model, split.x_test, split.y_test),
        "train_accuracy": accuracy(model, split.x_train, split.y_train),
        "loss": float(loss.value) if loss is not None else float("nan"),
        "samples_per_s": samples / seconds if seconds > 0 else float("nan"),
        "samples_per_cpu_s": samples / cpu_seconds if cpu_seconds > 0 else float("nan"),
        "skipped": opt.skipped_steps,
        "loss_scale": opt.loss_scale,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", default="O0,O1,O2,O1-bf16", help="comma-separated AMP levels (first is the baseline)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", default="", help="write the baseline (first level) model to this ONNX file")
    p.add_argument("--tolerance", type=float, default=0.5, help="max accuracy gap to the baseline, in points")
    args = p.parse_args(argv)

    split = datasets.digits(seed=args.seed)
    print(f"digits: {len(split.y_train)} train, {len(split.y_test)} held out; {args.epochs} epochs, "
          f"batch {args.batch_size}, seed {args.seed}")
    results = [train(level, split, args.epochs, args.batch_size, args.lr, args.seed)
               for level in args.levels.split(",")]
    base = results[0]
    print()
    print("| level | held-out accuracy (%) | vs fp32 (points) | train accuracy (%) | final loss | "
          "skipped steps | final loss scale | train samples/s | train samples/CPU-s |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for r in results:
        gap = r["accuracy"] - base["accuracy"]
        if not r["level"].upper().startswith("O3"):  # O3 (pure fp16) is for comparison only
            worst = max(worst, abs(gap))
        print(f"| {r['level']} | {r['accuracy']:.2f} | {gap:+.2f} | {r['train_accuracy']:.2f} | {r['loss']:.4f} | "
              f"{r['skipped']} | {r['loss_scale']:g} | {r['samples_per_s']:.0f} | {r['samples_per_cpu_s']:.0f} |")
    if args.export:
        base["model"].save_onnx(args.export)
        print(f"\nwrote {args.export} ({base['level']}, held-out accuracy {base['accuracy']:.2f}%)")
    ok = worst <= args.tolerance
    print(f"\nlargest mixed-precision gap to {base['level']}: {worst:.2f} points (tolerance {args.tolerance}) -> "
          f"{'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
