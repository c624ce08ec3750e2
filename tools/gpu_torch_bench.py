#!/usr/bin/env python3
"""PyTorch eager baseline for tools/gpu_check.sh.

Runs an ONNX model (the zoo's resnet50 / bert_base) in PyTorch eager mode on the
GPU with the ONNX file's own weights: each ONNX node becomes the torch call an
nn.Module would make (F.conv2d, F.batch_norm, F.layer_norm, torch.matmul, ...),
so the baseline is PyTorch eager at the given precision. Times it with CUDA
events, compares its outputs with Kiln's (.npy files written by kiln_gpu_bench)
and prints one line:

  TORCH_BENCH model=<name> precision=<p> torch_ms=<ms> diff_kiln=<max abs diff Kiln vs torch>
              diff_fp32=<max abs diff torch(p) vs torch fp32> diff_kiln_fp32=<Kiln vs torch fp32>
"""
import argparse
import shlex
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper

torch = None  # imported in main() so that --write-inputs works without PyTorch
F = None

ONNX_FLOAT, ONNX_INT64, ONNX_INT32, ONNX_BOOL = 1, 7, 6, 9


class TorchOnnx:
    """Evaluates an ONNX graph with eager torch ops on `device` in `dtype`."""

    def __init__(self, model, device, dtype):
        self.graph = model.graph
        self.device, self.dtype = device, dtype
        self.consts = {}
        for init in self.graph.initializer:
            a = numpy_helper.to_array(init)
            t = torch.from_numpy(np.array(a, copy=True))
            if t.is_floating_point():
                t = t.to(device=device, dtype=dtype)
            elif t.numel() > 16:  # large integer tables go to the GPU; small ones stay shape data
                t = t.to(device)
            self.consts[init.name] = t
        # Attributes are decoded once, as a module's constructor would.
        self.nodes = [(n.op_type, list(n.input), list(n.output),
                       {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}) for n in self.graph.node]
        self.outputs = [o.name for o in self.graph.output]

    def run(self, feeds):
        env = dict(self.consts)
        env.update(feeds)
        for op_type, inputs, outputs, attrs in self.nodes:
            outs = self.op(op_type, [env[i] if i else None for i in inputs], attrs)
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for name, value in zip(outputs, outs):
                env[name] = value
        return [env[o] for o in self.outputs]

    def op(self, t, x, a):
        dev = self.device
        if t == "Conv":
            p = a.get("pads", [0, 0, 0, 0])
            return F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, stride=a.get("strides", [1, 1]),
                            padding=(p[0], p[1]), dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
        if t == "BatchNormalization":
            return F.batch_norm(x[0], x[3], x[4], x[1], x[2], training=False, eps=a.get("epsilon", 1e-5))
        if t == "Relu":
            return F.relu(x[0])
        if t == "Clip":
            return torch.clamp(x[0], float(x[1]), float(x[2]))
        if t == "MaxPool":
            p = a.get("pads", [0, 0, 0, 0])
            return F.max_pool2d(x[0], a["kernel_shape"], a.get("strides", [1, 1]), (p[0], p[1]),
                                ceil_mode=bool(a.get("ceil_mode", 0)))
        if t == "GlobalAveragePool":
            return x[0].mean(dim=(2, 3), keepdim=True)
        if t == "Flatten":
            return torch.flatten(x[0], a.get("axis", 1))
        if t == "Gemm":
            A = x[0].t() if a.get("transA", 0) else x[0]
            B = x[1].t() if a.get("transB", 0) else x[1]
            y = a.get("alpha", 1.0) * (A @ B)
            return y + a.get("beta", 1.0) * x[2] if len(x) > 2 and x[2] is not None else y
        if t == "MatMul":
            return torch.matmul(x[0], x[1])
        if t in ("Add", "Sub", "Mul", "Div"):
            l, r = x
            if l.device != r.device:
                l, r = l.to(dev), r.to(dev)
            return {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[t](l, r)
        if t == "Identity":
            return x[0]
        if t == "Erf":
            return torch.erf(x[0])
        if t == "Tanh":
            return torch.tanh(x[0])
        if t == "Softmax":
            return torch.softmax(x[0], dim=a.get("axis", -1))
        if t == "LayerNormalization":
            axis = a.get("axis", -1)
            shape = x[0].shape[axis:] if axis != -1 else x[0].shape[-1:]
            return F.layer_norm(x[0], shape, x[1], x[2] if len(x) > 2 else None, eps=a.get("epsilon", 1e-5))
        if t == "Shape":
            return torch.tensor(list(x[0].shape), dtype=torch.int64)
        if t == "Gather":
            data, idx, axis = x[0], x[1], a.get("axis", 0)
            if idx.device != data.device:
                idx = idx.to(data.device)
            if idx.dim() == 0:
                return data.select(axis, int(idx))
            return torch.index_select(data, axis, idx.reshape(-1)).reshape(
                data.shape[:axis] + idx.shape + data.shape[axis + 1:])
        if t == "Range":
            return torch.arange(int(x[0]), int(x[1]), int(x[2]), dtype=torch.int64, device=dev)
        if t == "Cast":
            to = a["to"]
            if to == ONNX_FLOAT:
                return x[0].to(device=dev, dtype=self.dtype)
            return x[0].to({ONNX_INT64: torch.int64, ONNX_INT32: torch.int32, ONNX_BOOL: torch.bool}[to])
        if t == "Unsqueeze":
            y = x[0]
            for ax in sorted(int(v) for v in x[1].tolist()):
                y = y.unsqueeze(ax)
            return y
        if t == "Reshape":
            shape = [int(v) for v in x[1].tolist()]
            shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return x[0].reshape(shape)
        if t == "Transpose":
            return x[0].permute(*a["perm"])
        raise NotImplementedError(f"op {t}")


def make_feeds(model_name, batch, seq):
    rng = np.random.default_rng(0)
    if model_name.startswith("bert"):
        ids = rng.integers(0, 30522, size=(batch, seq), dtype=np.int64)
        mask = np.ones((batch, seq), dtype=np.int64)
        mask[:, seq - 8:] = 0
        return {"input_ids": ids, "attention_mask": mask}
    return {"input": rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)}


