#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for xent's fused linear cross-entropy (issue 20).

What it makes
-------------
It deletes and rewrites ``tests/fixtures/linear_cross_entropy/``: one folder per case plus a
``README.md`` (the ``README`` string below) describing the format.  A case is cross-entropy on
the logits ``Z = H Wᵀ + b`` (H ``[N, D]`` hidden states, W ``[V, D]`` head weight, b ``[V]``
optional float32 bias), with every option xent's cross-entropy on logits has, exactly as
``scripts/gen_loss_fixtures.py`` defines it: the loss is that script's own ``torch_forward``
applied to ``F.linear(H, W, b)``, so ignore_index, class weight, label_smoothing, z_loss,
softcap, base, the reductions mean/sum/none/batchmean, class-index and soft targets, and the
all-ignored mean of 0, mean the same thing in both fixture sets.

Every expected number is computed in float64 by PyTorch on the stored values upcast to
float64, and the gradients of H, W and b by torch autograd in float64.  Checks, all asserted:

* against PyTorch's own ``F.linear_cross_entropy`` (present since 2.13) on the option subset
  it has (class weight, ignore_index, label_smoothing, reductions mean/sum/none, class and
  soft targets, bias; no z_loss, softcap or base): its reference path (``options=None``) and,
  without label smoothing (which it does not chunk), its chunked path
  (``LinearCrossEntropyOptions()`` and 3-row chunks): values and autograd gradients within
  1e-10;
* against ``F.cross_entropy(F.linear(H, W, b), ...)`` on the same subset, the same way;
* ``torch_forward`` itself checks against ``F.cross_entropy`` on the (softcapped) logits;
* a float64 central difference of the forward on a few elements of H, W and b per case and
  reduction (relative error <= 1e-5 or absolute <= 1e-7);
