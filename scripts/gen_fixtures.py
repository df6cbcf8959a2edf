#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for xent's softmax cross-entropy tests.

What it makes
-------------
For every case below, a directory ``tests/fixtures/cross_entropy/<case>/`` holding:

* ``input.npy``      -- logits, float32 (``<f4``), shape ``[B, C]``, C order.
* ``target.npy``     -- class indices, int64 (``<i8``), shape ``[B]``; may contain
                        the ignore index ``-100``.
* ``target_i32.npy`` -- the same targets as int32 (``<i4``).
* ``expected.json``  -- reference values::

      {"batch": B, "classes": C, "ignore_index": -100,
       "valid_rows": <rows whose target != -100>,
       "mean": <float>, "sum": <float>,
       "none": [<per-row loss>...], "lse": [<per-row logsumexp>...]}

  Every number is computed by ``torch.nn.functional.cross_entropy`` (reductions
  ``'mean'``, ``'sum'``, ``'none'``, ``ignore_index=-100``) and ``torch.logsumexp``
  in float64, on the float32 logits upcast to float64.  In ``none`` ignored rows
  have loss 0 (as PyTorch gives); ``lse`` is given for every row, ignored or not.
  When every row is ignored PyTorch's mean is NaN; xent defines a mean over zero
  valid rows as 0, so the file then holds ``"mean": 0.0`` plus
  ``"torch_mean_is_nan": true``.  The JSON never contains NaN/Infinity tokens: a
  non-finite value would be written as the string ``"inf"``, ``"-inf"`` or ``"nan"``.

Cases: ``1x1``, ``3x7``, ``257x129`` (~10% ignored targets), ``extreme_16x33``
(|logit| up to 3e4, so a naive exp overflows), ``masked_9x40`` (about half of each
row is -inf, never the target's logit), ``all_ignored_4x5``, ``6x50257`` (GPT-2
vocabulary) and ``tiny_scale_5x11`` (|logit| ~ 1e-6).

How to rerun
------------
From the repository root::

    pip install -r scripts/requirements-fixtures.txt
    python3 scripts/gen_fixtures.py

