#!/usr/bin/env python3
"""The two benchmark tables of docs/performance.md, from the JSON that `xent bench --json` writes.

    python3 scripts/bench_tables.py docs/bench/bench.json

prints the markdown of the times table and of the ceilings table: one row per shape and pass,
one column per path, as docs/performance.md shows them. GB/s counts the bytes read, and for fwd+bwd the
f32 gradient written.
"""

import json
import sys

# The GPU paths: the backend as the engines name it, and as the tables do.
GPUS = (("Vulkan", "Vulkan lavapipe"), ("Gl", "GL llvmpipe"))


def time(seconds):
    """Milliseconds to 3 significant digits, never in exponent form."""
    ms = seconds * 1e3
    if ms >= 1000:
        return f"{ms:.0f} ms"
    return f"{ms:.3g} ms"


def main(path):
    # Rows on logits (BxC); a linear head's rows (NxDxV, in GFLOP/s) have tables of their own.
    rows = [r for r in json.load(open(path)) if r["shape"].count("x") == 1]
    shapes = list(dict.fromkeys(r["shape"] for r in rows))

    def find(shape, pass_, measure, path_prefix):
        for r in rows:
            if (
                r["shape"] == shape
                and r["pass"] == pass_
                and r["measure"] == measure
                and r["path"].startswith(path_prefix)
            ):
                return r
        return None

    def gpu(backend):
        return f"[{backend}/"

    header = ["shape, pass", "fast CPU", "PyTorch", "candle"]
    for backend, name in GPUS:
        header += [f"{name} kernel", f"{backend.replace('Gl', 'GL')} end to end"]
    header.append("float64 reference")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for shape in shapes:
        for pass_ in ("fwd", "fwd+bwd"):
            fast = find(shape, pass_, "call", "[cpu/cpu fast")
            if fast is None:
                continue
            cells = [
                f"{shape.replace('x', ' × ')} {pass_}",
                f"{time(fast['median_s'])} ({fast['gb_per_s']:.1f} GB/s)",
            ]
            for prefix in ("torch", "candle"):
                r = find(shape, pass_, "call", prefix)
                cells.append(time(r["median_s"]) if r else "")
            for backend, _ in GPUS:
                for measure in ("kernel", "end-to-end"):
                    r = find(shape, pass_, measure, gpu(backend))
                    cells.append(time(r["median_s"]) if r else "")
            r = find(shape, pass_, "call", "[cpu/cpu reference")
            cells.append(time(r["median_s"]) if r else "")
            print("| " + " | ".join(cells) + " |")

    print()
    header = [
        "shape",
        "CPU probe",
        "fast CPU fwd / probe",
        "fast CPU fwd+bwd / probe",
        "fast CPU fwd+bwd ÷ fwd (time)",
        "Vulkan probe",
        "Vulkan kernel / probe",
        "Vulkan upload",
        "GL probe",
        "GL kernel / probe",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for shape in shapes:
        cpu_probe = find(shape, "read", "probe", "[cpu/")
        fast = find(shape, "fwd", "call", "[cpu/cpu fast")
        both = find(shape, "fwd+bwd", "call", "[cpu/cpu fast")
        cells = [
            shape.replace("x", " × "),
            f"{cpu_probe['gb_per_s']:.1f} GB/s" if cpu_probe else "",
            f"{fast['of_probe']:.2f}" if fast else "",
            f"{both['of_probe']:.2f}" if both else "",
            f"{both['median_s'] / fast['median_s']:.2f}" if fast and both else "",
        ]
        for backend, _ in GPUS:
            probe = find(shape, "read", "probe", gpu(backend))
            kernel = find(shape, "fwd", "kernel", gpu(backend))
            cells.append(f"{probe['gb_per_s']:.2f} GB/s" if probe else "")
            cells.append(f"{kernel['of_probe']:.2f}" if kernel else "")
            if backend == "Vulkan":
                upload = find(shape, "read", "upload", gpu(backend))
                cells.append(f"{upload['gb_per_s']:.1f} GB/s" if upload else "")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/bench/bench.json")
