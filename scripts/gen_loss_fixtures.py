#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for xent's cross-entropy-family losses.

What it makes
-------------
It deletes and rewrites ``tests/fixtures/losses/``: one folder per case plus a
``README.md`` describing the format.  Each case folder holds

* ``input.npy``      -- shape ``[B, C]``, C order, little-endian; float32 (``<f4``),
                        or float16 / float64 for the ``*_f16_*`` / ``*_f64_*`` cases.
                        Logits, probabilities or log-probabilities (see ``input_kind``).
* ``input.safetensors`` -- instead of ``input.npy`` in the ``*_bf16_*`` cases (``.npy``
                        has no bfloat16): one BF16 tensor named ``input``, ``[B, C]``.
* ``target.npy``     -- absent for ``entropy``.  Either int64 ``[B]`` class indices
                        (may contain ``ignore_index``) or float32 ``[B, C]``: soft-target
                        distributions (cross-entropy), probabilities or, with
                        ``log_target``, log-probabilities (kl-div), 0/1 or soft labels (BCE).
* ``weight.npy``     -- optional, float32 ``[C]``, per-class weight in [0.2, 2.0].
* ``pos_weight.npy`` -- optional, float32 ``[C]``, BCE positive weight in [0.3, 3.0].
* ``grad_<r>.npy``   -- for r in mean, sum, none, batchmean: float64 ``[B, C]``,
                        d(loss_r)/d(input) by torch autograd (for ``none``: of the sum
                        of the unreduced values).
* ``case.json``      -- options and expected values::

      {"loss": "cross-entropy" | "binary-cross-entropy" | "kl-div" | "entropy",
       "input_kind": "logits" | "probs" | "log-probs",
       "ignore_index": int, "label_smoothing": float, "z_loss": float,
       "softcap": float | null, "log_target": bool, "base": "e" | "2" | "10",
       "batch": B, "classes": C, "valid_rows": int,
       "expected": {"mean": x, "sum": x, "batchmean": x,
                    "none": [row-major values], "none_shape": [...]},
       "grad_files": ["grad_mean.npy", "grad_sum.npy", "grad_none.npy",
                      "grad_batchmean.npy"],
       "grad_dtype": "float64"}
      (+ "torch_mean_is_nan": true when every row is ignored and xent's mean is 0;
       + "torch_grad_mean_is_nan": true if torch's mean gradient were NaN there, which
       it is not: it is 0, as xent's)

Every expected number is computed in float64 by PyTorch on the stored input
upcast to float64 (bfloat16/float16/float32 inputs: exactly the stored values).  The
formulas are written out in ``tests/fixtures/losses/README.md`` (see ``README``
below).  For logits inputs the cross-entropy values are checked against
``F.cross_entropy`` itself (agreement < 1e-10).  At the end every file is read
back, dtypes/shapes are checked and every expected value is recomputed
independently with plain numpy float64 formulas (no torch), asserting a
relative difference < 1e-9 or an absolute one < 1e-12.

Gradients: torch autograd in float64 through the same forward (``torch_forward``),
every element finite; each is compared with a float64 central difference of that
forward on up to 12 random elements per case and reduction (relative error <= 1e-5 or
absolute <= 1e-7; see ``fd_step`` and ``fd_eligible``), and on read-back every gradient
file is re-derived by hand in numpy (``numpy_grads``, within 1e-9 relative or 1e-12 of the
file's largest magnitude).

How to rerun
------------
From the repository root::

    pip install -r scripts/requirements-fixtures.txt   # numpy, torch, safetensors
    python3 scripts/gen_loss_fixtures.py

Output is deterministic: each case draws from its own ``numpy.random.Generator``
seeded from a fixed base seed and ``zlib.crc32`` of the case name, so rerunning
rewrites identical files and adding a case does not change the others.
(``scripts/gen_fixtures.py`` writes the separate ``tests/fixtures/cross_entropy/``.)
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

BASE_SEED = 20240917
DEFAULT_IGNORE = -100
ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "fixtures" / "losses"
MAX_TOTAL_BYTES = 4_000_000  # all gradients fit as float64 (3.1 MB in all)

CE, BCE, KL, ENT = "cross-entropy", "binary-cross-entropy", "kl-div", "entropy"
LOGITS, PROBS, LOGPROBS = "logits", "probs", "log-probs"
LN_BASE = {"e": 1.0, "2": math.log(2.0), "10": math.log(10.0)}


# --- case description ------------------------------------------------------------


@dataclass
class Case:
    loss: str
    input_kind: str
    x: np.ndarray
    target: Optional[np.ndarray] = None
    weight: Optional[np.ndarray] = None
    pos_weight: Optional[np.ndarray] = None
    ignore_index: int = DEFAULT_IGNORE
    label_smoothing: float = 0.0
    z_loss: float = 0.0
    softcap: Optional[float] = None
    log_target: bool = False
    base: str = "e"
    # x holds bfloat16 values (as float32), stored as input.safetensors.
    bf16: bool = False
    name: str = field(default="")


CASES: dict[str, Callable[[np.random.Generator], Case]] = {}


def case(name: str):
    def register(fn):
        assert name not in CASES, name
        CASES[name] = fn
        return fn

    return register


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng([BASE_SEED, zlib.crc32(name.encode("utf-8"))])


# --- random data -------------------------------------------------------------------


def no_zeros(x: np.ndarray, fill: float) -> np.ndarray:
    x = x.copy()
    x[x == 0] = fill
    return x


def logits(rng, b, c, scale=2.0, dtype=np.float32) -> np.ndarray:
    x = (rng.standard_normal((b, c)) * scale).astype(dtype)
    return no_zeros(x, dtype(scale * 1e-3))


def softmax64(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax64(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def probs(rng, b, c, scale=2.0) -> np.ndarray:
    """Softmax of N(0, scale^2) logits, float64 then stored as float32 (not renormalized)."""
    p = softmax64(rng.standard_normal((b, c)) * scale).astype(np.float32)
    assert np.all(p > 0)
    return p


def log_probs(rng, b, c, scale=2.0) -> np.ndarray:
    lp = log_softmax64(rng.standard_normal((b, c)) * scale).astype(np.float32)
    assert np.all(lp < 0) and np.all(np.isfinite(lp))
    return lp


def sigmoid_probs(rng, b, c, scale=2.0) -> np.ndarray:
    """Independent per-element probabilities for BCE: sigmoid of N(0, scale^2)."""
    p = (1.0 / (1.0 + np.exp(-rng.standard_normal((b, c)) * scale))).astype(np.float32)
    assert np.all((p > 0) & (p < 1))
    return p


def class_targets(rng, b, c, ignore_frac=0.0, ignore_index=DEFAULT_IGNORE) -> np.ndarray:
    t = rng.integers(0, c, size=b, dtype=np.int64)
    if ignore_frac > 0:
        ignored = rng.random(b) < ignore_frac
        ignored[0] = False  # at least one valid row at a known place
        ignored[1] = True  # and at least one ignored row
        t[ignored] = ignore_index
    return t


def weight(rng, c) -> np.ndarray:
    return rng.uniform(0.2, 2.0, size=c).astype(np.float32)


def pos_weight(rng, c) -> np.ndarray:
    return rng.uniform(0.3, 3.0, size=c).astype(np.float32)


def hard_labels(rng, b, c) -> np.ndarray:
    return rng.integers(0, 2, size=(b, c)).astype(np.float32)


def soft_labels(rng, b, c) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=(b, c)).astype(np.float32)


# --- cases: cross-entropy with class targets, logits ----------------------------------


@case("ce_plain_7x13")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 7, 13), class_targets(rng, 7, 13))


@case("ce_ignore_19x37")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 19, 37), class_targets(rng, 19, 37, 0.15))


@case("ce_weight_11x23")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 11, 23), class_targets(rng, 11, 23), weight=weight(rng, 23))


@case("ce_weight_ignore_17x29")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 17, 29), class_targets(rng, 17, 29, 0.15),
                weight=weight(rng, 29))


@case("ce_smooth_13x31")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 13, 31), class_targets(rng, 13, 31), label_smoothing=0.1)


@case("ce_smooth_weight_ignore_21x47")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 21, 47), class_targets(rng, 21, 47, 0.15),
                weight=weight(rng, 47), label_smoothing=0.1)


@case("ce_smooth_weight_ignore3_15x19")
def _(rng):
    b, c = 15, 19
    t = class_targets(rng, b, c, 0.2, ignore_index=3)
    t[2] = 3  # surely some ignored rows (target 3) ...
    t[0] = 5  # ... and a valid first row
    return Case(CE, LOGITS, logits(rng, b, c), t, weight=weight(rng, c),
                label_smoothing=0.1, ignore_index=3)


