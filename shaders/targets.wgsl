// Class targets that live on the device: `encode_targets` checks and encodes them for the row
// kernels, and `device_scales` turns their weights and counts into the mean's scales, so that a
// call on device data needs no host round trip. A module is the prelude that src/gpu/shaders.rs
// writes (the constants shared with the host, and the binding declarations of
// src/gpu/bindings.rs), exact_sum.wgsl, and this file.

struct Params {
    rows: u32,
    // C of a whole row: the targets' range.
    classes: u32,
    // ignore_index as an i64, in two's-complement halves.
    ignore_lo: u32,
    ignore_hi: u32,
    // ln of the log base, which the main term is divided by: an f64's bits, low word first.
    ln_lo: u32,
    ln_hi: u32,
    // The classes the input holds, [first, first + held): all of them, or a vocabulary shard's.
    first: u32,
    held: u32,
}

// The targets are i64 (two u32 words each, low first), else i32.
override TARGET_I64: bool = true;
override HAS_WEIGHT: bool = false;

// Row r's target as an i64's two words, low first (an i32 sign-extended).
fn target_of(row: u32) -> vec2<u32> {
    if TARGET_I64 {
        return vec2<u32>(raw[2u * row], raw[2u * row + 1u]);
    }
    let lo = raw[row];
    return vec2<u32>(lo, select(0u, 0xffffffffu, (lo & 0x80000000u) != 0u));
}

@compute @workgroup_size(TARGETS_WORKGROUP)
fn encode_targets(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (wg.y * groups.x + wg.x) * TARGETS_WORKGROUP + lid;
    if row >= params.rows {
        return;
    }
    let value = target_of(row);
    let lo = value.x;
    let hi = value.y;
    var code = lo;
    var w = 0u;
    var counted = 0u;
    if lo == params.ignore_lo && hi == params.ignore_hi {
        code = IGNORED;
    } else if hi == 0u && lo < params.classes {
        // Wraps past `held` below `first`.
        code = lo - params.first;
        if code < params.held {
            // 1.0's bits.
            w = 0x3f800000u;
            if HAS_WEIGHT {
                w = weight[code];
            }
        } else {
            code = ELSEWHERE;
        }
        counted = 1u;
    } else {
        code = BAD;
        atomicMin(&status[0], row);
    }
    encoded[row] = code;
    counts[row] = w;
    counts[params.rows + row] = counted;
}

// Each invocation's exact sum of its rows' weights (exact_sum.wgsl), then all of them.
var<workgroup> sums: array<array<u32, WORDS>, TARGETS_WORKGROUP>;
var<workgroup> counted_rows: atomic<u32>;

// One workgroup, after `encode_targets`: Σ w_y and the counted rows, both exactly, then the
// scales as the f32 nearest their exact values (but within 2^-37 of a rounding midpoint), by the
// same steps as the host (src/request/exact_sum.rs). With no row counted both are 0 (the mean of nothing is
// 0); with Σ w_y = 0 over counted rows the main scale is inf, and the mean NaN, as in PyTorch. It
// also copies the first out-of-range target into `status`, sign-extended from i32.
@compute @workgroup_size(TARGETS_WORKGROUP)
fn device_scales(@builtin(local_invocation_index) lid: u32) {
    var mine: array<u32, WORDS>;
    var counted = 0u;
    for (var r = lid; r < params.rows; r += TARGETS_WORKGROUP) {
        add_weight(&mine, counts[r]);
        counted += counts[params.rows + r];
    }
    sums[lid] = mine;
    // Workgroup memory starts undefined (the pipelines skip its zeroing).
    if lid == 0u {
        atomicStore(&counted_rows, 0u);
    }
    workgroupBarrier();
    atomicAdd(&counted_rows, counted);
    workgroupBarrier();
    for (var stride = TARGETS_WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            sums[lid] = add_sums(sums[lid], sums[lid + stride]);
        }
        workgroupBarrier();
    }
    if lid == 0u {
        let bad = atomicLoad(&status[0]);
        if bad != 0xffffffffu {
            let value = target_of(bad);
            atomicStore(&status[1], value.x);
            atomicStore(&status[2], value.y);
        }
        let n = atomicLoad(&counted_rows);
        var rows: array<u32, WORDS>;
        add_at(&rows, n, ONE_AT);
        let any = n > 0u;
        scales[0] = select(0.0, reciprocal(sums[0], vec2<u32>(params.ln_lo, params.ln_hi)), any);
        // ln = 1.0 as an f64.
        scales[1] = select(0.0, reciprocal(rows, vec2<u32>(0u, 0x3ff00000u)), any);
    }
}
