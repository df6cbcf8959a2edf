#!/usr/bin/env python3
"""PyTorch's F.cross_entropy on the shapes xent benchmarks, forward and forward+backward.

Prints the median time over N runs (after a warm-up) and GB/s of logits read, on the same thread
count as xent's CPU runs (2 by default, `--threads`). Skipped, with a message, when torch is not
installed.

    python3 benches/compare_torch.py [--threads 2] [--runs 10] [--shape 4096x32000 ...]
"""

import argparse
import statistics
import sys
import time

DEFAULT_SHAPES = ["64x1000", "1024x32000", "4096x32000", "256x128256", "8192x10", "32x262144"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--shape", action="append", help="BxC, repeatable")
    args = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("compare_torch: torch is not installed; skipping (pip install torch)")
        return 0
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.runs} runs")
    print(f"{'shape':>12} {'fwd ms':>10} {'fwd GB/s':>9} {'fwd+bwd ms':>11} {'ratio':>6}")
    gen = torch.Generator().manual_seed(0)
    for shape in args.shape or DEFAULT_SHAPES:
        b, c = (int(v) for v in shape.lower().split("x"))
        x = torch.randn(b, c, generator=gen) * 3
        y = torch.randint(0, c, (b,), generator=gen)

        def forward():
            return F.cross_entropy(x, y)

        def forward_backward():
            leaf = x.detach().requires_grad_(True)
            F.cross_entropy(leaf, y).backward()
            return leaf.grad

        times = {}
        for name, fn in (("fwd", forward), ("fwd+bwd", forward_backward)):
            fn()
            samples = []
            for _ in range(args.runs):
                start = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - start)
            times[name] = statistics.median(samples)
        gbs = b * c * 4 / times["fwd"] / 1e9
        print(
            f"{shape:>12} {times['fwd'] * 1e3:>10.3f} {gbs:>9.2f} "
            f"{times['fwd+bwd'] * 1e3:>11.3f} {times['fwd+bwd'] / times['fwd']:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