def to_torch(feeds, device, dtype):
    out = {}
    for k, v in feeds.items():
        t = torch.from_numpy(v).to(device)
        out[k] = t.to(dtype) if t.is_floating_point() else t
    return out


def interleave(args, torch_round):
    """Alternates PyTorch rounds with Kiln rounds (a kiln_gpu_bench process
    started with --rounds-from-stdin); returns [(torch_ms, kiln_ms)] per round."""
    proc = subprocess.Popen(shlex.split(args.interleave), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rounds = []
    try:
        for line in proc.stdout:  # the first run, up to its summary line
            print(line, end="", flush=True)
            if line.startswith("KILN_GPU_BENCH"):
                break
        else:
            print(f"interleave: kiln_gpu_bench ended early (exit {proc.wait()})", file=sys.stderr)
            return []
        for r in range(args.rounds):
            t = torch_round()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            if not line.startswith("KILN_ROUND"):
                print(f"interleave: unexpected reply {line!r}", file=sys.stderr)
                break
            k = float(line.split("device_ms=")[1])
            rounds.append((t, k))
            print(f"round {r + 1}: torch {t:.4f} ms, kiln {k:.4f} ms, ratio {t / k:.3f}", flush=True)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    return rounds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--write-inputs", help="write the feeds as <dir>/<name>.npy and exit")
    ap.add_argument("--kiln-outputs", help="directory of Kiln's outputs (0.npy, 1.npy, ...)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--interleave", help="a kiln_gpu_bench command line (with --rounds-from-stdin): time Kiln and "
                    "PyTorch in alternation, --rounds times, and report the median of the per-round ratios")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    feeds = make_feeds(args.name, args.batch, args.seq)
    if args.write_inputs:
        for k, v in feeds.items():
            np.save(f"{args.write_inputs}/{k}.npy", v)
        return 0

    global torch, F
    import torch as torch_module
    import torch.nn.functional as functional
    torch, F = torch_module, functional

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # the stronger baseline: cuDNN picks its fastest algorithms too
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.precision]
    t0 = time.time()
    model = onnx.load(args.model)
    print(f"loaded {args.model} in {time.time() - t0:.1f}s", flush=True)
    dev = torch.device("cuda")
    with torch.inference_mode():
        ref_net = TorchOnnx(model, dev, torch.float32)
        ref = [o.float().cpu().numpy() for o in ref_net.run(to_torch(feeds, dev, torch.float32))]
        del ref_net
        net = TorchOnnx(model, dev, dtype)
        inputs = to_torch(feeds, dev, dtype)
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def timed(n):
            start.record()
            for _ in range(n):
                net.run(inputs)
            stop.record()
            torch.cuda.synchronize()
            return start.elapsed_time(stop) / n

        # As kiln_gpu_bench: warm up for at least a second (GPU clocks ramp up),
        # then the median of five windows of at least 0.2 s each.
        est = timed(max(1, args.warmup))
        timed(max(1, int(1000.0 / max(est, 1e-3))))
        per_window = max(args.iters // 5, int(200.0 / max(est, 1e-3)) + 1)
        ms = sorted(timed(per_window) for _ in range(5))[2]
        outs = [o.float().cpu().numpy() for o in net.run(inputs)]
        rounds = interleave(args, lambda: sorted(timed(max(1, int(100.0 / max(ms, 1e-3)))) for _ in range(3))[1]) \
            if args.interleave else []

    def maxdiff(xs, ys):
        return max(float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) for x, y in zip(xs, ys))

    diff_fp32 = maxdiff(outs, ref)
    diff_kiln, diff_kiln_fp32 = float("nan"), float("nan")
    if args.kiln_outputs:
        try:
            kiln = [np.load(f"{args.kiln_outputs}/{i}.npy") for i in range(len(outs))]
            diff_kiln, diff_kiln_fp32 = maxdiff(kiln, outs), maxdiff(kiln, ref)
        except (OSError, ValueError) as e:
            print(f"cannot compare with Kiln's outputs: {e}", file=sys.stderr)
    if rounds:
        ratios = sorted(t / k for t, k in rounds)
        print(f"INTERLEAVED model={args.name} rounds={len(rounds)} "
              f"torch_ms={statistics.median(t for t, _ in rounds):.4f} kiln_ms={statistics.median(k for _, k in rounds):.4f} "
              f"ratio_median={statistics.median(ratios):.3f} ratio_min={ratios[0]:.3f} ratio_max={ratios[-1]:.3f}",
              flush=True)
    print(f"TORCH_BENCH model={args.name} precision={args.precision} torch_ms={ms:.4f} diff_kiln={diff_kiln:.5g} "
          f"diff_fp32={diff_fp32:.5g} diff_kiln_fp32={diff_kiln_fp32:.5g} ref_absmax={max(float(np.max(np.abs(r))) for r in ref):.5g}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