@case("ce_zloss_ignore_23x41")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 23, 41), class_targets(rng, 23, 41, 0.15), z_loss=1e-3)


@case("ce_softcap_9x53")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 9, 53, scale=20.0), class_targets(rng, 9, 53),
                softcap=30.0)


@case("ce_softcap_zloss_smooth_12x61")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 12, 61, scale=20.0), class_targets(rng, 12, 61),
                softcap=30.0, z_loss=1e-3, label_smoothing=0.1)


@case("ce_base2_8x17")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 8, 17), class_targets(rng, 8, 17), base="2")


@case("ce_base10_6x29")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 6, 29), class_targets(rng, 6, 29), base="10")


@case("ce_all_ignored_4x5")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 4, 5, 1.5), np.full(4, DEFAULT_IGNORE, dtype=np.int64))


@case("ce_masked_10x40")
def _(rng):
    b, c = 10, 40
    x = logits(rng, b, c, 2.5)
    t = class_targets(rng, b, c)
    for r in range(b):
        others = np.array([j for j in range(c) if j != t[r]])
        x[r, rng.choice(others, size=c // 2, replace=False)] = -np.inf
    return Case(CE, LOGITS, x, t)


@case("ce_extreme_16x33")
def _(rng):
    b, c = 16, 33
    x = logits(rng, b, c, scale=1e4)
    cols = rng.integers(0, c, size=b)
    x[np.arange(b), cols] = np.where(np.arange(b) % 2 == 0, 3e4, -3e4).astype(np.float32)
    return Case(CE, LOGITS, x, class_targets(rng, b, c))


# --- cross-entropy with class targets, log-probs / probs input ------------------------


@case("ce_logprobs_14x27")
def _(rng):
    return Case(CE, LOGPROBS, log_probs(rng, 14, 27), class_targets(rng, 14, 27))


@case("ce_logprobs_smooth_weight_ignore_18x35")
def _(rng):
    return Case(CE, LOGPROBS, log_probs(rng, 18, 35), class_targets(rng, 18, 35, 0.15),
                weight=weight(rng, 35), label_smoothing=0.1)


@case("ce_probs_12x19")
def _(rng):
    return Case(CE, PROBS, probs(rng, 12, 19), class_targets(rng, 12, 19))


@case("seed_ce")
def _(rng):
    return Case(CE, PROBS, np.array([[0.2, 0.7, 0.1]], dtype=np.float32),
                np.array([1], dtype=np.int64))


# --- cross-entropy with soft targets ---------------------------------------------------


@case("ce_soft_10x21")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 10, 21), probs(rng, 10, 21, 1.5))


@case("ce_soft_weight_smooth_13x27")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 13, 27), probs(rng, 13, 27, 1.5), weight=weight(rng, 27),
                label_smoothing=0.2)


@case("ce_soft_zloss_9x33")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 9, 33), probs(rng, 9, 33, 1.5), z_loss=1e-3)


@case("ce_soft_probs_11x17")
def _(rng):
    return Case(CE, PROBS, probs(rng, 11, 17), probs(rng, 11, 17, 1.5))


@case("seed_ce_soft")
def _(rng):
    return Case(CE, PROBS, np.array([[0.2, 0.7, 0.1]], dtype=np.float32),
                np.array([[0.0, 1.0, 0.0]], dtype=np.float32))


@case("ce_soft_logprobs_7x45")
def _(rng):
    return Case(CE, LOGPROBS, log_probs(rng, 7, 45), probs(rng, 7, 45, 1.5))


@case("ce_soft_base2_5x257")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 5, 257), probs(rng, 5, 257, 1.5), base="2")


# --- kl-div --------------------------------------------------------------------------------


@case("kl_logits_9x31")
def _(rng):
    return Case(KL, LOGITS, logits(rng, 9, 31), probs(rng, 9, 31, 1.5))


@case("kl_logprobs_13x23")
def _(rng):
    return Case(KL, LOGPROBS, log_probs(rng, 13, 23), probs(rng, 13, 23, 1.5))


@case("kl_probs_7x41")
def _(rng):
    return Case(KL, PROBS, probs(rng, 7, 41), probs(rng, 7, 41, 1.5))


@case("kl_log_target_11x19")
def _(rng):
    return Case(KL, LOGITS, logits(rng, 11, 19), log_probs(rng, 11, 19, 1.5), log_target=True)


@case("kl_base2_6x57")
def _(rng):
    return Case(KL, LOGITS, logits(rng, 6, 57), probs(rng, 6, 57, 1.5), base="2")


@case("seed_kl")
def _(rng):
    return Case(KL, PROBS, np.array([[0.7, 0.2, 0.1]], dtype=np.float32),
                np.array([[1.0, 0.0, 0.0]], dtype=np.float32))


@case("kl_zero_targets_10x29")
def _(rng):
    b, c = 10, 29
    p = softmax64(rng.standard_normal((b, c)) * 1.5)
    zero = rng.random((b, c)) < 0.3
    zero[np.arange(b), rng.integers(0, c, size=b)] = False  # every row keeps some mass
    p[zero] = 0.0
    p[0] = 0.0
    p[0, 4] = 1.0  # a one-hot row
    p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    assert (p == 0).sum() > 0
    return Case(KL, LOGITS, logits(rng, b, c), p)


# --- entropy ---------------------------------------------------------------------------


@case("entropy_logits_15x33")
def _(rng):
    return Case(ENT, LOGITS, logits(rng, 15, 33))


@case("entropy_probs_9x21")
def _(rng):
    return Case(ENT, PROBS, probs(rng, 9, 21))


@case("entropy_logprobs_12x43")
def _(rng):
    return Case(ENT, LOGPROBS, log_probs(rng, 12, 43))


@case("entropy_base2_33x101")
def _(rng):
    return Case(ENT, LOGITS, logits(rng, 33, 101), base="2")


@case("entropy_onehot_8x11")
def _(rng):
    b, c = 8, 11
    p = probs(rng, b, c)
    for r in (0, 3, 6):
        # Near-one-hot rows: 1.0 and 1e-30 elsewhere, not exact zeros, whose entropy
        # gradient -(ln q + 1)/L would be infinite (torch's autograd gives NaN there).
        p[r] = np.float32(1e-30)
        p[r, rng.integers(0, c)] = 1.0
    return Case(ENT, PROBS, p)


# --- binary cross-entropy --------------------------------------------------------------


@case("bce_logits_hard_11x17")
def _(rng):
    return Case(BCE, LOGITS, logits(rng, 11, 17), hard_labels(rng, 11, 17))


@case("bce_logits_soft_9x23")
def _(rng):
    return Case(BCE, LOGITS, logits(rng, 9, 23), soft_labels(rng, 9, 23))


@case("bce_logits_weight_13x19")
def _(rng):
    return Case(BCE, LOGITS, logits(rng, 13, 19), hard_labels(rng, 13, 19),
                weight=weight(rng, 19))


@case("bce_logits_pos_weight_7x29")
def _(rng):
    return Case(BCE, LOGITS, logits(rng, 7, 29), hard_labels(rng, 7, 29),
                pos_weight=pos_weight(rng, 29))


@case("bce_logits_weight_pos_weight_10x31")
def _(rng):
    return Case(BCE, LOGITS, logits(rng, 10, 31), soft_labels(rng, 10, 31),
                weight=weight(rng, 31), pos_weight=pos_weight(rng, 31))


@case("bce_logits_extreme_8x12")
def _(rng):
    b, c = 8, 12
    x = rng.choice(np.array([-100.0, -30.0, 30.0, 100.0]), size=(b, c)).astype(np.float32)
    y = hard_labels(rng, b, c)
    # Every (value, label) combination surely present in row 0.
    x[0, :8] = [-100, -100, -30, -30, 30, 30, 100, 100]
    y[0, :8] = [0, 1, 0, 1, 0, 1, 0, 1]
    return Case(BCE, LOGITS, x, y)


@case("bce_probs_hard_12x15")
def _(rng):
    return Case(BCE, PROBS, sigmoid_probs(rng, 12, 15), hard_labels(rng, 12, 15))


@case("bce_probs_weight_9x27")
def _(rng):
    return Case(BCE, PROBS, sigmoid_probs(rng, 9, 27), hard_labels(rng, 9, 27),
                weight=weight(rng, 27))


@case("seed_bce")
def _(rng):
    return Case(BCE, PROBS, np.array([[0.8, 0.9, 0.1]], dtype=np.float32),
                np.array([[1.0, 1.0, 0.0]], dtype=np.float32))


# --- dtypes and larger cases ------------------------------------------------------------


