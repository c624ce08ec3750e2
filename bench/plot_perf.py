"""Plots concurrency sweeps from perf_analyzer-style CSVs (`kiln perf -f`,
bench/tritonclient_perf.py, or perf_analyzer itself) as one SVG: throughput
(infer/s) against concurrency, and p50 / p99 latency (ms) against concurrency.
Writes the SVG by hand (no plotting library needed).

    python bench/plot_perf.py kiln.csv:"kiln perf" tc.csv:tritonclient -o sweep.svg
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from html import escape

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
W, H = 460, 320  # one panel
M = {"left": 70, "right": 20, "top": 40, "bottom": 50}


def read_series(spec: str):
    path, _, label = spec.partition(":")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    xkey = "Concurrency" if "Concurrency" in rows[0] else "Request Rate"
    for key in (xkey, "Inferences/Second", "p50 latency", "p99 latency"):
        if key not in rows[0]:
            raise SystemExit(f"{path}: no column '{key}' (is it a perf_analyzer / kiln perf CSV?)")
    rows.sort(key=lambda r: float(r[xkey]))
    return {"label": label or path, "xkey": xkey,
            "x": [float(r[xkey]) for r in rows],
            "tput": [float(r["Inferences/Second"]) for r in rows],
            "p50": [float(r["p50 latency"]) / 1000 for r in rows],
            "p99": [float(r["p99 latency"]) / 1000 for r in rows]}


def nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """Evenly spaced round ticks from at or below lo to at or above hi."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1, round(step))
    t = math.floor(lo / step) * step
    ticks = [round(t, 10)]
    while ticks[-1] < hi - step * 1e-9:
        t += step
        ticks.append(round(t, 10))
    return ticks


def fmt(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.3g}"


def panel(ox: int, title: str, xlabel: str, ylabel: str, lines) -> list[str]:
    """lines: (xs, ys, color, dashed, label); returns SVG elements for one panel at x offset ox."""
    xs = [x for l in lines for x in l[0]]
    ys = [y for l in lines for y in l[1]]
    xt = nice_ticks(min(xs), max(xs), integer=all(x == int(x) for x in xs))
    yt = nice_ticks(0, max(ys) * 1.05 if ys else 1)
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    pw, ph = W - M["left"] - M["right"], H - M["top"] - M["bottom"]

    def px(x):
        return ox + M["left"] + (x - x0) / ((x1 - x0) or 1) * pw

    def py(y):
        return M["top"] + ph - (y - y0) / ((y1 - y0) or 1) * ph

    out = [f'<text x="{ox + W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{ox + M["left"]}" y="{M["top"]}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>']
    for t in xt:
        out.append(f'<line x1="{px(t):.1f}" y1="{M["top"]}" x2="{px(t):.1f}" y2="{M["top"] + ph}" stroke="#eee"/>')
        out.append(f'<text x="{px(t):.1f}" y="{M["top"] + ph + 16}" text-anchor="middle" font-size="11">{fmt(t)}</text>')
    for t in yt:
        out.append(f'<line x1="{ox + M["left"]}" y1="{py(t):.1f}" x2="{ox + M["left"] + pw}" y2="{py(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{ox + M["left"] - 6}" y="{py(t) + 4:.1f}" text-anchor="end" font-size="11">{fmt(t)}</text>')
    out.append(f'<text x="{ox + M["left"] + pw / 2}" y="{H - 12}" text-anchor="middle" font-size="12">{escape(xlabel)}</text>')
    out.append(f'<text x="{ox + 16}" y="{M["top"] + ph / 2}" text-anchor="middle" font-size="12" '
               f'transform="rotate(-90 {ox + 16} {M["top"] + ph / 2})">{escape(ylabel)}</text>')
    for i, (lx, ly, color, dashed, label) in enumerate(lines):
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(lx, ly))
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        for x, y in zip(lx, ly):
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        ly0 = M["top"] + 14 + 16 * i
        out.append(f'<line x1="{ox + M["left"] + 10}" y1="{ly0 - 4}" x2="{ox + M["left"] + 34}" y2="{ly0 - 4}" '
                   f'stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{ox + M["left"] + 40}" y="{ly0}" font-size="11">{escape(label)}</text>')
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+", help="CSV file, optionally path:label")
    ap.add_argument("-o", "--output", required=True, help="SVG file to write")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    series = [read_series(s) for s in args.csv]
    xlabel = series[0]["xkey"] + (" (requests/s)" if series[0]["xkey"] == "Request Rate" else "")
    tput = [(s["x"], s["tput"], COLORS[i % len(COLORS)], False, s["label"]) for i, s in enumerate(series)]
    lat = []
    for i, s in enumerate(series):
        lat.append((s["x"], s["p50"], COLORS[i % len(COLORS)], False, f"{s['label']} p50"))
        lat.append((s["x"], s["p99"], COLORS[i % len(COLORS)], True, f"{s['label']} p99"))
    body = panel(0, "Throughput", xlabel, "inferences / s", tput) + panel(W, "Latency", xlabel, "ms", lat)
    title = f'<text x="{W}" y="{H + 20}" text-anchor="middle" font-size="12">{escape(args.title)}</text>' if args.title else ""
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + (30 if title else 0)}" '
           f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(body) +
           ("\n" + title if title else "") + "\n</svg>\n")
    with open(args.output, "w") as f:
        f.write(svg)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