Output is deterministic: each case draws from its own ``numpy.random.Generator``
seeded from a fixed base seed and the case name, so rerunning rewrites identical
files and adding a case does not change the others.
"""

from __future__ import annotations

import json
import math
import shutil
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

BASE_SEED = 20240611
IGNORE_INDEX = -100
ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "fixtures" / "cross_entropy"


def rng_for(case: str) -> np.random.Generator:
    return np.random.default_rng([BASE_SEED, zlib.crc32(case.encode("utf-8"))])


def normal_logits(rng: np.random.Generator, b: int, c: int, scale: float) -> np.ndarray:
    x = (rng.standard_normal((b, c)) * scale).astype(np.float32)
    # Never exact zeros (a zero would make some kernels' bugs invisible).
    zeros = x == 0
    x[zeros] = np.float32(scale * 1e-3)
    return x


def random_targets(rng: np.random.Generator, b: int, c: int) -> np.ndarray:
    return rng.integers(0, c, size=b, dtype=np.int64)


# --- cases -------------------------------------------------------------------


def case_1x1(rng):
    return normal_logits(rng, 1, 1, 0.7), np.zeros(1, dtype=np.int64)


def case_3x7(rng):
    return normal_logits(rng, 3, 7, 2.0), random_targets(rng, 3, 7)


def case_257x129(rng):
    b, c = 257, 129
    x = normal_logits(rng, b, c, 3.0)
    t = random_targets(rng, b, c)
    ignored = rng.random(b) < 0.10
    ignored[0] = False  # keep at least one valid row at a known place
    ignored[1] = True  # and at least one ignored row
    t[ignored] = IGNORE_INDEX
    return x, t


def case_extreme_16x33(rng):
    b, c = 16, 33
    x = np.clip(rng.standard_normal((b, c)) * 1.2e4, -3e4, 3e4)
    # Make sure every row really reaches |logit| = 3e4, alternating sign.
    cols = rng.integers(0, c, size=b)
    x[np.arange(b), cols] = np.where(np.arange(b) % 2 == 0, 3e4, -3e4)
    x = x.astype(np.float32)
    x[x == 0] = np.float32(1.0)
    return x, random_targets(rng, b, c)


def case_masked_9x40(rng):
    b, c = 9, 40
    x = normal_logits(rng, b, c, 2.5)
    t = random_targets(rng, b, c)
    for r in range(b):
        others = np.array([j for j in range(c) if j != t[r]])
        masked = rng.choice(others, size=c // 2, replace=False)
        x[r, masked] = -np.inf
    return x, t


def case_all_ignored_4x5(rng):
    return normal_logits(rng, 4, 5, 1.5), np.full(4, IGNORE_INDEX, dtype=np.int64)


def case_6x50257(rng):
    b, c = 6, 50257
    return normal_logits(rng, b, c, 4.0), random_targets(rng, b, c)


def case_tiny_scale_5x11(rng):
    return normal_logits(rng, 5, 11, 1e-6), random_targets(rng, 5, 11)


CASES = {
    "1x1": case_1x1,
    "3x7": case_3x7,
    "257x129": case_257x129,
    "extreme_16x33": case_extreme_16x33,
    "masked_9x40": case_masked_9x40,
    "all_ignored_4x5": case_all_ignored_4x5,
    "6x50257": case_6x50257,
    "tiny_scale_5x11": case_tiny_scale_5x11,
}


# --- reference values ----------------------------------------------------------


def jnum(v: float):
    """A JSON-safe float: non-finite values become strings."""
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def expected_for(x32: np.ndarray, t: np.ndarray) -> dict:
    x = torch.from_numpy(x32.astype(np.float64))
    tt = torch.from_numpy(t.astype(np.int64))
    kw = dict(ignore_index=IGNORE_INDEX)
    mean = F.cross_entropy(x, tt, reduction="mean", **kw).item()
    total = F.cross_entropy(x, tt, reduction="sum", **kw).item()
    none = F.cross_entropy(x, tt, reduction="none", **kw)
    lse = torch.logsumexp(x, dim=1)
    valid = int((t != IGNORE_INDEX).sum())
    out = {
        "batch": int(x32.shape[0]),
        "classes": int(x32.shape[1]),
        "ignore_index": IGNORE_INDEX,
        "valid_rows": valid,
        "mean": jnum(mean),
        "sum": jnum(total),
        "none": [jnum(v) for v in none.tolist()],
        "lse": [jnum(v) for v in lse.tolist()],
    }
    if math.isnan(mean) and valid == 0:
        out["mean"] = 0.0
        out["torch_mean_is_nan"] = True
    return out


def write_case(name: str, x: np.ndarray, t: np.ndarray) -> None:
    b, c = x.shape
    assert x.dtype == np.float32 and t.dtype == np.int64 and t.shape == (b,)
    assert np.all((t == IGNORE_INDEX) | ((t >= 0) & (t < c)))
    d = OUT_DIR / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    np.save(d / "input.npy", np.ascontiguousarray(x, dtype="<f4"))
    np.save(d / "target.npy", np.ascontiguousarray(t, dtype="<i8"))
    np.save(d / "target_i32.npy", np.ascontiguousarray(t, dtype="<i4"))
    exp = expected_for(x, t)
    with open(d / "expected.json", "w", encoding="utf-8") as f:
        json.dump(exp, f, allow_nan=False)
        f.write("\n")


def main() -> None:
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    for name, make in CASES.items():
        x, t = make(rng_for(name))
        write_case(name, x, t)
        print(f"wrote {OUT_DIR.relative_to(ROOT) / name}  shape={x.shape}  "
              f"ignored={(t == IGNORE_INDEX).sum()}")


if __name__ == "__main__":
    main()
