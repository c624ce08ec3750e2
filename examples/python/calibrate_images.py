"""INT8 from a folder of images: calibrate a classifier on your own pictures, then compare
the int8 plan with fp32 on every image.

    python examples/python/calibrate_images.py MODEL.onnx IMAGES_DIR [--calib-count 64]
        [--batch 16] [--calibrator entropy|minmax|percentile] [--mean M ...] [--std S ...]
        [--out DIR]

Every .png/.jpg/.jpeg/.bmp/.gif/.tif file in IMAGES_DIR (sorted by name) is decoded with
Pillow, converted to grayscale or RGB to match the model's channel count, resized to the
model's input height and width, scaled to [0, 1], normalized per channel with --mean/--std
(default: none) and laid out NCHW float32. The first --calib-count images calibrate the
int8 build (kiln.build(..., precision="int8", calib=...)); all of them are then classified by
the fp32 and the int8 plans. A file named "<label>_anything.png" (e.g. "3_0007.png") counts
toward accuracy against that label. The plans and the calibration cache are written to --out
(default: a temporary folder).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import kiln

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"}


def model_input(model: Path) -> tuple[str, int, int, int]:
    """(input name, channels, height, width) of a one-input NCHW image model."""
    inputs = kiln.InferenceSession(str(model)).get_inputs()
    if len(inputs) != 1:
        sys.exit(f"{model}: expected one input (an NCHW image batch), found {len(inputs)}")
    shape = inputs[0].shape
    if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        sys.exit(f"{model}: input '{inputs[0].name}' has shape {shape}; expected [N, C, H, W] with fixed C, H, W")
    _, c, h, w = shape
    if c not in (1, 3):
        sys.exit(f"{model}: input '{inputs[0].name}' has {c} channels; expected 1 (grayscale) or 3 (RGB)")
    return inputs[0].name, c, h, w


def load_images(folder: Path, channels: int, height: int, width: int, mean, std) -> tuple[np.ndarray, list[Path]]:
    from PIL import Image  # Pillow, pinned in requirements.txt

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        sys.exit(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    batch = np.empty((len(files), channels, height, width), np.float32)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
                a = np.asarray(im, np.float32) / 255.0
        except OSError as e:
            sys.exit(f"{f}: not a readable image: {e}")
        batch[i] = a[None] if channels == 1 else a.transpose(2, 0, 1)
    if mean is not None:
        batch -= np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    if std is not None:
        batch /= np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    return batch, files


def label_of(path: Path) -> int | None:
    head = path.stem.split("_", 1)[0]
    return int(head) if head.isdigit() and "_" in path.stem else None


def classify(plan: Path, name: str, images: np.ndarray, batch: int) -> np.ndarray:
    sess = kiln.InferenceSession(str(plan))
    out = [sess.run(None, {name: images[i:i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(out).reshape(len(images), -1).argmax(axis=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("images", type=Path)
    ap.add_argument("--calib-count", type=int, default=64, help="images used for calibration (the first ones)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--calibrator", default="entropy", choices=["entropy", "minmax", "percentile"])
    ap.add_argument("--mean", type=float, nargs="+", help="per-channel mean subtracted after scaling to [0, 1]")
    ap.add_argument("--std", type=float, nargs="+", help="per-channel std divided by after the mean")
    ap.add_argument("--out", type=Path, help="folder for the plans and the calibration cache")
    args = ap.parse_args()
    if args.calib_count < 1 or args.batch < 1:
        sys.exit("--calib-count and --batch must be at least 1")

    name, c, h, w = model_input(args.model)
    for flag, values in (("--mean", args.mean), ("--std", args.std)):
        if values is not None and len(values) not in (1, c):
            sys.exit(f"{flag} takes 1 or {c} values for a {c}-channel model, got {len(values)}")
    images, files = load_images(args.images, c, h, w, args.mean, args.std)
    calib = images[:args.calib_count]
    print(f"{len(files)} images from {args.images}, {c}x{h}x{w}; calibrating on {len(calib)} ({args.calibrator})")

    out = args.out or Path(tempfile.mkdtemp(prefix="kiln_calib_"))
    out.mkdir(parents=True, exist_ok=True)
    shapes = {"min_shapes": {name: (1, c, h, w)}, "opt_shapes": {name: (args.batch, c, h, w)},
              "max_shapes": {name: (args.batch, c, h, w)}}
    fp32_plan, int8_plan = out / "model.fp32.plan", out / "model.int8.plan"
    kiln.build(args.model, fp32_plan, **shapes)
    summary = kiln.build(args.model, int8_plan, precision="int8", calibrator=args.calibrator,
                         calib=({name: calib[i:i + args.batch]} for i in range(0, len(calib), args.batch)),
                         calib_cache=out / "calibration.cache", **shapes)
    print(f"int8 plan: {int8_plan} ({summary['int8_layers']} int8 layers; cache {out / 'calibration.cache'})")

    fp32 = classify(fp32_plan, name, images, args.batch)
    int8 = classify(int8_plan, name, images, args.batch)
    print(f"top-1 agreement int8 vs fp32: {100.0 * float(np.mean(fp32 == int8)):.2f}% of {len(files)} images")
    labels = [label_of(f) for f in files]
    if all(lab is not None for lab in labels):
        y = np.asarray(labels)
        print(f"accuracy fp32: {100.0 * float(np.mean(fp32 == y)):.2f}%")
        print(f"accuracy int8: {100.0 * float(np.mean(int8 == y)):.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