@case("ce_f16_9x131")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 9, 131, dtype=np.float16), class_targets(rng, 9, 131))


@case("ce_f64_9x131")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 9, 131, dtype=np.float64), class_targets(rng, 9, 131))


@case("bce_logits_f16_7x37")
def _(rng):
    return Case(BCE, LOGITS, logits(rng, 7, 37, dtype=np.float16), hard_labels(rng, 7, 37))


@case("ce_large_smooth_weight_ignore_40x300")
def _(rng):
    return Case(CE, LOGITS, logits(rng, 40, 300), class_targets(rng, 40, 300, 0.15),
                weight=weight(rng, 300), label_smoothing=0.1)


@case("bce_large_pos_weight_40x300")
def _(rng):
    return Case(BCE, LOGITS, logits(rng, 40, 300), hard_labels(rng, 40, 300),
                pos_weight=pos_weight(rng, 300))


# --- 16-bit inputs: bfloat16 (input.safetensors) and float16 -----------------------------------


def round16(x: np.ndarray, dt: str) -> np.ndarray:
    """x rounded to nearest (ties to even): a float16 array for "f16"; for "bf16" a float32
    array of bfloat16 values (numpy has no bfloat16; torch rounds)."""
    if dt == "f16":
        return x.astype(np.float16)
    assert dt == "bf16", dt
    x32 = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return x32.to(torch.bfloat16).to(torch.float32).numpy()