* on read-back, with numpy only (no torch): every file's dtype and shape, every expected value
  (gen_loss_fixtures' ``numpy_expected`` on Z = H Wᵀ + b in float64) and every gradient by the
  closed form (G = dloss/dZ from gen_loss_fixtures' ``numpy_grads``, dH = G W, dW = Gᵀ H,
  db = Σ_rows G), within 1e-9 relative or 1e-12 absolute (gradients: 1e-9 relative or 1e-12
  of the file's largest magnitude).

Where every row is ignored PyTorch's mean is NaN (xent's is 0, and so are its gradients); the
gradients of that mean are 0 on PyTorch's reference paths but NaN on its chunked path, which
the check allows there and reports.

How to rerun
------------
From the repository root::

    pip install -r scripts/requirements-fixtures.txt   # numpy, torch, safetensors
    python3 scripts/gen_linear_fixtures.py

Output is deterministic: each case draws from its own ``numpy.random.Generator`` seeded from
gen_loss_fixtures' base seed and ``zlib.crc32`` of the case name, and torch runs on one CPU
thread, so rerunning rewrites identical files and adding a case does not change the others.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_loss_fixtures as glf  # noqa: E402  (the cross-entropy forward and numpy formulas)

CE, LOGITS = glf.CE, glf.LOGITS
DEFAULT_IGNORE = glf.DEFAULT_IGNORE
REDUCTIONS = glf.REDUCTIONS  # ("mean", "sum", "none", "batchmean")
ROOT = glf.ROOT
OUT_DIR = ROOT / "tests" / "fixtures" / "linear_cross_entropy"
MAX_TOTAL_BYTES = 3_000_000
TORCH_TOL = 1e-10
FD_ELEMENTS = 4  # per tensor (H, W, b), case and reduction
FD_REL, FD_ABS = 1e-5, 1e-7
TENSORS = ("hidden", "weight", "bias")


# --- case description ------------------------------------------------------------


@dataclass
class LCase:
    h: np.ndarray  # [N, D]: float32, float16, or float32 holding bfloat16 values
    w: np.ndarray  # [V, D], the same dtype as h
    target: np.ndarray  # int64 [N] or float32 [N, V]
    bias: Optional[np.ndarray] = None  # float32 [V]
    class_weight: Optional[np.ndarray] = None  # float32 [V]
    ignore_index: int = DEFAULT_IGNORE
    label_smoothing: float = 0.0
    z_loss: float = 0.0
    softcap: Optional[float] = None
    base: str = "e"
    dtype: str = "float32"  # "float32" | "float16" | "bfloat16"
    name: str = field(default="")

    @property
    def classes(self) -> bool:
        return self.target.ndim == 1


CASES: dict[str, Callable[[np.random.Generator], LCase]] = {}


def case(name: str):
    def register(fn):
        assert name not in CASES, name
        CASES[name] = fn
        return fn

    return register


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng([glf.BASE_SEED, zlib.crc32(name.encode("utf-8"))])


# --- random data -------------------------------------------------------------------


def store(x: np.ndarray, dtype: str) -> np.ndarray:
    """x rounded to the stored dtype (nearest, ties to even); bfloat16 as float32 values."""
    if dtype == "float32":
        return x.astype(np.float32)
    if dtype == "float16":
        return x.astype(np.float16)
    assert dtype == "bfloat16", dtype
    return glf.round16(x, "bf16")


def hidden(rng, n, d, dtype="float32") -> np.ndarray:
    """H ~ N(0, 1)."""
    return store(rng.standard_normal((n, d)), dtype)


def head(rng, v, d, scale=2.0, dtype="float32") -> np.ndarray:
    """W ~ N(0, (scale/sqrt(D))^2): with H ~ N(0, 1) the logits are about N(0, scale^2)."""
    return store(rng.standard_normal((v, d)) * (scale / math.sqrt(d)), dtype)


def bias(rng, v) -> np.ndarray:
    return (rng.standard_normal(v) * 0.5).astype(np.float32)


def targets(rng, n, v, ignore_frac=0.0, ignore_index=DEFAULT_IGNORE) -> np.ndarray:
    return glf.class_targets(rng, n, v, ignore_frac, ignore_index)


def soft(rng, n, v) -> np.ndarray:
    return glf.probs(rng, n, v, 1.5)


def class_weight(rng, v) -> np.ndarray:
    return glf.weight(rng, v)


# --- cases ---------------------------------------------------------------------------
# Names end in NxDxV.  Every class-target case also gets target_i32.npy.


@case("lce_1x1x1")
def _(rng):
    return LCase(hidden(rng, 1, 1), head(rng, 1, 1), np.array([0], dtype=np.int64))


@case("lce_bias_zloss_1x1x1")
def _(rng):
    # One class: the cross-entropy is 0 and only the z-loss has a gradient.
    return LCase(hidden(rng, 1, 1), head(rng, 1, 1), np.array([0], dtype=np.int64),
                 bias=bias(rng, 1), z_loss=1e-3)


@case("lce_3x5x7")
def _(rng):
    return LCase(hidden(rng, 3, 5), head(rng, 7, 5), targets(rng, 3, 7))


@case("lce_bias_17x33x65")
def _(rng):
    return LCase(hidden(rng, 17, 33), head(rng, 65, 33), targets(rng, 17, 65), bias=bias(rng, 65))


@case("lce_37x19x257")
def _(rng):
    return LCase(hidden(rng, 37, 19), head(rng, 257, 19), targets(rng, 37, 257))


@case("lce_large_bias_weight_ignore_64x32x1000")
def _(rng):
    n, d, v = 64, 32, 1000
    return LCase(hidden(rng, n, d), head(rng, v, d), targets(rng, n, v, 0.15), bias=bias(rng, v),
                 class_weight=class_weight(rng, v))


# --- each option alone -------------------------------------------------------------------


@case("lce_ignore_19x21x37")
def _(rng):
    return LCase(hidden(rng, 19, 21), head(rng, 37, 21), targets(rng, 19, 37, 0.2),
                 bias=bias(rng, 37))


@case("lce_ignore3_weight_15x11x23")
def _(rng):
    n, d, v = 15, 11, 23
    t = targets(rng, n, v, 0.2, ignore_index=3)
    t[2] = 3  # surely some rows with target 3, ignored ...
    t[0] = 5  # ... and a valid first row
    return LCase(hidden(rng, n, d), head(rng, v, d), t, bias=bias(rng, v),
                 class_weight=class_weight(rng, v), ignore_index=3)


@case("lce_weight_11x17x29")
def _(rng):
    return LCase(hidden(rng, 11, 17), head(rng, 29, 17), targets(rng, 11, 29),
                 class_weight=class_weight(rng, 29))


@case("lce_smooth_13x23x31")
def _(rng):
    return LCase(hidden(rng, 13, 23), head(rng, 31, 23), targets(rng, 13, 31),
                 label_smoothing=0.1)


@case("lce_zloss_9x27x41")
def _(rng):
    return LCase(hidden(rng, 9, 27), head(rng, 41, 27), targets(rng, 9, 41), z_loss=1e-3)


@case("lce_softcap_8x19x53")
def _(rng):
    # Logits about N(0, 20^2), so that the cap at 30 bends them.
    return LCase(hidden(rng, 8, 19), head(rng, 53, 19, scale=20.0), targets(rng, 8, 53),
                 softcap=30.0)


@case("lce_base2_6x15x29")
def _(rng):
    return LCase(hidden(rng, 6, 15), head(rng, 29, 15), targets(rng, 6, 29), base="2")


@case("lce_soft_10x13x21")
def _(rng):
    return LCase(hidden(rng, 10, 13), head(rng, 21, 13), soft(rng, 10, 21))


@case("lce_soft_smooth_12x22x27")
def _(rng):
    return LCase(hidden(rng, 12, 22), head(rng, 27, 22), soft(rng, 12, 27), label_smoothing=0.1)


@case("lce_soft_bias_weight_7x9x19")
def _(rng):
    return LCase(hidden(rng, 7, 9), head(rng, 19, 9), soft(rng, 7, 19), bias=bias(rng, 19),
                 class_weight=class_weight(rng, 19))


# --- everything at once, all ignored, i32, extreme -------------------------------------------


@case("lce_all_options_23x29x71")
def _(rng):
    n, d, v = 23, 29, 71
    return LCase(hidden(rng, n, d), head(rng, v, d, scale=20.0), targets(rng, n, v, 0.2),
                 bias=bias(rng, v), class_weight=class_weight(rng, v), label_smoothing=0.1,
                 z_loss=1e-3, softcap=30.0)


@case("lce_soft_all_options_9x17x33")
def _(rng):
    n, d, v = 9, 17, 33
    return LCase(hidden(rng, n, d), head(rng, v, d, scale=20.0), soft(rng, n, v),
                 bias=bias(rng, v), class_weight=class_weight(rng, v), label_smoothing=0.1,
                 z_loss=1e-3, softcap=30.0)


@case("lce_all_ignored_4x6x5")
def _(rng):
    n, d, v = 4, 6, 5
    # No z-loss, so that PyTorch's own functions are compared too (their mean is NaN here).
    return LCase(hidden(rng, n, d), head(rng, v, d), np.full(n, DEFAULT_IGNORE, dtype=np.int64),
                 bias=bias(rng, v), class_weight=class_weight(rng, v))


@case("lce_i32_bias_ignore_15x21x43")
def _(rng):
    # Meant for the int32 target path (target_i32.npy); every class case has that file too.
    return LCase(hidden(rng, 15, 21), head(rng, 43, 21), targets(rng, 15, 43, 0.2),
                 bias=bias(rng, 43))


@case("lce_extreme_16x24x65")
def _(rng):
    # Logits about N(0, 300^2): up to about 1e3.  Even rows target their largest logit (loss
    # about 0), odd rows a random class (loss in the hundreds).
    n, d, v = 16, 24, 65
    h = hidden(rng, n, d)
    w = head(rng, v, d, scale=300.0)
    t = targets(rng, n, v)
    z = h.astype(np.float64) @ w.astype(np.float64).T
    t[0::2] = z[0::2].argmax(axis=1)
    return LCase(h, w, t)


# --- 16-bit H and W (the bias stays float32) ----------------------------------------------


def sixteen_bit_cases(short: str, dtype: str) -> None:
    """Odd D (37, 45), so that rows straddle the 32-bit words holding two 16-bit values."""

    @case(f"lce_{short}_11x37x61")
    def _(rng):
        return LCase(hidden(rng, 11, 37, dtype), head(rng, 61, 37, dtype=dtype),
                     targets(rng, 11, 61), dtype=dtype)

    @case(f"lce_{short}_bias_ignore_9x45x71")
    def _(rng):
        return LCase(hidden(rng, 9, 45, dtype), head(rng, 71, 45, dtype=dtype),
                     targets(rng, 9, 71, 0.2), bias=bias(rng, 71), dtype=dtype)

    @case(f"lce_{short}_bias_softcap_zloss_5x37x67")
    def _(rng):
        return LCase(hidden(rng, 5, 37, dtype), head(rng, 67, 37, scale=20.0, dtype=dtype),
                     targets(rng, 5, 67), bias=bias(rng, 67), softcap=30.0, z_loss=1e-3,
                     dtype=dtype)

    @case(f"lce_soft_{short}_6x33x37")
    def _(rng):
        return LCase(hidden(rng, 6, 33, dtype), head(rng, 37, 33, dtype=dtype), soft(rng, 6, 37),
                     dtype=dtype)


sixteen_bit_cases("f16", "float16")
sixteen_bit_cases("bf16", "bfloat16")


# --- reference values (torch, float64) -------------------------------------------------------


def loss_case(c: LCase) -> glf.Case:
    """The gen_loss_fixtures case whose input is this case's logits (only its shape is read)."""
    n, v = c.h.shape[0], c.w.shape[0]
    return glf.Case(CE, LOGITS, np.zeros((n, v)), c.target, weight=c.class_weight,
                    ignore_index=c.ignore_index, label_smoothing=c.label_smoothing,
                    z_loss=c.z_loss, softcap=c.softcap, base=c.base, name=c.name)


def leaves(c: LCase, grad: bool) -> list[Optional[torch.Tensor]]:
    """H, W and b (or None) in float64, exactly the stored values."""
    out = [glf.t64(c.h), glf.t64(c.w), glf.t64(c.bias)]
    return [t.requires_grad_(grad) if t is not None else None for t in out]


def forward(c: LCase, H, W, b, check: bool = False) -> dict:
    """gen_loss_fixtures.torch_forward on F.linear(H, W, b)."""
    return glf.torch_forward(loss_case(c), F.linear(H, W, b), check=check)


def final_logits(c: LCase, z: torch.Tensor) -> torch.Tensor:
    return c.softcap * torch.tanh(z / c.softcap) if c.softcap is not None else z


def torch_expected(c: LCase) -> dict:
    with torch.no_grad():
        H, W, b = leaves(c, False)
        out = forward(c, H, W, b, check=True)
        lse = torch.logsumexp(final_logits(c, F.linear(H, W, b)), dim=1)
    nan = out["torch_mean_is_nan"]
    if nan:
        assert torch.isnan(out["mean"]), out["mean"]
    return dict(mean=0.0 if nan else out["mean"].item(), sum=out["sum"].item(),
                batchmean=out["batchmean"].item(), none=out["none"].numpy().copy(),
                lse=lse.numpy().copy(), valid_rows=out["valid_rows"], torch_mean_is_nan=nan)


def torch_grads(c: LCase) -> tuple[dict, bool]:
    """{r: {"hidden": dH, "weight": dW, "bias": db or None}} by autograd in float64, and
    whether torch's mean gradient was NaN anywhere (it is stored as 0: xent's mean is 0)."""
    grads, grad_nan = {}, False
    for r in REDUCTIONS:
        H, W, b = leaves(c, True)
        out = forward(c, H, W, b)
        xs = [t for t in (H, W, b) if t is not None]
        gs = [g.detach().numpy().copy() for g in torch.autograd.grad(glf.xent_scalar(out, r), xs)]
        if r == "mean" and out["torch_mean_is_nan"]:
            grad_nan |= any(np.isnan(g).any() for g in gs)
            gs = [np.zeros_like(g) for g in gs]
        for g in gs:
            assert np.all(np.isfinite(g)), f"{c.name}: non-finite grad_{r}"
        gs = [g + 0.0 for g in gs]  # -0.0 -> 0.0
        grads[r] = dict(hidden=gs[0], weight=gs[1], bias=gs[2] if b is not None else None)
    return grads, grad_nan


# --- PyTorch's own linear cross-entropy ------------------------------------------------------


def torch_lce_applies(c: LCase) -> bool:
    """F.linear_cross_entropy has no z-loss, softcap or base."""
    return c.z_loss == 0 and c.softcap is None and c.base == "e"


def torch_paths(c: LCase) -> list[tuple[str, Callable]]:
    """(name, fn(H, W, b, target, reduction)) for each PyTorch implementation compared."""
    kw = dict(weight=glf.t64(c.class_weight), label_smoothing=c.label_smoothing)
    ii = c.ignore_index if c.classes else None  # it refuses ignore_index with soft targets
    Opt = torch.nn.LinearCrossEntropyOptions

    def lce(options):
        return lambda H, W, b, t, r: F.linear_cross_entropy(
            H, W, t, linear_bias=b, reduction=r, ignore_index=ii, options=options, **kw)

    def ce_linear(H, W, b, t, r):
        ce_kw = dict(kw, ignore_index=c.ignore_index) if c.classes else kw
        return F.cross_entropy(F.linear(H, W, b), t, reduction=r, **ce_kw)

    paths = [("F.linear_cross_entropy", lce(None))]
    if c.label_smoothing == 0:  # its chunked path does not take label smoothing
        paths += [("F.linear_cross_entropy chunked", lce(Opt())),
                  ("F.linear_cross_entropy chunked 3 rows",
                   lce(Opt(batch_chunk_size=3, chunking_method=None)))]
    paths.append(("F.cross_entropy(F.linear)", ce_linear))
    return paths


def check_against_torch(c: LCase, exp: dict, grads: dict, stats: dict) -> list[str]:
    """Compares values and gradients (mean, sum, none) with each of ``torch_paths``, within
    TORCH_TOL.  Where every row is ignored PyTorch's mean is NaN (xent's 0): the value must be
    NaN there and the gradients 0 (the chunked path's are NaN: allowed there, and reported).
    Returns the names of the paths checked."""
    if not torch_lce_applies(c):
        return []
    t = torch.from_numpy(c.target) if c.classes else glf.t64(c.target)
    names = []
    for name, fn in torch_paths(c):
        for r in ("mean", "sum", "none"):
            H, W, b = leaves(c, True)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no silent fallback from the chunked path
                out = fn(H, W, b, t, r)
                (out.sum() if r == "none" else out).backward()
            got = out.detach().numpy()
            want = exp["none"] if r == "none" else np.float64(exp[r])
            if r == "mean" and exp["torch_mean_is_nan"]:
                assert np.isnan(got), (c.name, name, got)
            else:
                diff = np.abs(got - want).max()
                assert diff < TORCH_TOL, f"{c.name} {name} {r}: value differs by {diff}"
                stats["value"] = max(stats["value"], diff)
            for tname, x in zip(TENSORS, (H, W, b)):
                if x is None:
                    continue
                g = x.grad.numpy()
                if r == "mean" and exp["torch_mean_is_nan"] and not np.all(np.isfinite(g)):
                    # Only the chunked path, whose mean gradient is NaN there (2.15.0).
                    assert "chunked" in name, (c.name, name, tname, "NaN mean gradient")
                    stats["nan_mean_grads"].add(name)
                    continue
                diff = np.abs(g - grads[r][tname]).max()
                assert diff < TORCH_TOL, f"{c.name} {name} {r} grad {tname}: differs by {diff}"
                stats["grad"] = max(stats["grad"], diff)
            stats["compared"] += 1
        names.append(name)
    return names


# --- finite differences ------------------------------------------------------------------------


def fd_check(c: LCase, grads: dict, stats: dict) -> None:
    """A float64 central difference of the forward, on FD_ELEMENTS random elements of each of
    H, W and b per reduction, differencing the unreduced terms (gen_loss_fixtures' "parts")
    so that the rounding of the whole sum does not swamp it.  Step 1e-6 max(1, |x|)."""
    rng = np.random.default_rng([glf.BASE_SEED, zlib.crc32(("grad:" + c.name).encode("utf-8"))])
    base = [c.h.astype(np.float64), c.w.astype(np.float64),
            None if c.bias is None else c.bias.astype(np.float64)]

    def parts(arrays, r):
        with torch.no_grad():
            ts = [None if a is None else torch.from_numpy(a) for a in arrays]
            return forward(c, *ts)["parts"][r]

    for r in REDUCTIONS:
        for k, tname in enumerate(TENSORS):
            if base[k] is None:
                continue
            flat = base[k].reshape(-1)
            picks = rng.choice(flat.size, size=min(FD_ELEMENTS, flat.size), replace=False)
            for e in np.sort(picks):
                x0 = flat[e]
                h = 1e-6 * max(1.0, abs(x0))
                plus, minus = [list(base), list(base)]
                plus[k] = base[k].copy()
                minus[k] = base[k].copy()
                plus[k].reshape(-1)[e] += h
                minus[k].reshape(-1)[e] -= h
                diff = sum(coef * (tp - tm).sum().item()
                           for (tp, coef), (tm, _) in zip(parts(plus, r), parts(minus, r)))
                fd = diff / (plus[k].reshape(-1)[e] - minus[k].reshape(-1)[e])
                g = grads[r][tname].reshape(-1)[e]
                err = abs(g - fd)
                scale = max(abs(g), abs(fd))
                rel = err / scale if scale > 0 else 0.0
                assert err <= FD_ABS or rel <= FD_REL, (
                    f"{c.name} grad_{tname}_{r}[{e}]: autograd {g!r}, finite difference {fd!r}")
                stats["checked"] += 1
                where = f"{c.name} grad_{tname}_{r}[{e}]"
                if rel <= FD_REL:
                    stats["worst_rel"] = max(stats["worst_rel"], (rel, where))
                else:  # passed on the absolute bound only
                    stats["worst_abs"] = max(stats["worst_abs"], (err, where))


# --- writing ---------------------------------------------------------------------------------


README = """\
# Linear cross-entropy fixtures

Written by `scripts/gen_linear_fixtures.py` (rerun: `python3 scripts/gen_linear_fixtures.py`;
deterministic, it deletes and rewrites this folder). Each case is cross-entropy on the logits
Z = H·Wᵀ + b, H `[N, D]` hidden states, W `[V, D]` head weight, b `[V]` optional bias, with the
options of xent's cross-entropy on logits exactly as in `tests/fixtures/losses/README.md`
(formulas 1 and 2 there, with x = Z, B = N, C = V): the generator applies
`scripts/gen_loss_fixtures.py`'s own forward to `F.linear(H, W, b)`.

Reference values are PyTorch's, in float64, on the stored values upcast to float64; the
gradients of H, W and b are by torch autograd in float64. They are checked against PyTorch's
`F.linear_cross_entropy` (reference and chunked paths) and `F.cross_entropy(F.linear(...))`
where those have the options (within 1e-10), against central finite differences, and on
read-back against an independent numpy float64 computation (1e-9 relative or 1e-12 absolute).

## Files per case folder

- `hidden.npy` `[N, D]`, `weight.npy` `[V, D]`: C order, little-endian, float32 (`<f4`), or
  float16 (`<f2`) in `*_f16_*` cases.
- `hidden.safetensors`, `weight.safetensors`: instead of the two above in `*_bf16_*` cases
  (`.npy` has no bfloat16): each holds one BF16 tensor, named `hidden` `[N, D]` / `weight`
  `[V, D]`, the values rounded to nearest (ties to even) by torch.
- `bias.npy` (when `has_bias`): float32 `[V]`, whatever the dtype of H and W.
- `target.npy`: int64 `[N]` class indices in [0, V) or `ignore_index` (`target_kind`
  "classes"), or float32 `[N, V]` soft-target distributions ("soft": rows sum to 1 within
  1e-5, not renormalized after the float32 rounding; the values use them as stored).
- `target_i32.npy` (class targets only): the same indices as int32 (`<i4`) `[N]`.
- `class_weight.npy` (when `has_class_weight`): float32 `[V]` class weights in [0.2, 2.0].
- `grad_hidden_<r>.npy` `[N, D]`, `grad_weight_<r>.npy` `[V, D]`, `grad_bias_<r>.npy` `[V]`
  (only when `has_bias`), for r in mean, sum, none, batchmean: float64 (`<f8`), C order,
  d(loss_r)/dH, dW, db by autograd in float64 with the stored values upcast to float64 as the
  leaves. For `none`, of the sum of the unreduced values (so they equal the `sum` files).
- `case.json`:

```
{"loss": "linear-cross-entropy",
 "n": N, "d": D, "v": V,
 "dtype": "float32" | "float16" | "bfloat16",      <- of H and W
 "has_bias": bool, "has_class_weight": bool,
 "target_kind": "classes" | "soft",
 "ignore_index": int, "label_smoothing": float, "z_loss": float,
 "softcap": float | null, "base": "e" | "2" | "10",
 "valid_rows": int,
 "expected": {"mean": x, "sum": x, "batchmean": x, "none": [N values], "none_shape": [N]},
 "lse": [N values],
 "files": {"hidden": "hidden.npy" | "hidden.safetensors",
           "weight": "weight.npy" | "weight.safetensors",
           "bias": "bias.npy" | null, "target": "target.npy",
           "target_i32": "target_i32.npy" | null, "class_weight": "class_weight.npy" | null},
 "grad_files": {"<r>": {"hidden": "grad_hidden_<r>.npy", "weight": "grad_weight_<r>.npy",
                        "bias": "grad_bias_<r>.npy" | null}, ... for mean, sum, none, batchmean},
 "grad_dtype": "float64",
 "torch_checked_against": [names of the PyTorch functions compared, [] where none applies],
 "torch_mean_is_nan": true,          <- only when every row is ignored
 "torch_grad_mean_is_nan": true}     <- only if autograd's mean gradient were NaN (none is)
```

Defaults: `ignore_index` -100, `label_smoothing` 0, `z_loss` 0, `softcap` null, `base` "e".
Floats are shortest round-trip; no fixture has a non-finite number.

## Values

Z = H Wᵀ + b in float64; Z' = softcap·tanh(Z/softcap) with softcap, else Z. `lse` is each
row's natural-log logsumexp of Z' (given for every row, ignored or not; no base applied).
`expected` is cross-entropy on Z exactly as the losses fixtures define it (there with x = Z):
with class targets, ignored rows count 0 and the z-loss (z_loss·lse², not divided by ln base)
only on valid rows; mean = Σ ce / (ln base · Σ_valid w[y]) + Σ zl / valid_rows; sum; batchmean
= sum / N. With soft targets mean = batchmean = sum / N. When every row is ignored
(`lce_all_ignored_4x6x5`) xent's mean is 0 and so are its mean gradients. PyTorch's mean is
NaN there (`"torch_mean_is_nan": true`); the gradient of that NaN mean is 0 by autograd on the
reference path (`F.cross_entropy`, `F.linear_cross_entropy` with `options=None`) but NaN on the
chunked path (`LinearCrossEntropyOptions`), in H, W and b alike (PyTorch 2.15.0).

## Gradients

With G = d(loss_r)/dZ (`tests/fixtures/losses/README.md`, "Gradients", for logits):
dH = G·W `[N, D]`, dW = Gᵀ·H `[V, D]`, db = Σ_rows G `[V]`. Ignored rows have dH = 0.
Compare small elements with an absolute tolerance scaled by the file's largest magnitude
(dW sums over rows and cancels).

## Cases

Sizes are off every tile (1x1x1, 3x5x7, 17x33x65, 37x19x257; odd D 37 and 45 in the 16-bit
cases, so that rows straddle 32-bit words), plus one larger 64x32x1000 (at D = 128 its four
float64 `grad_weight` files alone would take 4 MB). Logits are about N(0, 2²) (H ~ N(0, 1),
W ~ N(0, (2/√D)²), b ~ N(0, 0.5²)), N(0, 20²) in the softcap cases, N(0, 300²) in
`lce_extreme_16x24x65` (logits up to about 1e3; its even rows target their largest logit, so
their loss is about 0). Each option alone, all of them at once (`lce_all_options_23x29x71`,
`lce_soft_all_options_9x17x33`), every row ignored, a non-default ignore_index (3), float16
and bfloat16 H and W with and without a bias. `lce_i32_*` is meant for the int32 targets, but
every class-target case has `target_i32.npy`. `lce_1x1x1` has one class: its cross-entropy
and gradients are 0; `lce_bias_zloss_1x1x1` adds the z-loss, whose gradient is not.
`torch_checked_against` in each `case.json` names what PyTorch itself agreed with (values and
gradients within 1e-10): "F.linear_cross_entropy" (`options=None`, the reference path),
"F.linear_cross_entropy chunked" (`options=LinearCrossEntropyOptions()`), "... chunked 3 rows"
(`LinearCrossEntropyOptions(batch_chunk_size=3, chunking_method=None)`) and
"F.cross_entropy(F.linear)". PyTorch 2.15.0's signature is
`F.linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
reduction='mean', ignore_index=None, label_smoothing=0.0, options=None)`: no z-loss, softcap,
base or batchmean, and its chunked path takes no label smoothing (it falls back to the
reference path with a warning).
"""


def save_npy(path: Path, a: np.ndarray, dtype: str) -> None:
    np.save(path, np.ascontiguousarray(a, dtype=dtype))


def grad_files(has_bias: bool) -> dict:
    return {r: {"hidden": f"grad_hidden_{r}.npy", "weight": f"grad_weight_{r}.npy",
                "bias": f"grad_bias_{r}.npy" if has_bias else None} for r in REDUCTIONS}


def input_files(c: LCase) -> dict:
    ext = "safetensors" if c.dtype == "bfloat16" else "npy"
    return {"hidden": f"hidden.{ext}", "weight": f"weight.{ext}",
            "bias": "bias.npy" if c.bias is not None else None, "target": "target.npy",
            "target_i32": "target_i32.npy" if c.classes else None,
            "class_weight": "class_weight.npy" if c.class_weight is not None else None}


def validate(c: LCase) -> None:
    n, d = c.h.shape
    v = c.w.shape[0]
    assert c.w.shape == (v, d), c.name
    want = {"float32": np.float32, "float16": np.float16, "bfloat16": np.float32}[c.dtype]
    assert c.h.dtype == want and c.w.dtype == want, c.name
    assert ("_f16_" in c.name) == (c.dtype == "float16"), c.name
    assert ("_bf16_" in c.name) == (c.dtype == "bfloat16"), c.name
    if c.dtype == "bfloat16":
        for a in (c.h, c.w):
            assert np.array_equal(glf.round16(a, "bf16"), a), c.name
    if c.bias is not None:
        assert c.bias.dtype == np.float32 and c.bias.shape == (v,)
    if c.class_weight is not None:
        assert c.class_weight.dtype == np.float32 and c.class_weight.shape == (v,)
    if c.classes:
        assert c.target.dtype == np.int64 and c.target.shape == (n,)
        t = c.target
        assert np.all((t == c.ignore_index) | ((t >= 0) & (t < v))), c.name
    else:
        assert c.target.dtype == np.float32 and c.target.shape == (n, v)
        assert c.ignore_index == DEFAULT_IGNORE


def write_case(c: LCase, stats: dict) -> None:
    validate(c)
    n, d = c.h.shape
    v = c.w.shape[0]
    exp = torch_expected(c)
    grads, grad_nan = torch_grads(c)
    checked = check_against_torch(c, exp, grads, stats["torch"])
    fd_check(c, grads, stats["fd"])
    none_list = [glf.jnum(x) for x in exp["none"].tolist()]
    lse_list = [glf.jnum(x) for x in exp["lse"].tolist()]
    for x in [exp["mean"], exp["sum"], exp["batchmean"], *none_list, *lse_list]:
        assert isinstance(glf.jnum(x), float), f"{c.name}: non-finite value {x}"
    doc = {
        "loss": "linear-cross-entropy",
        "n": n, "d": d, "v": v,
        "dtype": c.dtype,
        "has_bias": c.bias is not None,
        "has_class_weight": c.class_weight is not None,
        "target_kind": "classes" if c.classes else "soft",
        "ignore_index": c.ignore_index,
        "label_smoothing": c.label_smoothing,
        "z_loss": c.z_loss,
        "softcap": c.softcap,
        "base": c.base,
        "valid_rows": exp["valid_rows"],
        "expected": {"mean": glf.jnum(exp["mean"]), "sum": glf.jnum(exp["sum"]),
                     "batchmean": glf.jnum(exp["batchmean"]), "none": none_list,
                     "none_shape": [n]},
        "lse": lse_list,
        "files": input_files(c),
        "grad_files": grad_files(c.bias is not None),
        "grad_dtype": "float64",
        "torch_checked_against": checked,
    }
    if exp["torch_mean_is_nan"]:
        doc["torch_mean_is_nan"] = True
    if grad_nan:
        doc["torch_grad_mean_is_nan"] = True

    dd = OUT_DIR / c.name
    dd.mkdir(parents=True)
    files = doc["files"]
    if c.dtype == "bfloat16":
        for key, a in (("hidden", c.h), ("weight", c.w)):
            save_file({key: torch.from_numpy(a).to(torch.bfloat16)}, dd / files[key])
    else:
        code = "<f2" if c.dtype == "float16" else "<f4"
        save_npy(dd / files["hidden"], c.h, code)
        save_npy(dd / files["weight"], c.w, code)
    if c.bias is not None:
        save_npy(dd / files["bias"], c.bias, "<f4")
    if c.classes:
        save_npy(dd / files["target"], c.target, "<i8")
        save_npy(dd / files["target_i32"], c.target, "<i4")
    else:
        save_npy(dd / files["target"], c.target, "<f4")
    if c.class_weight is not None:
        save_npy(dd / files["class_weight"], c.class_weight, "<f4")
    for r in REDUCTIONS:
        for tname, fname in doc["grad_files"][r].items():
            if fname is not None:
                save_npy(dd / fname, grads[r][tname], "<f8")
    with open(dd / "case.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, allow_nan=False)
        f.write("\n")


# --- independent verification (numpy only, no torch) ------------------------------------------


def load_bf16(path: Path, name: str, want_shape: tuple[int, int]) -> np.ndarray:
    """The one BF16 tensor ``name`` of a .safetensors file, read by hand (no torch, no
    safetensors package); each value is the high 16 bits of a float32."""
    raw = path.read_bytes()
    k = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + k].decode("utf-8"), parse_constant=glf.reject_constant)
    size = 2 * want_shape[0] * want_shape[1]
    want = {name: {"dtype": "BF16", "shape": list(want_shape), "data_offsets": [0, size]}}
    assert header == want, f"{path}: header {header}, want {want}"
    assert len(raw) == 8 + k + size, f"{path}: {len(raw)} bytes"
    bits = np.frombuffer(raw[8 + k:], dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32).reshape(want_shape)


