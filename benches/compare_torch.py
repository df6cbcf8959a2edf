#!/usr/bin/env python3
"""PyTorch's F.cross_entropy on the shapes xent benchmarks, forward and forward+backward.

Prints the median time over N runs (after a warm-up) and GB/s of logits read, on the same thread
count as xent's CPU runs (2 by default, `--threads`). Inputs rotate over fresh sets holding at least
64 MiB, as in `xent bench`, so that caches do not flatter the numbers. With `--json`, prints one
JSON object per shape and pass instead, which `xent bench --torch` reads. Skipped, with a message,
when torch is not installed.

    python3 benches/compare_torch.py [--threads 2] [--runs 10] [--shape 4096x32000 ...] [--json]
"""

import argparse
import json
import statistics
import sys
import time

DEFAULT_SHAPES = ["64x1000", "1024x32000", "4096x32000", "256x128256", "8192x10", "32x262144"]
# The same rotation rule as `xent bench`: enough sets to hold this many bytes, 2 to 256 of them.
ROTATION_BYTES = 64 << 20
MAX_SETS = 256


def shape_arg(text):
    try:
        b, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not BxC (for example 4096x32000)") from None
    if b <= 0 or c <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' needs positive B and C")
    return b, c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--shape", action="append", type=shape_arg, help="BxC, repeatable")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("compare_torch: torch is not installed; skipping (pip install torch)")
        return 0
    torch.set_num_threads(args.threads)
    if not args.json:
        print(f"torch {torch.__version__}, {args.threads} threads, median of {args.runs} runs")
        print(f"{'shape':>12} {'fwd ms':>10} {'fwd GB/s':>9} {'fwd+bwd ms':>11} {'ratio':>6}")
    gen = torch.Generator().manual_seed(0)
    for b, c in args.shape or [shape_arg(s) for s in DEFAULT_SHAPES]:
        sets_n = min(max(-(-ROTATION_BYTES // (b * c * 4)), 2), MAX_SETS)
        sets = [
            (torch.randn(b, c, generator=gen) * 3, torch.randint(0, c, (b,), generator=gen))
            for _ in range(sets_n)
        ]

        def forward(x, y):
            return F.cross_entropy(x, y)

        def forward_backward(x, y):
            leaf = x.detach().requires_grad_(True)
            F.cross_entropy(leaf, y).backward()
            return leaf.grad

        stats = {}
        for name, fn in (("fwd", forward), ("fwd+bwd", forward_backward)):
            for w in range(args.warmup):
                fn(*sets[w % sets_n])
            samples = []
            for r in range(args.runs):
                x, y = sets[(args.warmup + r) % sets_n]
                start = time.perf_counter()
                fn(x, y)
                samples.append(time.perf_counter() - start)
            stats[name] = samples
            if args.json:
                print(
                    json.dumps(
                        {
                            "impl": "torch",
                            "version": torch.__version__,
                            "shape": f"{b}x{c}",
                            "pass": name,
                            "threads": args.threads,
                            "runs": args.runs,
                            "median_s": statistics.median(samples),
                            "min_s": min(samples),
                            "max_s": max(samples),
                        }
                    ),
                    flush=True,
                )
        if not args.json:
            fwd = statistics.median(stats["fwd"])
            both = statistics.median(stats["fwd+bwd"])
            print(
                f"{f'{b}x{c}':>12} {fwd * 1e3:>10.3f} {b * c * 4 / fwd / 1e9:>9.2f} "
                f"{both * 1e3:>11.3f} {both / fwd:>6.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
