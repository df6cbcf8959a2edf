#!/usr/bin/env python3
"""PyTorch's F.cross_entropy on the shapes xent benchmarks, forward and forward+backward, and its
F.linear_cross_entropy on linear heads, on its reference path and its chunked path.

Prints the median time over N runs (after a warm-up) and GB/s of logits read, on the same thread
count as xent's CPU runs (2 by default, `--threads`). Inputs rotate over fresh sets holding at least
64 MiB, as in `xent bench`, so that caches do not flatter the numbers. With `--json`, prints one
JSON object per shape and pass instead, which `xent bench --torch` reads. Skipped, with a message,
when torch is not installed.

`--linear-shape NxDxV` (repeatable) times F.linear_cross_entropy(H, W, target, linear_bias=b) with
H [N, D] ~ N(0, 1), W [V, D] ~ N(0, 1/D), b [V] ~ N(0, 1) and class targets: on the reference path
(`options=None`, the [N, V] logits materialized) and on the chunked path
(`options=LinearCrossEntropyOptions()`), the forward (the loss, without autograd) and the forward
and backward (the gradients of H, W and b); inputs rotate as above, or not at all where one set
holds more than 64 MiB, as in `xent bench`. GFLOP/s counts 2·N·D·V per GEMM, 1 for fwd and 3 for
fwd+bwd. Each row's peak memory is measured as `xent bench` measures its own: a child process
builds the inputs (and, for fwd+bwd, gradient buffers: each leaf's `.grad` set to zeros, which the
backward adds into), makes the call once unmeasured (the chunked path imports about 160 MiB of
modules on its first call), hands the freed heap back to the system (glibc's malloc_trim), resets
the high-water mark of its resident memory, reads its RSS (`/proc/self/status`), makes the call
again, and reports VmHWM − RSS as `peak_bytes` (null without `/proc`).

    python3 benches/compare_torch.py [--threads 2] [--runs 10] [--shape 4096x32000 ...]
        [--linear-shape 2048x1024x32000 ...] [--json]

With neither --shape nor --linear-shape, the default grid of logits shapes runs.
"""

import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time

DEFAULT_SHAPES = ["64x1000", "1024x32000", "4096x32000", "256x128256", "8192x10", "32x262144"]
# The same rotation rule as `xent bench`: enough sets to hold this many bytes, 2 to 256 of them.
ROTATION_BYTES = 64 << 20
MAX_SETS = 256
# The paths of F.linear_cross_entropy, as the JSON lines' "variant" names them.
VARIANTS = ("reference", "chunked")


def dims_arg(text, k, example):
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) != k:
        raise argparse.ArgumentTypeError(f"'{text}' is not {'x'.join('BC' if k == 2 else 'NDV')} "
                                         f"(for example {example})")
    if min(dims) <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' needs positive dimensions")
    return dims


def shape_arg(text):
    return dims_arg(text, 2, "4096x32000")


def linear_shape_arg(text):
    return dims_arg(text, 3, "2048x1024x32000")


def summary(samples):
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
    }


def timed(fn, sets, warmup, runs):
    """Seconds of `runs` calls of fn over rotating sets, after `warmup` untimed ones."""
    for w in range(warmup):
        fn(*sets[w % len(sets)])
    samples = []
    for r in range(runs):
        args = sets[(warmup + r) % len(sets)]
        start = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - start)
    return samples


def logits_rows(torch, F, args, b, c, gen):
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
        samples = timed(fn, sets, args.warmup, args.runs)
        stats[name] = samples
        if args.json:
            row = {"impl": "torch", "version": torch.__version__, "shape": f"{b}x{c}",
                   "pass": name, "threads": args.threads, "runs": args.runs}
            print(json.dumps({**row, **summary(samples)}), flush=True)
    if not args.json:
        fwd = statistics.median(stats["fwd"])
        both = statistics.median(stats["fwd+bwd"])
        print(
            f"{f'{b}x{c}':>12} {fwd * 1e3:>10.3f} {b * c * 4 / fwd / 1e9:>9.2f} "
            f"{both * 1e3:>11.3f} {both / fwd:>6.2f}"
        )


def linear_set(torch, n, d, v, gen):
    """H, W, b and the targets of one set."""
    return (
        torch.randn(n, d, generator=gen),
        torch.randn(v, d, generator=gen) / d**0.5,
        torch.randn(v, generator=gen),
        torch.randint(0, v, (n,), generator=gen),
    )