def sixteen_bit_cases(dt: str) -> None:
    """The same cases in bfloat16 and in float16 (``dt``): odd class counts (37, 61, 1001),
    so that rows straddle the 32-bit words the kernels read two values from; every loss, on
    logits and on log-probabilities or probabilities; 1x1; and each dtype's extreme
    magnitudes."""

    def make(loss, kind, x, target=None, **kw) -> Case:
        x16 = round16(x, dt)
        assert np.all(x16 != 0), "no zeros"
        return Case(loss, kind, x16, target, bf16=dt == "bf16", **kw)

    @case(f"ce_{dt}_smooth_weight_ignore_13x37")
    def _(rng):
        return make(CE, LOGITS, logits(rng, 13, 37), class_targets(rng, 13, 37, 0.15),
                    weight=weight(rng, 37), label_smoothing=0.1)

    @case(f"ce_{dt}_ignore_5x1001")
    def _(rng):
        return make(CE, LOGITS, logits(rng, 5, 1001), class_targets(rng, 5, 1001, 0.2))

    @case(f"ce_{dt}_softcap_zloss_7x61")
    def _(rng):
        return make(CE, LOGITS, logits(rng, 7, 61, scale=20.0), class_targets(rng, 7, 61),
                    softcap=30.0, z_loss=1e-3)

    @case(f"ce_{dt}_logprobs_11x37")
    def _(rng):
        return make(CE, LOGPROBS, log_probs(rng, 11, 37), class_targets(rng, 11, 37))

    @case(f"ce_{dt}_1x1")
    def _(rng):
        return make(CE, LOGITS, logits(rng, 1, 1), np.array([0], dtype=np.int64))

    @case(f"ce_{dt}_extreme_8x37")
    def _(rng):
        b, c = 8, 37
        big = float(round16(np.array([3e38 if dt == "bf16" else 65504.0]), dt)[0])
        x = logits(rng, b, c)
        t = class_targets(rng, b, c)

        def others(r, k):
            return rng.choice([j for j in range(c) if j != t[r]], size=k, replace=False)

        x[0, t[0]] = big  # the largest logit is the target's: loss 0
        x[1, t[1]] = big
        x[1, others(1, 5)] = -big  # and -big beside it: x - max is -2 big
        x[2, others(2, 1)] = big  # the one row with a loss of about big
        o = others(3, 20)
        x[3, o[:10]] = -big  # -big and -inf as masks
        x[3, o[10:]] = -np.inf
        x[4] = -big  # every logit -big but a few -inf: loss ln(count of -big)
        x[4, others(4, 6)] = -np.inf
        x[5, others(5, c // 2)] = -np.inf
        return make(CE, LOGITS, x, t)

    @case(f"ce_soft_{dt}_weight_9x37")
    def _(rng):
        return make(CE, LOGITS, logits(rng, 9, 37), probs(rng, 9, 37, 1.5),
                    weight=weight(rng, 37))

    @case(f"bce_logits_{dt}_weight_pos_weight_9x37")
    def _(rng):
        return make(BCE, LOGITS, logits(rng, 9, 37), soft_labels(rng, 9, 37),
                    weight=weight(rng, 37), pos_weight=pos_weight(rng, 37))

    @case(f"bce_probs_{dt}_8x23")
    def _(rng):
        c = make(BCE, PROBS, sigmoid_probs(rng, 8, 23, scale=1.0), hard_labels(rng, 8, 23))
        assert np.all((c.x > 0) & (c.x < 1))  # sigmoid(N(0, 1)) stays inside once rounded
        return c

    @case(f"bce_logits_{dt}_1x1")
    def _(rng):
        return make(BCE, LOGITS, logits(rng, 1, 1), np.array([[1.0]], dtype=np.float32))

    @case(f"kl_logits_{dt}_11x37")
    def _(rng):
        return make(KL, LOGITS, logits(rng, 11, 37), probs(rng, 11, 37, 1.5))

    @case(f"kl_logprobs_{dt}_3x1001")
    def _(rng):
        return make(KL, LOGPROBS, log_probs(rng, 3, 1001), probs(rng, 3, 1001, 1.5))

    @case(f"entropy_{dt}_9x37")
    def _(rng):
        return make(ENT, LOGITS, logits(rng, 9, 37))

    @case(f"entropy_logprobs_{dt}_6x37")
    def _(rng):
        return make(ENT, LOGPROBS, log_probs(rng, 6, 37))


sixteen_bit_cases("bf16")
sixteen_bit_cases("f16")


# --- reference values (torch, float64) ------------------------------------------------------


def jnum(v) -> float | str:
    """A JSON-safe float (shortest round-trip repr); non-finite values become strings."""
    v = float(v) + 0.0  # + 0.0 turns -0.0 into 0.0
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def t64(a: Optional[np.ndarray]) -> Optional[torch.Tensor]:
    return None if a is None else torch.from_numpy(np.asarray(a, dtype=np.float64))


def assert_agree(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    diff = (ours - theirs).abs().max().item()
    assert diff < 1e-10, f"{what}: differs from PyTorch by {diff}"


REDUCTIONS = ("mean", "sum", "none", "batchmean")
GRAD_FILES = [f"grad_{r}.npy" for r in REDUCTIONS]
FD_ELEMENTS = 12
FD_REL, FD_ABS = 1e-5, 1e-7


def linear_parts(none: torch.Tensor, mean_div: float, bm_div: float) -> dict:
    """Each reduction as sum_k coef_k * tensor_k.sum() (see ``torch_forward``)."""
    return dict(sum=[(none, 1.0)], none=[(none, 1.0)], mean=[(none, 1 / mean_div)],
                batchmean=[(none, 1 / bm_div)])


def torch_forward(c: Case, x: torch.Tensor, check: bool = True) -> dict:
    """The loss of case ``c`` on the float64 input tensor ``x`` (possibly a leaf with
    requires_grad), every reduction composed in torch.  Returns a dict with 0-d tensors
    "mean", "sum", "batchmean" (torch's own mean: NaN when every row is ignored), the
    unreduced tensor "none", "valid_rows" (int), "torch_mean_is_nan" (bool) and "parts":
    every reduction r (and the sum of "none") as the linear map sum_k coef_k *
    tensor_k.sum() of unreduced per-row / per-element terms, with constant coefficients
    (the finite-difference check differences those terms, so that the rounding of the
    full sum does not swamp the difference; [] for a mean with no valid row).
    ``check`` cross-checks against PyTorch's fused losses (off for finite differences)."""
    b, n = c.x.shape
    L = LN_BASE[c.base]
    w = t64(c.weight)

    if c.loss == BCE:
        y = t64(c.target)
        if c.input_kind == LOGITS:
            pw = t64(c.pos_weight)
            f = lambda r: F.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction=r)
        else:
            assert c.input_kind == PROBS and c.pos_weight is None
            f = lambda r: F.binary_cross_entropy(x, y, weight=w, reduction=r)
        none, total, mean = f("none"), f("sum"), f("mean")
        if check:
            assert_agree(mean, total / (b * n), "bce mean")
        return dict(mean=mean, sum=total, batchmean=total / b, none=none, valid_rows=b,
                    torch_mean_is_nan=False, parts=linear_parts(none, b * n, b))

    xp = x
    if c.input_kind == LOGITS:
        if c.softcap is not None:
            xp = c.softcap * torch.tanh(x / c.softcap)
        logq = F.log_softmax(xp, dim=1)
    elif c.input_kind == LOGPROBS:
        logq = x
    else:
        logq = torch.log(x)
    if c.z_loss:
        assert c.input_kind == LOGITS

    if c.loss == CE and c.target.dtype == np.int64:
        eps = c.label_smoothing
        y = torch.from_numpy(c.target)
        valid = y != c.ignore_index
        nvalid = int(valid.sum())
        wv = w if w is not None else torch.ones(n, dtype=torch.float64)
        nll = F.nll_loss(logq, y, weight=w, ignore_index=c.ignore_index, reduction="none")
        ce = (1 - eps) * nll
        if eps > 0:
            smooth = -(logq * wv).sum(dim=1)
            ce = ce + (eps / n) * torch.where(valid, smooth, torch.zeros_like(smooth))
        if c.z_loss:
            zl = c.z_loss * torch.logsumexp(xp, dim=1) ** 2
            zl = torch.where(valid, zl, torch.zeros_like(zl))
        else:
            zl = torch.zeros(b, dtype=torch.float64)
        wsum = wv[torch.where(valid, y, torch.zeros_like(y))][valid].sum()
        if check and c.input_kind == LOGITS:
            kw = dict(weight=w, ignore_index=c.ignore_index, label_smoothing=eps)
            assert_agree(ce, F.cross_entropy(xp, y, reduction="none", **kw), "ce none")
            assert_agree(ce.sum(), F.cross_entropy(xp, y, reduction="sum", **kw), "ce sum")
            tmean = F.cross_entropy(xp, y, reduction="mean", **kw)
            if nvalid == 0:
                assert torch.isnan(tmean), tmean
            else:
                assert_agree(ce.sum() / wsum, tmean, "ce mean")
        none = ce / L + zl
        total = ce.sum() / L + zl.sum()
        # nvalid == 0: wsum == 0 and ce == 0, so 0/0 = NaN, as PyTorch's mean (xent's is 0).
        mean = ce.sum() / (L * wsum) + zl.sum() / max(nvalid, 1)
        parts = dict(sum=[(ce, 1 / L), (zl, 1.0)], batchmean=[(ce, 1 / (L * b)), (zl, 1 / b)],
                     none=[(none, 1.0)],
                     mean=[(ce, 1 / (L * wsum.item())), (zl, 1 / nvalid)] if nvalid else [])
        return dict(mean=mean, sum=total, batchmean=total / b, none=none, valid_rows=nvalid,
                    torch_mean_is_nan=nvalid == 0, parts=parts)

    if c.loss == CE:  # soft targets
        eps = c.label_smoothing
        p = t64(c.target)
        wv = w if w is not None else torch.ones(n, dtype=torch.float64)
        pp = (1 - eps) * p + eps / n
        ce = -(wv * pp * logq).sum(dim=1)
        if check and c.input_kind == LOGITS:
            kw = dict(weight=w, label_smoothing=eps)
            assert_agree(ce, F.cross_entropy(xp, p, reduction="none", **kw), "soft ce none")
            assert_agree(ce.sum(), F.cross_entropy(xp, p, reduction="sum", **kw), "soft ce sum")
            assert_agree(ce.sum() / b, F.cross_entropy(xp, p, reduction="mean", **kw), "soft ce mean")
        zl = c.z_loss * torch.logsumexp(xp, dim=1) ** 2 if c.z_loss else torch.zeros(b, dtype=torch.float64)
        none = ce / L + zl
        total = ce.sum() / L + zl.sum()
        return dict(mean=total / b, sum=total, batchmean=total / b, none=none, valid_rows=b,
                    torch_mean_is_nan=False, parts=linear_parts(none, b, b))

    if c.loss == KL:
        t = t64(c.target)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reduction='mean' warning
            f = lambda r: F.kl_div(logq, t, reduction=r, log_target=c.log_target) / L
            none, total, mean, bm = f("none"), f("sum"), f("mean"), f("batchmean")
        if check:
            assert_agree(mean, total / (b * n), "kl mean")
            assert_agree(bm, total / b, "kl batchmean")
        return dict(mean=mean, sum=total, batchmean=bm, none=none, valid_rows=b,
                    torch_mean_is_nan=False, parts=linear_parts(none, b * n, b))

    assert c.loss == ENT and c.target is None
    q = torch.exp(logq)
    terms = torch.where(q > 0, q * logq, torch.zeros_like(q))
    h = -terms.sum(dim=1) / L
    total = h.sum()
    return dict(mean=total / b, sum=total, batchmean=total / b, none=h, valid_rows=b,
                torch_mean_is_nan=False, parts=linear_parts(h, b, b))


def torch_expected(c: Case) -> tuple[dict, int, bool]:
    """Returns (expected, valid_rows, torch_mean_is_nan): the forward values."""
    with torch.no_grad():
        out = torch_forward(c, t64(c.x))
    nan = out["torch_mean_is_nan"]
    if nan:
        assert torch.isnan(out["mean"]), out["mean"]
    exp = dict(mean=0.0 if nan else out["mean"].item(), sum=out["sum"].item(),
               batchmean=out["batchmean"].item(), none=out["none"])
    return exp, out["valid_rows"], nan


def xent_scalar(out: dict, r: str) -> torch.Tensor:
    """The scalar whose gradient is stored as grad_<r>: the reduction itself, or the sum
    of the unreduced values for "none"."""
    return out["none"].sum() if r == "none" else out[r]


def torch_grads(c: Case) -> tuple[dict, bool]:
    """d(loss_r)/d(input) by autograd in float64, for r in REDUCTIONS.  Returns
    (grads, torch_grad_mean_is_nan); where torch's mean gradient is NaN (every row
    ignored) the stored gradient is 0, xent's convention."""
    grads, grad_nan = {}, False
    for r in REDUCTIONS:
        x = t64(c.x).requires_grad_(True)
        out = torch_forward(c, x, check=False)
        (g,) = torch.autograd.grad(xent_scalar(out, r), x)
        g = g.detach().numpy().copy()
        if r == "mean" and out["torch_mean_is_nan"]:
            if np.isnan(g).any():
                grad_nan = True
            g = np.zeros_like(g)  # xent: mean = 0 when no row is valid
        bad = np.argwhere(~np.isfinite(g))[:5].tolist()
        assert not bad, f"{c.name}: non-finite grad_{r} at {bad}"
        grads[r] = g + 0.0  # -0.0 -> 0.0
    return grads, grad_nan


FD_MAX_MAGNITUDE = 5e4


def fd_eligible(c: Case) -> np.ndarray:
    """Flat indices of the input elements the finite-difference check may perturb: finite,
    in rows whose finite values are all within +-FD_MAX_MAGNITUDE, and for probabilities not
    within 1e-5 of 0 or 1.  The rows of ``*_extreme_*`` that hold float16's largest value
    65504 or bfloat16's 3e38 are left out: the step 1e-6 |x| = 0.066 is too coarse for a
    softmax over logits tied at -65504, and float64 cannot resolve any step next to a loss
    of 3e38.  Their other rows are checked, and every row by ``numpy_grads``."""
    x = c.x.astype(np.float64)
    finite = np.isfinite(x)
    moderate = np.where(finite, np.abs(x), 0.0).max(axis=1, keepdims=True) <= FD_MAX_MAGNITUDE
    ok = finite & moderate
    if c.input_kind == PROBS:
        ok &= (x > 1e-5) & (x < 1 - 1e-5)
    return np.flatnonzero(ok.reshape(-1))


def fd_step(c: Case, x: float) -> float:
    """1e-6 * max(1, |x|); for probabilities also at most 1e-3 * min(x, 1 - x): the
    truncation error of a central difference of log x is (h/x)^2/3 relative, 4e-5 for
    x = 9e-5 with h = 1e-6, so small probabilities need a smaller step."""
    h = 1e-6 * max(1.0, abs(x))
    if c.input_kind == PROBS:
        h = min(h, 1e-3 * min(x, 1.0 - x))
    return h


def fd_check(c: Case, grads: dict, stats: dict) -> None:
    """Compares every stored gradient with a float64 central difference of the torch
    forward on up to FD_ELEMENTS random elements per reduction (step: ``fd_step``)."""
    rng = np.random.default_rng([BASE_SEED, zlib.crc32(("grad:" + c.name).encode("utf-8"))])
    x0 = c.x.astype(np.float64)
    n = x0.shape[1]
    elig = fd_eligible(c)

    def parts(xv: np.ndarray, r: str) -> list:
        with torch.no_grad():
            return torch_forward(c, torch.from_numpy(xv), check=False)["parts"][r]

    for r in REDUCTIONS:
        picks = rng.choice(elig, size=min(FD_ELEMENTS, elig.size), replace=False)
        for k in np.sort(picks):
            i, j = divmod(int(k), n)
            h = fd_step(c, x0[i, j])
            xp, xm = x0.copy(), x0.copy()
            xp[i, j] += h
            xm[i, j] -= h
            # [] (mean with no valid row): xent's mean is the constant 0.
            diff = sum(k * (tp - tm).sum().item()
                       for (tp, k), (tm, _) in zip(parts(xp, r), parts(xm, r)))
            fd = diff / (xp[i, j] - xm[i, j])
            g = grads[r][i, j]
            err = abs(g - fd)
            scale = max(abs(g), abs(fd))
            rel = err / scale if scale > 0 else 0.0
            assert err <= FD_ABS or rel <= FD_REL, (
                f"{c.name} grad_{r}[{i},{j}]: autograd {g!r}, finite difference {fd!r} "
                f"(x = {x0[i, j]!r}, rel {rel:.2e}, abs {err:.2e})")
            stats["checked"] += 1
            where = f"{c.name} grad_{r}[{i},{j}]"
            if rel <= FD_REL:
                stats["worst_rel"] = max(stats["worst_rel"], (rel, where))
            else:  # passed on the absolute bound only
                stats["abs_only"] += 1
                stats["worst_abs"] = max(stats["worst_abs"], (err, where))


# --- writing --------------------------------------------------------------------------------


README = """\
# Loss fixtures

Written by `scripts/gen_loss_fixtures.py` (rerun: `python3 scripts/gen_loss_fixtures.py`;
deterministic, it deletes and rewrites this folder). Reference values are PyTorch's, in
float64, on the stored input upcast to float64, and are re-checked by an independent numpy
implementation (relative difference < 1e-9 or absolute < 1e-12). So are the gradients
(`grad_*.npy`), by autograd; they are checked against central finite differences and
re-checked against the hand-derived formulas below in numpy.

## Files per case folder

- `input.npy`: `[B, C]`, C order, little-endian, float32 (float16 in `*_f16_*`, float64 in
  `*_f64_*`). Logits, probabilities or log-probabilities, per `input_kind`. Probability and
  log-probability inputs are float32 (or float16, bfloat16) roundings of exact distributions,
  not renormalized: the expected values use them as stored.
- `input.safetensors`: instead of `input.npy` in `*_bf16_*` (`.npy` has no bfloat16): one BF16
  tensor named `input`, `[B, C]`, the float32 values rounded to nearest (ties to even) by torch.
- `target.npy` (absent for `entropy`): int64 `[B]` class indices (may hold `ignore_index`),
  or float32 `[B, C]`: soft-target distributions (cross-entropy), probabilities or, with
  `log_target`, log-probabilities (kl-div), 0/1 or soft labels (binary-cross-entropy).
- `weight.npy` (optional): float32 `[C]` class weights in [0.2, 2.0].
- `pos_weight.npy` (optional): float32 `[C]` BCE positive weights in [0.3, 3.0].
- `grad_mean.npy`, `grad_sum.npy`, `grad_none.npy`, `grad_batchmean.npy`: float64 (`<f8`)
  `[B, C]`, C order: d(loss_r)/d(input) for each reduction r, by PyTorch autograd in float64
  with the stored input upcast to float64 as the leaf, through everything the forward value
  composes (softcap, log_softmax, z-loss, base, smoothing, weights, pos_weight, reduction).
  For `none` it is the gradient of the sum of the unreduced values (grad_output = ones), so
  `grad_none` = `grad_sum`. See "Gradients" below.
- `case.json`:

```
{"loss": "cross-entropy" | "binary-cross-entropy" | "kl-div" | "entropy",
 "input_kind": "logits" | "probs" | "log-probs",
 "ignore_index": int, "label_smoothing": float, "z_loss": float,
 "softcap": float | null, "log_target": bool, "base": "e" | "2" | "10",
 "batch": B, "classes": C, "valid_rows": int,
 "expected": {"mean": x, "sum": x, "batchmean": x,
              "none": [row-major values], "none_shape": [B] | [B, C]},
 "grad_files": ["grad_mean.npy", "grad_sum.npy", "grad_none.npy", "grad_batchmean.npy"],
 "grad_dtype": "float64",
 "torch_mean_is_nan": true,          <- only when every row is ignored
 "torch_grad_mean_is_nan": true}     <- only if torch's mean gradient were NaN (none is)
```

Defaults: `ignore_index` -100, `label_smoothing` 0, `z_loss` 0, `softcap` null,
`log_target` false, `base` "e". Floats are shortest round-trip; a non-finite number would be
the string "inf", "-inf" or "nan" (no fixture has one).

## Formulas

x = input; x' = softcap*tanh(x/softcap) if softcap is set, else x; logq = log_softmax(x')
for logits, x for log-probs, log(x) for probs. L = ln(base) (1, ln 2, ln 10). Every loss
except BCE is divided by L; the z-loss term is not.

1. **cross-entropy, int64 targets y** (eps = label_smoothing, w = weight or 1):
   ce_i = -(1-eps) w[y_i] logq[i,y_i] - (eps/C) sum_c w[c] logq[i,c], and ce_i = 0 where
   y_i == ignore_index (PyTorch's `F.cross_entropy(x', y, w, ignore_index, label_smoothing)`).
   zl_i = z_loss * logsumexp(x'_i)^2 on non-ignored rows, 0 on ignored rows (logits only).
   - none = ce_i/L + zl_i, shape [B]; sum = sum_i ce_i/L + sum_i zl_i
   - mean = sum_i ce_i / (L * sum_{i valid} w[y_i]) + sum_i zl_i / valid_rows;
     0 when valid_rows == 0 (PyTorch gives NaN: `"torch_mean_is_nan": true`)
   - batchmean = sum / B; valid_rows = rows with y_i != ignore_index.
2. **cross-entropy, float [B,C] targets p**: p' = (1-eps) p + eps/C;
   ce_i = -sum_c w[c] p'[i,c] logq[i,c]; zl_i on every row. none [B];
   sum = sum_i ce_i/L + sum_i zl_i; mean = batchmean = sum/B (not weight-normalised);
   valid_rows = B.
3. **kl-div**: k[i,c] = p (log p - logq) with 0 log 0 = 0, or with log_target
   exp(t) (t - logq); all divided by L. none [B,C]; sum; mean = sum/(B*C);
   batchmean = sum/B; valid_rows = B.
4. **entropy**: h_i = -sum_c q logq / L with q = exp(logq), 0 log 0 = 0. none [B]; sum;
   mean = batchmean = sum/B; valid_rows = B.
5. **binary-cross-entropy** (no base, smoothing, softcap or z-loss), labels y in [0,1],
   w and pos_weight pw of shape [C] broadcast over rows:
   logits: l = w [pw y softplus(-x) + (1-y) softplus(x)]
   (`F.binary_cross_entropy_with_logits`); probs: l = -w [y max(ln x, -100) +
   (1-y) max(ln(1-x), -100)] (`F.binary_cross_entropy`, no pos_weight).
   none [B,C]; sum; mean = sum/(B*C); batchmean = sum/B; valid_rows = B.

## Gradients

`grad_<r>.npy` = d(loss_r)/dx with respect to the stored input x itself: the raw logits
(through the softcap), the probabilities or the log-probabilities as stored, with no
renormalization (a probability input is not projected onto the simplex). With
G = d(loss)/d(logq):

- logits: d/dx' = G - q * sum_c G_c, q = softmax(x'); with softcap times
  1 - tanh(x/softcap)^2; the z-loss adds 2 z_loss lse(x') q to each (counted) row.
  A -inf logit gets gradient 0.
- log-probs: G. probs: G / x.
- cross-entropy, class targets: G[i,c] = -((1-eps) w[y_i] [c == y_i] + (eps/C) w[c]) / L
  on valid rows, 0 on ignored rows (so their gradient rows are 0). Reductions: sum and
  none 1; batchmean 1/B; mean 1/sum_{i valid} w[y_i] on the cross-entropy part and
  1/valid_rows on the z-loss part. With no valid row `grad_mean` is 0, xent's mean being
  the constant 0; PyTorch agrees there: its mean is NaN (0/0) but its gradient is 0, so no
  fixture has `torch_grad_mean_is_nan`.
- cross-entropy, soft targets: G = -w p' / L; mean = batchmean = sum/B.
- kl-div: G = -p / L (log_target: -exp(t) / L); mean 1/(B*C), batchmean 1/B.
- entropy: G = -q (logq + 1) / L (probs: d/dx = -(ln x + 1) / L); mean = batchmean 1/B.
- binary-cross-entropy, logits: w [(1 + (pw-1) y) sigmoid(x) - pw y]; probs: PyTorch's
  backward w (x - y) / max(x (1-x), 1e-12), which ignores the -100 clamp of the logs
  (no fixture reaches the clamp). mean 1/(B*C), batchmean 1/B.

Every gradient element is finite. The script compares each gradient file with a float64
central difference of the torch forward on 12 random elements per case and reduction
(step 1e-6 max(1, |x|), and for probabilities at most 1e-3 min(x, 1-x); skipping +-inf
inputs, probabilities within 1e-5 of 0 or 1, and the rows of the 16-bit `*_extreme_*` cases
that hold a value beyond 5e4, where no such step resolves the loss): relative error <= 1e-5
or absolute <= 1e-7. Compare small gradient elements with an absolute tolerance scaled by the
file's largest magnitude: e.g. `ce_softcap_9x53` has elements of 1e-16 next to 0.1.

## Notes

- PyTorch evaluates BCE-with-logits as (1-y) x + (1 + (pw-1) y) softplus(-x), which cancels
  for y = 0 and x << 0: `bce_logits_extreme_8x12` stores 0.0 where x = -100, y = 0 (exact
  value 3.7e-44) and 9.237e-14 where x = -30, y = 0 (exact 9.358e-14). Compare such tiny
  values with an absolute tolerance.
- `bce_logits_extreme_8x12` gradients are exact (sigmoid(x) - y): where x = -100, y = 0
  the gradient is 3.7e-44 w/N even though the stored value is 0.0 (the forward cancels,
  the backward does not).
- `entropy_onehot_8x11` rows 0, 3 and 6 are near-one-hot: 1.0 and float32(1e-30) elsewhere
  (entropy 6.9e-28), not exact zeros, whose entropy gradient -(ln q + 1) would be infinite.
- The 14 `*_bf16_*` cases have 14 float16 twins (`ce_bf16_1x1` and `ce_f16_1x1`, ...), with
  odd class counts (37, 61, 1001) so that rows straddle the 32-bit words that hold two 16-bit
  values, and 1x1. `ce_bf16_extreme_8x37` and `ce_f16_extreme_8x37` put the dtype's extreme
  magnitude M (bfloat16 3.0041e38, float16 65504) among N(0, 4) logits: row 0 has +M at the
  target (loss 0), row 1 also -M beside it (x - max = -2M, past float32's range for
  bfloat16), row 2 +M elsewhere (loss about M, the only such row: the sum stays within
  float32), row 3 -M and -inf as masks, row 4 -M everywhere but 6 -inf (loss ln 31), row 5
  half -inf.
- The `seed_*` inputs are float32, so their expected values are those of the float32
  roundings: `seed_ce` 0.35667496096863105 (not -ln 0.7 = 0.35667494393873245), `seed_bce`
  sum 0.43386459587533943 (not 0.43386458262986227).
"""


def save_npy(path: Path, a: np.ndarray, dtype: str) -> None:
    np.save(path, np.ascontiguousarray(a, dtype=dtype))


def dtype_code(a: np.ndarray) -> str:
    return {np.float16: "<f2", np.float32: "<f4", np.float64: "<f8", np.int64: "<i8"}[a.dtype.type]


def write_case(c: Case, fd_stats: dict) -> dict:
    b, n = c.x.shape
    assert c.x.dtype in (np.float16, np.float32, np.float64)
    assert c.bf16 == ("_bf16_" in c.name), c.name
    if c.bf16:
        assert c.x.dtype == np.float32 and np.array_equal(round16(c.x, "bf16"), c.x), c.name
    if c.target is not None:
        if c.target.dtype == np.int64:
            assert c.loss == CE and c.target.shape == (b,)
            assert np.all((c.target == c.ignore_index) | ((c.target >= 0) & (c.target < n)))
        else:
            assert c.target.dtype == np.float32 and c.target.shape == (b, n)
    else:
        assert c.loss == ENT
    if c.input_kind == PROBS:
        assert np.all(c.x >= 0) and np.all(c.x <= 1)
    exp, valid_rows, torch_nan = torch_expected(c)
    none = exp["none"]
    none_list = [jnum(v) for v in none.reshape(-1).tolist()]
    for v in [exp["mean"], exp["sum"], exp["batchmean"], *none_list]:
        assert isinstance(jnum(v), float), f"{c.name}: non-finite expected value {v}"
    doc = {
        "loss": c.loss,
        "input_kind": c.input_kind,
        "ignore_index": c.ignore_index,
        "label_smoothing": c.label_smoothing,
        "z_loss": c.z_loss,
        "softcap": c.softcap,
        "log_target": c.log_target,
        "base": c.base,
        "batch": b,
        "classes": n,
        "valid_rows": valid_rows,
        "expected": {
            "mean": jnum(exp["mean"]),
            "sum": jnum(exp["sum"]),
            "batchmean": jnum(exp["batchmean"]),
            "none": none_list,
            "none_shape": list(none.shape),
        },
    }
    if torch_nan:
        doc["torch_mean_is_nan"] = True
    grads, grad_nan = torch_grads(c)
    fd_check(c, grads, fd_stats)
    doc["grad_files"] = GRAD_FILES
    doc["grad_dtype"] = "float64"
    if grad_nan:
        doc["torch_grad_mean_is_nan"] = True
    d = OUT_DIR / c.name
    d.mkdir(parents=True)
    if c.bf16:
        save_file({"input": torch.from_numpy(c.x).to(torch.bfloat16)}, d / "input.safetensors")
    else:
        save_npy(d / "input.npy", c.x, dtype_code(c.x))
    if c.target is not None:
        save_npy(d / "target.npy", c.target, dtype_code(c.target))
    if c.weight is not None:
        save_npy(d / "weight.npy", c.weight, "<f4")
    if c.pos_weight is not None:
        save_npy(d / "pos_weight.npy", c.pos_weight, "<f4")
    for r, fname in zip(REDUCTIONS, GRAD_FILES):
        assert grads[r].shape == (b, n) and np.all(np.isfinite(grads[r])), (c.name, fname)
        save_npy(d / fname, grads[r], "<f8")
    with open(d / "case.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, allow_nan=False)
        f.write("\n")
    return doc


# --- independent verification (numpy only, no torch) ----------------------------------------


def npy_header(path: Path):
    """(shape, fortran_order, dtype) from a .npy header."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        return np.lib.format.read_array_header_2_0(f)


def load_npy(path: Path, want_dtype: tuple[str, ...], want_shape: tuple[int, ...]) -> np.ndarray:
    shape, fortran, dtype = npy_header(path)
    assert not fortran, f"{path}: Fortran order"
    assert dtype.str in want_dtype, f"{path}: dtype {dtype.str}, want {want_dtype}"
    assert tuple(shape) == want_shape, f"{path}: shape {shape}, want {want_shape}"
    a = np.load(path, allow_pickle=False)
    assert a.flags.c_contiguous
    return a


def load_bf16(path: Path, want_shape: tuple[int, int]) -> np.ndarray:
    """The one BF16 tensor "input" of a .safetensors file, read by hand (no torch, no
    safetensors package): the 8-byte little-endian header length, the JSON header, the data
    covering the rest of the file exactly; each value is the high 16 bits of a float32."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n].decode("utf-8"), parse_constant=reject_constant)
    size = 2 * want_shape[0] * want_shape[1]
    want = {"input": {"dtype": "BF16", "shape": list(want_shape), "data_offsets": [0, size]}}
    assert header == want, f"{path}: header {header}, want {want}"
    assert len(raw) == 8 + n + size, f"{path}: {len(raw)} bytes"
    bits = np.frombuffer(raw[8 + n:], dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32).reshape(want_shape)


def softplus(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def numpy_expected(doc: dict, x: np.ndarray, t, w, pw) -> dict:
    b, n = x.shape
    L = {"e": 1.0, "2": np.log(2.0), "10": np.log(10.0)}[doc["base"]]
    kind, loss = doc["input_kind"], doc["loss"]

    if loss == BCE:
        y = t
        wv = np.ones(n) if w is None else w
        if kind == LOGITS:
            pwv = np.ones(n) if pw is None else pw
            l = wv * (pwv * y * softplus(-x) + (1.0 - y) * softplus(x))
        else:
            with np.errstate(divide="ignore"):
                lx = np.maximum(np.log(x), -100.0)
                l1x = np.maximum(np.log1p(-x), -100.0)
            l = -wv * (y * lx + (1.0 - y) * l1x)
        s = l.sum()
        return dict(mean=s / (b * n), sum=s, batchmean=s / b, none=l)

    if kind == LOGITS:
        xp = doc["softcap"] * np.tanh(x / doc["softcap"]) if doc["softcap"] is not None else x
        m = xp.max(axis=1, keepdims=True)
        log_s = np.log(np.exp(xp - m).sum(axis=1, keepdims=True))
        lse = (m + log_s)[:, 0]
        # (x - max) - log s, not x - lse: at x = max = -3e38, lse rounds to x and log s is lost.
        logq = (xp - m) - log_s
    elif kind == LOGPROBS:
        logq, lse = x, None
    else:
        with np.errstate(divide="ignore"):
            logq = np.log(x)
        lse = None
    z = doc["z_loss"]

    if loss == CE and t.ndim == 1:
        eps, ii = doc["label_smoothing"], doc["ignore_index"]
        wv = np.ones(n) if w is None else w
        ce = np.zeros(b)
        zl = np.zeros(b)
        wsum, valid = 0.0, 0
        for i in range(b):
            if t[i] == ii:
                continue
            valid += 1
            wsum += wv[t[i]]
            ce[i] = -(1 - eps) * wv[t[i]] * logq[i, t[i]]
            if eps > 0:
                ce[i] -= eps / n * np.sum(wv * logq[i])
            if z:
                zl[i] = z * lse[i] ** 2
        none = ce / L + zl
        s = ce.sum() / L + zl.sum()
        mean = 0.0 if valid == 0 else ce.sum() / (L * wsum) + zl.sum() / valid
        return dict(mean=mean, sum=s, batchmean=s / b, none=none, valid_rows=valid)

    if loss == CE:
        eps = doc["label_smoothing"]
        wv = np.ones(n) if w is None else w
        pp = (1 - eps) * t + eps / n
        ce = -(wv * pp * logq).sum(axis=1)
        zl = z * lse**2 if z else np.zeros(b)
        none = ce / L + zl
        s = none.sum()
        return dict(mean=s / b, sum=s, batchmean=s / b, none=none)

    if loss == KL:
        if doc["log_target"]:
            k = np.exp(t) * (t - logq)
        else:
            k = np.zeros_like(logq)
            pos = t > 0
            k[pos] = t[pos] * (np.log(t[pos]) - logq[pos])
        k = k / L
        s = k.sum()
        return dict(mean=s / (b * n), sum=s, batchmean=s / b, none=k)

    assert loss == ENT
    q = x if kind == PROBS else np.exp(logq)
    terms = np.zeros_like(q)
    pos = q > 0
    terms[pos] = q[pos] * logq[pos]
    h = -terms.sum(axis=1) / L
    s = h.sum()
    return dict(mean=s / b, sum=s, batchmean=s / b, none=h)


def numpy_grads(doc: dict, x: np.ndarray, t, w, pw) -> dict:
    """d(loss_r)/d(input) by hand in numpy float64 (no torch), for r in REDUCTIONS.  With
    G = d(loss)/d(logq): logits d/dx' = G - q sum_c G_c (q = softmax(x')), times
    1 - tanh(x/softcap)^2 with softcap; log-probs G itself; probs G / x."""
    b, n = x.shape
    L = {"e": 1.0, "2": np.log(2.0), "10": np.log(10.0)}[doc["base"]]
    kind, loss = doc["input_kind"], doc["loss"]
    wv = np.ones(n) if w is None else w

    if loss == BCE:
        y = t
        if kind == LOGITS:
            pwv = np.ones(n) if pw is None else pw
            s = 1.0 / (1.0 + np.exp(-x))
            g = wv * ((1.0 + (pwv - 1.0) * y) * s - pwv * y)
        else:  # PyTorch's backward, which ignores the -100 clamp of the logs
            g = wv * (x - y) / np.maximum(x * (1.0 - x), 1e-12)
        return dict(mean=g / (b * n), sum=g, none=g, batchmean=g / b)

    if kind == LOGITS:
        xp = doc["softcap"] * np.tanh(x / doc["softcap"]) if doc["softcap"] is not None else x
        m = xp.max(axis=1, keepdims=True)
        e = np.exp(xp - m)
        q = e / e.sum(axis=1, keepdims=True)
        log_s = np.log(e.sum(axis=1, keepdims=True))
        lse = (m + log_s)[:, 0]
        logq = (xp - m) - log_s
    elif kind == LOGPROBS:
        logq = x
    else:
        with np.errstate(divide="ignore"):
            logq = np.log(x)

    # Per reduction: G (d/dlogq) and Z (coefficient of the z-loss gradient 2 z lse q, per row).
    zero_rows = np.zeros(b)
    if loss == CE and t.ndim == 1:
        eps, ii = doc["label_smoothing"], doc["ignore_index"]
        valid = t != ii
        nvalid = int(valid.sum())
        a = np.zeros((b, n))
        rows = np.flatnonzero(valid)
        a[rows, t[rows]] = (1 - eps) * wv[t[rows]]
        a[rows] += eps / n * wv
        G = -a / L
        wsum = wv[t[rows]].sum()
        zrow = valid.astype(np.float64)
        coef = dict(sum=(1.0, 1.0), none=(1.0, 1.0), batchmean=(1 / b, 1 / b),
                    mean=(1 / wsum, 1 / nvalid) if nvalid else (0.0, 0.0))
        per = {r: (G * cg, zrow * cz) for r, (cg, cz) in coef.items()}
    elif loss == CE:
        eps = doc["label_smoothing"]
        G = -wv * ((1 - eps) * t + eps / n) / L
        ones = np.ones(b)
        per = dict(sum=(G, ones), none=(G, ones), mean=(G / b, ones / b),
                   batchmean=(G / b, ones / b))
    elif loss == KL:
        G = -(np.exp(t) if doc["log_target"] else t) / L
        per = dict(sum=(G, zero_rows), none=(G, zero_rows), mean=(G / (b * n), zero_rows),
                   batchmean=(G / b, zero_rows))
    else:
        assert loss == ENT
        q_ = x if kind == PROBS else np.exp(logq)
        G = np.where(q_ > 0, -q_ * (logq + 1.0), 0.0) / L
        per = dict(sum=(G, zero_rows), none=(G, zero_rows), mean=(G / b, zero_rows),
                   batchmean=(G / b, zero_rows))

    out = {}
    for r in REDUCTIONS:
        G_r, Z_r = per[r]
        if kind == LOGITS:
            gx = G_r - q * G_r.sum(axis=1, keepdims=True)
            if doc["z_loss"]:
                gx = gx + (Z_r * 2.0 * doc["z_loss"] * lse)[:, None] * q
            if doc["softcap"] is not None:
                gx = gx * (1.0 - np.tanh(x / doc["softcap"]) ** 2)
        elif kind == LOGPROBS:
            gx = G_r
        else:
            gx = G_r / x
        out[r] = gx
    return out


def close(a: float, b: float) -> bool:
    d = abs(a - b)
    return d < 1e-12 or d < 1e-9 * max(abs(a), abs(b))


def reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def verify_grads(d: Path, doc: dict, x: np.ndarray, t, w, pw) -> float:
    """Reads the gradient files back: dtype, shape, finiteness; compares them with
    ``numpy_grads`` (each element within 1e-9 relative or 1e-12 of the file's largest
    magnitude); and checks identities (no torch): grad_none = grad_sum (the sum of the
    unreduced values is the sum), grad_batchmean = grad_sum / B, grad_mean = grad_sum /
    (B or B*C) except for class-target cross-entropy, zero rows where the target is
    ignored, and rows summing to 0 (shift invariance of log_softmax) for logits without
    softcap or z-loss.  Returns the largest difference from numpy, relative to the
    file's largest magnitude."""
    name, b, n = d.name, doc["batch"], doc["classes"]
    loss, kind = doc["loss"], doc["input_kind"]
    assert doc["grad_files"] == GRAD_FILES, name
    assert doc["grad_dtype"] == "float64", name
    g = {}
    for r, fname in zip(REDUCTIONS, GRAD_FILES):
        g[r] = load_npy(d / fname, ("<f8",), (b, n))
        assert np.all(np.isfinite(g[r])), (name, fname)
    assert "torch_grad_mean_is_nan" not in doc or doc["valid_rows"] == 0, name
    ref = numpy_grads(doc, x, t, w, pw)
    worst = 0.0
    for r in REDUCTIONS:
        big = np.abs(g[r]).max()
        diff = np.abs(g[r] - ref[r])
        ok = (diff <= 1e-9 * np.abs(ref[r])) | (diff <= 1e-12 * big)
        assert np.all(ok), (f"{name} grad_{r}: numpy disagrees at "
                            f"{np.argwhere(~ok)[:5].tolist()}")
        if big > 0:
            worst = max(worst, diff.max() / big)

    def near(a, want, what):
        tol = 1e-12 * np.abs(g["sum"]).max() / b + 1e-300
        assert np.abs(a - want).max() <= tol * max(1.0, n), f"{name}: {what}"

    near(g["none"] * b, g["sum"] * b, "grad_none != grad_sum")
    near(g["batchmean"] * b, g["sum"], "grad_batchmean != grad_sum / B")
    class_ce = loss == CE and t is not None and t.ndim == 1
    if not class_ce:
        div = b * n if loss in (BCE, KL) else b
        near(g["mean"] * div, g["sum"], "grad_mean != grad_sum / N")
    else:
        ignored = t == doc["ignore_index"]
        for r in REDUCTIONS:
            assert np.all(g[r][ignored] == 0), (name, r, "ignored row with a gradient")
        if doc["valid_rows"] == 0:
            assert np.all(g["mean"] == 0), name
    if kind == LOGITS and loss != BCE and doc["softcap"] is None and not doc["z_loss"]:
        for r in REDUCTIONS:
            row = g[r].sum(axis=1)
            assert np.all(np.abs(row) <= 1e-12 * np.abs(g[r]).sum(axis=1) * n + 1e-300), (
                name, r, "logits gradient rows must sum to 0")
    return worst


def verify_all(names: list[str]) -> list[tuple]:
    rows = []
    worst = worst_abs = grad_worst = 0.0
    abs_only = []
    found = sorted(p.name for p in OUT_DIR.iterdir() if p.is_dir())
    assert found == sorted(names), (found, names)
    for name in names:
        d = OUT_DIR / name
        doc = json.loads((d / "case.json").read_text(encoding="utf-8"),
                         parse_constant=reject_constant)
        b, n = doc["batch"], doc["classes"]
        loss, kind = doc["loss"], doc["input_kind"]
        bf16 = "_bf16_" in name
        assert (d / "input.safetensors").exists() == bf16, name
        assert (d / "input.npy").exists() != bf16, name
        if bf16:
            x_raw = load_bf16(d / "input.safetensors", (b, n))
        else:
            x_raw = load_npy(d / "input.npy", ("<f2", "<f4", "<f8"), (b, n))
        if "_f16_" in name:
            assert x_raw.dtype.str == "<f2"
        elif "_f64_" in name:
            assert x_raw.dtype.str == "<f8"
        else:
            assert x_raw.dtype.str == "<f4"
        x = x_raw.astype(np.float64)
        t = None
        if loss == ENT:
            assert not (d / "target.npy").exists()
        else:
            _, _, tdtype = npy_header(d / "target.npy")
            if tdtype.str == "<i8":
                assert loss == CE
                t = load_npy(d / "target.npy", ("<i8",), (b,))
                ii = doc["ignore_index"]
                assert np.all((t == ii) | ((t >= 0) & (t < n)))
            else:
                t = load_npy(d / "target.npy", ("<f4",), (b, n)).astype(np.float64)
                if loss == CE or (loss == KL and not doc["log_target"]):
                    assert np.all(t >= 0) and np.allclose(t.sum(axis=1), 1.0, atol=1e-5)
                if loss == BCE:
                    assert np.all((t >= 0) & (t <= 1))
        w = pw = None
        if (d / "weight.npy").exists():
            w = load_npy(d / "weight.npy", ("<f4",), (n,)).astype(np.float64)
            assert np.all((w >= 0.2) & (w <= 2.0))
        if (d / "pos_weight.npy").exists():
            assert loss == BCE and kind == LOGITS
            pw = load_npy(d / "pos_weight.npy", ("<f4",), (n,)).astype(np.float64)
            assert np.all((pw >= 0.3) & (pw <= 3.0))
        if loss == BCE:
            assert doc["base"] == "e" and doc["label_smoothing"] == 0 and doc["z_loss"] == 0
        if doc["z_loss"]:
            assert kind == LOGITS
        for key in ("ignore_index", "batch", "classes", "valid_rows"):
            assert isinstance(doc[key], int)
        assert isinstance(doc["log_target"], bool)

        ref = numpy_expected(doc, x, t, w, pw)
        exp = doc["expected"]
        assert ref.get("valid_rows", b) == doc["valid_rows"], name
        assert doc.get("torch_mean_is_nan", False) == (doc["valid_rows"] == 0), name
        want_shape = [b] if loss in (CE, ENT) else [b, n]
        assert exp["none_shape"] == want_shape, (name, exp["none_shape"])
        assert len(exp["none"]) == int(np.prod(want_shape))
        pairs = [(exp[k], ref[k], k) for k in ("mean", "sum", "batchmean")]
        pairs += [(a, r, f"none[{j}]") for j, (a, r) in
                  enumerate(zip(exp["none"], np.asarray(ref["none"]).reshape(-1).tolist()))]
        for got, want, what in pairs:
            assert isinstance(got, float), (name, what, got)
            assert math.isfinite(want), (name, what, want)
            assert close(got, want), f"{name} {what}: json {got!r} vs numpy {want!r}"
            if got != want:
                rel = abs(got - want) / max(abs(got), abs(want))
                worst_abs = max(worst_abs, abs(got - want))
                if rel < 1e-9:
                    worst = max(worst, rel)
                else:  # passed on the absolute bound only
                    abs_only.append(f"{name} {what}: torch {got!r}, numpy {want!r}")

        grad_worst = max(grad_worst, verify_grads(d, doc, x, t, w, pw))

        opts = []
        if t is not None:
            opts.append("class" if t.ndim == 1 else "soft" if loss == CE else "dense")
        if doc["valid_rows"] < b:
            opts.append(f"ignored={b - doc['valid_rows']}")
        if doc["ignore_index"] != DEFAULT_IGNORE:
            opts.append(f"ii={doc['ignore_index']}")
        if w is not None:
            opts.append("weight")
        if pw is not None:
            opts.append("pos_weight")
        if doc["label_smoothing"]:
            opts.append(f"eps={doc['label_smoothing']}")
        if doc["z_loss"]:
            opts.append(f"z={doc['z_loss']}")
        if doc["softcap"] is not None:
            opts.append(f"softcap={doc['softcap']}")
        if doc["log_target"]:
            opts.append("log_target")
        if doc["base"] != "e":
            opts.append(f"base={doc['base']}")
        if not np.all(np.isfinite(x)):
            opts.append("-inf")
        dtype = "bfloat16" if bf16 else x_raw.dtype.name
        rows.append((name, loss, kind, dtype, f"{b}x{n}", " ".join(opts), exp["mean"]))
    print(f"numpy re-check: all values agree (largest differences: relative {worst:.2e} (where it applies), "
          f"absolute {worst_abs:.2e}; each value within 1e-9 relative or 1e-12 absolute)")
    if abs_only:
        print(f"{len(abs_only)} tiny values agree only to 1e-12 absolute:")
        for line in abs_only:
            print("   ", line)
    print(f"numpy gradient re-check: all grad_*.npy agree with hand-derived gradients (largest "
          f"difference {grad_worst:.2e} of the file's largest magnitude; each element within "
          f"1e-9 relative or 1e-12 of that magnitude)")
    return rows


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    (OUT_DIR / "README.md").write_text(README, encoding="utf-8")
    fd = dict(checked=0, worst_rel=(0.0, ""), worst_abs=(0.0, ""), abs_only=0)
    for name, make in CASES.items():
        c = make(rng_for(name))
        c.name = name
        write_case(c, fd)
    print(f"gradient finite-difference check: {fd['checked']} elements (<= {FD_ELEMENTS} per case "
          f"and reduction) agree with autograd within {FD_REL:g} relative or {FD_ABS:g} "
          f"absolute; largest relative error {fd['worst_rel'][0]:.2e} ({fd['worst_rel'][1]}); "
          f"{fd['abs_only']} tiny gradients agree only to the absolute bound (largest absolute "
          f"error {fd['worst_abs'][0]:.2e}, {fd['worst_abs'][1]})")

    rows = verify_all(list(CASES))
    headers = ("case", "loss", "input", "dtype", "shape", "options", "mean")
    table = [headers] + [r[:-1] + (f"{r[-1]:.6g}",) for r in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(headers))]
    for k, r in enumerate(table):
        print("  ".join(str(v).ljust(wd) for v, wd in zip(r, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * wd for wd in widths))

    total = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    print(f"{len(rows)} cases, {total} bytes in {OUT_DIR.relative_to(ROOT)}")
    assert total < MAX_TOTAL_BYTES, f"fixtures too large: {total} bytes"


if __name__ == "__main__":
    main()