def loss_doc(doc: dict) -> dict:
    """The case.json keys gen_loss_fixtures' numpy formulas read."""
    return dict(loss=CE, input_kind=LOGITS, base=doc["base"], z_loss=doc["z_loss"],
                softcap=doc["softcap"], label_smoothing=doc["label_smoothing"],
                ignore_index=doc["ignore_index"])


def verify_case(dd: Path) -> tuple:
    name = dd.name
    doc = json.loads((dd / "case.json").read_text(encoding="utf-8"),
                     parse_constant=glf.reject_constant)
    n, d, v = doc["n"], doc["d"], doc["v"]
    for key in ("n", "d", "v", "ignore_index", "valid_rows"):
        assert isinstance(doc[key], int), (name, key)
    dtype = doc["dtype"]
    assert ("_f16_" in name) == (dtype == "float16") and ("_bf16_" in name) == (dtype == "bfloat16")
    files = doc["files"]
    assert files["bias"] == ("bias.npy" if doc["has_bias"] else None), name
    assert files["class_weight"] == ("class_weight.npy" if doc["has_class_weight"] else None)
    expected_files = {"case.json"} | {f for f in files.values() if f}
    expected_files |= {f for g in doc["grad_files"].values() for f in g.values() if f}
    assert {p.name for p in dd.iterdir()} == expected_files, name

    if dtype == "bfloat16":
        assert files["hidden"] == "hidden.safetensors" and files["weight"] == "weight.safetensors"
        H = load_bf16(dd / files["hidden"], "hidden", (n, d))
        W = load_bf16(dd / files["weight"], "weight", (v, d))
    else:
        code = "<f2" if dtype == "float16" else "<f4"
        assert dtype in ("float16", "float32"), name
        H = glf.load_npy(dd / files["hidden"], (code,), (n, d))
        W = glf.load_npy(dd / files["weight"], (code,), (v, d))
    H, W = H.astype(np.float64), W.astype(np.float64)
    b = None
    if doc["has_bias"]:
        b = glf.load_npy(dd / "bias.npy", ("<f4",), (v,)).astype(np.float64)
    cw = None
    if doc["has_class_weight"]:
        cw = glf.load_npy(dd / "class_weight.npy", ("<f4",), (v,)).astype(np.float64)
        assert np.all((cw >= 0.2) & (cw <= 2.0))
    if doc["target_kind"] == "classes":
        t = glf.load_npy(dd / "target.npy", ("<i8",), (n,))
        t32 = glf.load_npy(dd / "target_i32.npy", ("<i4",), (n,))
        assert np.array_equal(t, t32.astype(np.int64)), name
        assert np.all((t == doc["ignore_index"]) | ((t >= 0) & (t < v))), name
    else:
        assert doc["target_kind"] == "soft" and files["target_i32"] is None
        t = glf.load_npy(dd / "target.npy", ("<f4",), (n, v)).astype(np.float64)
        assert np.all(t >= 0) and np.allclose(t.sum(axis=1), 1.0, atol=1e-5)

    # Values.
    z = H @ W.T + (b if b is not None else 0.0)
    ld = loss_doc(doc)
    ref = glf.numpy_expected(ld, z, t, cw, None)
    exp = doc["expected"]
    assert ref.get("valid_rows", n) == doc["valid_rows"], name
    assert doc.get("torch_mean_is_nan", False) == (doc["valid_rows"] == 0), name
    assert "torch_grad_mean_is_nan" not in doc, name
    assert exp["none_shape"] == [n] and len(exp["none"]) == n and len(doc["lse"]) == n
    zp = doc["softcap"] * np.tanh(z / doc["softcap"]) if doc["softcap"] is not None else z
    m = zp.max(axis=1)
    lse = m + np.log(np.exp(zp - m[:, None]).sum(axis=1))
    pairs = [(exp[k], ref[k], k) for k in ("mean", "sum", "batchmean")]
    pairs += [(a, r, f"none[{j}]") for j, (a, r) in enumerate(zip(exp["none"], ref["none"]))]
    pairs += [(a, r, f"lse[{j}]") for j, (a, r) in enumerate(zip(doc["lse"], lse))]
    worst = 0.0
    for got, want, what in pairs:
        assert isinstance(got, float), (name, what, got)
        assert glf.close(got, want), f"{name} {what}: json {got!r} vs numpy {want!r}"
        worst = max(worst, abs(got - want) / max(abs(got), abs(want), 1e-300))

    # Gradients: G = dloss/dZ, dH = G W, dW = Gᵀ H, db = Σ_rows G.
    assert doc["grad_dtype"] == "float64"
    assert doc["grad_files"] == grad_files(doc["has_bias"]), name
    G = glf.numpy_grads(ld, z, t, cw, None)
    shapes = dict(hidden=(n, d), weight=(v, d), bias=(v,))
    gworst = 0.0
    g = {}
    for r in REDUCTIONS:
        want = dict(hidden=G[r] @ W, weight=G[r].T @ H, bias=G[r].sum(axis=0))
        for tname, fname in doc["grad_files"][r].items():
            if fname is None:
                continue
            a = glf.load_npy(dd / fname, ("<f8",), shapes[tname])
            assert np.all(np.isfinite(a)), (name, fname)
            big = np.abs(a).max()
            diff = np.abs(a - want[tname])
            ok = (diff <= 1e-9 * np.abs(want[tname])) | (diff <= 1e-12 * big)
            assert np.all(ok), f"{name} {fname}: numpy disagrees at {np.argwhere(~ok)[:5].tolist()}"
            if big > 0:
                gworst = max(gworst, diff.max() / big)
            g[r, tname] = a
    for tname in TENSORS:
        if ("sum", tname) not in g:
            continue
        s = g["sum", tname]
        tol = 1e-12 * max(np.abs(s).max(), 1e-300)
        assert np.abs(g["none", tname] - s).max() <= tol, (name, tname, "grad none != grad sum")
        assert np.abs(g["batchmean", tname] * n - s).max() <= tol * n, (name, tname)
        if doc["target_kind"] == "soft":
            assert np.abs(g["mean", tname] * n - s).max() <= tol * n, (name, tname)
    if doc["target_kind"] == "classes":
        ignored = t == doc["ignore_index"]
        for r in REDUCTIONS:
            assert np.all(g[r, "hidden"][ignored] == 0), (name, r, "ignored row with a gradient")
        if doc["valid_rows"] == 0:
            assert all(np.all(a == 0) for (r, _), a in g.items() if r == "mean"), name

    opts = []
    if doc["valid_rows"] < n:
        opts.append(f"ignored={n - doc['valid_rows']}")
    if doc["ignore_index"] != DEFAULT_IGNORE:
        opts.append(f"ii={doc['ignore_index']}")
    if doc["has_class_weight"]:
        opts.append("weight")
    if doc["label_smoothing"]:
        opts.append(f"eps={doc['label_smoothing']}")
    if doc["z_loss"]:
        opts.append(f"z={doc['z_loss']}")
    if doc["softcap"] is not None:
        opts.append(f"softcap={doc['softcap']:g}")
    if doc["base"] != "e":
        opts.append(f"base={doc['base']}")
    torch_short = {"F.linear_cross_entropy": "lce", "F.linear_cross_entropy chunked": "chunked",
                   "F.linear_cross_entropy chunked 3 rows": "chunked3",
                   "F.cross_entropy(F.linear)": "ce(linear)"}
    checked = ",".join(torch_short[p] for p in doc["torch_checked_against"]) or "-"
    row = (name, dtype, f"{n}x{d}x{v}", "yes" if doc["has_bias"] else "no", doc["target_kind"],
           " ".join(opts), f"{np.abs(np.asarray(z)).max():.3g}", checked, f"{exp['mean']:.6g}")
    return row, worst, gworst