def linear_call(torch, F, variant, pass_, grads=None):
    """The call of one row, on (H, W, b, targets): the forward without autograd, or the forward
    and backward into fresh leaves (their .grad from `grads`, when given, added into)."""
    options = None if variant == "reference" else torch.nn.LinearCrossEntropyOptions()

    def forward(h, w, b, y):
        with torch.no_grad():
            return F.linear_cross_entropy(h, w, y, linear_bias=b, options=options)

    def forward_backward(h, w, b, y):
        leaves = [t.detach().requires_grad_(True) for t in (h, w, b)]
        for leaf, grad in zip(leaves, grads or ()):
            leaf.grad = grad
        loss = F.linear_cross_entropy(leaves[0], leaves[1], y, linear_bias=leaves[2],
                                      options=options)
        loss.backward()
        return [leaf.grad for leaf in leaves]

    return forward if pass_ == "fwd" else forward_backward


def status_bytes(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_child(torch, F, n, d, v, variant, pass_):
    """Runs one call and prints its peak memory above its inputs and gradients, as JSON."""
    h, w, b, y = linear_set(torch, n, d, v, torch.Generator().manual_seed(1))
    grads = [torch.zeros_like(t) for t in (h, w, b)] if pass_ == "fwd+bwd" else None
    call = linear_call(torch, F, variant, pass_, grads)
    call(h, w, b, y)
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        # The high-water mark starts again from what is resident now (Linux 4.0 and later).
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    before = status_bytes("VmRSS")
    out = call(h, w, b, y)
    hwm = status_bytes("VmHWM")
    del out
    peak = None if before is None or hwm is None else max(hwm - before, 0)
    print(json.dumps({"rss_before_bytes": before, "hwm_bytes": hwm, "peak_bytes": peak}))
    return 0


def peak_of(args, n, d, v, variant, pass_):
    """The peak memory of one call, from a child process of this script."""
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--threads", str(args.threads), "--peak-child",
         str(n), str(d), str(v), variant, pass_],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"]


def linear_rows(torch, F, args, n, d, v, gen):
    set_bytes = (n * d + v * d + v) * 4 + n * 8
    sets_n = 1 if set_bytes >= ROTATION_BYTES else min(max(-(-ROTATION_BYTES // set_bytes), 2),
                                                       MAX_SETS)
    sets = [linear_set(torch, n, d, v, gen) for _ in range(sets_n)]
    for variant in VARIANTS:
        for pass_ in ("fwd", "fwd+bwd"):
            samples = timed(linear_call(torch, F, variant, pass_), sets, args.warmup, args.runs)
            peak = peak_of(args, n, d, v, variant, pass_)
            flops = 2 * n * d * v * (1 if pass_ == "fwd" else 3)
            if args.json:
                row = {"impl": "torch", "version": torch.__version__, "shape": f"{n}x{d}x{v}",
                       "pass": pass_, "variant": variant, "threads": args.threads,
                       "runs": args.runs, "peak_bytes": peak}
                print(json.dumps({**row, **summary(samples)}), flush=True)
            else:
                median = statistics.median(samples)
                peak_mib = "" if peak is None else f"{peak / 2**20:.1f}"
                print(f"{f'{n}x{d}x{v}':>18} {variant:>9} {pass_:>7} {median * 1e3:>10.3f} "
                      f"{flops / median / 1e9:>8.2f} {peak_mib:>9}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--shape", action="append", type=shape_arg, help="BxC, repeatable")
    parser.add_argument("--linear-shape", action="append", type=linear_shape_arg,
                        help="NxDxV, repeatable")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    # One call in a process of its own, for its peak memory: N D V VARIANT PASS.
    parser.add_argument("--peak-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("compare_torch: torch is not installed; skipping (pip install torch)")
        return 0
    torch.set_num_threads(args.threads)
    if args.peak_child:
        n, d, v, variant, pass_ = args.peak_child
        return peak_child(torch, F, int(n), int(d), int(v), variant, pass_)
    linear = args.linear_shape or []
    shapes = args.shape or ([] if linear else [shape_arg(s) for s in DEFAULT_SHAPES])
    header = f"torch {torch.__version__}, {args.threads} threads, median of {args.runs} runs"
    gen = torch.Generator().manual_seed(0)
    if shapes and not args.json:
        print(header)
        print(f"{'shape':>12} {'fwd ms':>10} {'fwd GB/s':>9} {'fwd+bwd ms':>11} {'ratio':>6}")
    for b, c in shapes:
        logits_rows(torch, F, args, b, c, gen)
    if linear and not args.json:
        print(f"{header}; F.linear_cross_entropy, peak memory above inputs and gradients")
        print(f"{'shape':>18} {'path':>9} {'pass':>7} {'median ms':>10} {'GFLOP/s':>8} "
              f"{'peak MiB':>9}")
    for n, d, v in linear:
        linear_rows(torch, F, args, n, d, v, gen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
