// The row kernels' params and specializations: the `Params` each pass reads at its dynamic offset
// (mirrored by `Params` in src/gpu/rows.rs), and the override constants that the host sets per
// pipeline.

struct Params {
    // Rows in this chunk.
    rows: u32,
    classes: u32,
    // Index of this chunk's first row in the whole batch, for class targets and row outputs.
    row_base: u32,
    // Segments per row, for the split-row entry points.
    segments: u32,
    label_smoothing: f32,
    z_loss: f32,
    softcap: f32,
    // Scale of the main loss term (1 / ln(base), and the reduction's divisor).
    main_scale: f32,
    // Scale of the z-loss term (the reduction's divisor).
    z_scale: f32,
    // Quads per segment: the last segment of a row may be shorter, or empty.
    segment_quads: u32,
    // C of the whole row, which label smoothing spreads ε over: `classes` except in a vocabulary
    // shard (SHARD in cross_entropy.wgsl).
    total_classes: u32,
    _pad: u32,
}

// The input's kind, one of LOGITS, PROBS and LOG_PROBS (in the prelude).
override INPUT_KIND: u32 = LOGITS;
// The input's element type, one of F32, F16 and BF16 (in the prelude): 16-bit values come two to
// a u32 word, the first in the low half.
override INPUT_DTYPE: u32 = F32;
override HAS_WEIGHT: bool = false;
override HAS_POS_WEIGHT: bool = false;
override SOFTCAP: bool = false;
override CLASS_TARGETS: bool = true;
override LOG_TARGET: bool = false;
override GRAD: bool = false;
override GRAD_IN_PLACE: bool = false;
// The reduction's scales come from `scales`, written on the device, instead of the params.
override DEVICE_SCALES: bool = false;
override GRAD_PACKED: bool = false;
// A vocabulary shard's pass (cross-entropy only; see cross_entropy.wgsl).
override SHARD: bool = false;
// Each row's statistics are kept in `partials` (at row · segments) for a later pass: KL's
// `elementwise`, which needs log q = (x - m) - log s to the last bit, not x - an f32 lse.
override KEEP_STATS: bool = false;
// Rows handled by one invocation each in `row_per_invocation`.
override ROWS_PER_GROUP: u32 = 64u;
// Quads handled by one workgroup of a family's `elementwise` entry point.
override ELEMENTWISE_GROUP: u32 = 64u;
// Invocations of a workgroup that shares one row, or one segment of a row.
override WORKGROUP: u32 = 256u;

// The bits of the NaN that a row of a BAD target gets.
const NAN_BITS: u32 = 0x7fc00000u;

// The scale of the main loss term (`Scales::main` on the host), and of the z-loss term
// (`Scales::z_loss`).
fn main_scale() -> f32 {
    if DEVICE_SCALES {
        return scales[0];
    }
    return params.main_scale;
}

fn z_scale() -> f32 {
    if DEVICE_SCALES {
        return scales[1];
    }
    return params.z_scale;
}