def verify_all(names: list[str]) -> list[tuple]:
    found = sorted(p.name for p in OUT_DIR.iterdir() if p.is_dir())
    assert found == sorted(names), (found, names)
    rows, worst, gworst = [], 0.0, 0.0
    for name in names:
        row, w, g = verify_case(OUT_DIR / name)
        rows.append(row)
        worst, gworst = max(worst, w), max(gworst, g)
    print(f"numpy re-check: every value and lse agrees (largest relative difference {worst:.2e}; "
          f"each within 1e-9 relative or 1e-12 absolute); every gradient file agrees with "
          f"G·W, Gᵀ·H, Σ G (largest difference {gworst:.2e} of the file's largest magnitude)")
    return rows


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    torch.set_num_threads(1)  # the same float64 sums, in the same order, every run
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    assert hasattr(F, "linear_cross_entropy"), "needs PyTorch >= 2.13 (F.linear_cross_entropy)"
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    (OUT_DIR / "README.md").write_text(README, encoding="utf-8")
    stats = dict(torch=dict(value=0.0, grad=0.0, compared=0, nan_mean_grads=set()),
                 fd=dict(checked=0, worst_rel=(0.0, ""), worst_abs=(0.0, "")))
    for name, make in CASES.items():
        c = make(rng_for(name))
        c.name = name
        write_case(c, stats)
    ts = stats["torch"]
    print(f"PyTorch check: {ts['compared']} (case, implementation, reduction) comparisons with "
          f"F.linear_cross_entropy (reference and chunked paths) and F.cross_entropy(F.linear); "
          f"largest difference: values {ts['value']:.2e}, gradients {ts['grad']:.2e} "
          f"(limit {TORCH_TOL:g})")
    if ts["nan_mean_grads"]:
        print(f"  NaN mean gradients with every row ignored (xent's are 0) from: "
              f"{', '.join(sorted(ts['nan_mean_grads']))}")
    fd = stats["fd"]
    print(f"finite differences: {fd['checked']} elements of H, W, b agree with autograd "
          f"within {FD_REL:g} relative or {FD_ABS:g} absolute (largest relative error "
          f"{fd['worst_rel'][0]:.2e}, {fd['worst_rel'][1]}; largest absolute error of those "
          f"passing on the absolute bound only {fd['worst_abs'][0]:.2e}, {fd['worst_abs'][1]})")

    rows = verify_all(list(CASES))
    headers = ("case", "dtype", "NxDxV", "bias", "target", "options", "max|Z|", "torch", "mean")
    table = [headers] + rows
    widths = [max(len(str(r[i])) for r in table) for i in range(len(headers))]
    for k, r in enumerate(table):
        print("  ".join(str(x).ljust(wd) for x, wd in zip(r, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * wd for wd in widths))
    total = sum(p.stat().st_size for p in OUT_DIR.rglob("*") if p.is_file())
    print(f"{len(rows)} cases, {total} bytes in {OUT_DIR.relative_to(ROOT)}")
    assert total < MAX_TOTAL_BYTES, f"fixtures too large: {total} bytes"


if __name__ == "__main__":
    main()
