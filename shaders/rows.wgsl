// What every row kernel shares: the bindings, input loads (f32, or f16 read packed), the running
// row statistics and how two of them merge, and the one-invocation-per-row entry point.
//
// A module is this file, one reduction variant (rows_workgroup.wgsl or rows_subgroup.wgsl), and
// one loss family (softmax_xent.wgsl, kl_div.wgsl, entropy.wgsl, bce.wgsl), which supplies
// `add_quad` (fold four elements into the statistics), `finish_row` (write the row's value) and
// `grad_quad` (the gradient of four elements, given the row's statistics).
//
// With GRAD, the same dispatch reads the row a second time, usually from cache, and writes the
// gradient of the reduced loss: to `grad_out`, or over the input itself (GRAD_IN_PLACE). It is f32,
// or with GRAD_PACKED the input's 16-bit dtype, rounded once from f32 to nearest even. A 16-bit
// word shared by two rows (odd C) is written by neither: each row leaves its edge values in
// `edges`, and `stitch_edges` writes those words once every row has been read.
//
// Split rows, for huge rows in small batches: `segment_stats` (in the variant file) gives each
// segment of a row a workgroup and writes its statistics to `partials`; `merge_segments` merges
// each row's segments in order and finishes the row; `segment_grad` writes each segment's
// gradient from the merged statistics.

struct Params {
    // Rows in this chunk.
    rows: u32,
    classes: u32,
    // Index of this chunk's first row in the whole batch, for cls targets and row outputs.
    row_base: u32,
    // Segments per row, for the split-row entry points.
    segments: u32,
    label_smoothing: f32,
    z_loss: f32,
    softcap: f32,
    // Scale of the main loss term (1 / ln(base), and the reduction's divisor).
    alpha: f32,
    // Scale of the z-loss term (the reduction's divisor).
    beta: f32,
    // Quads per segment: the last segment of a row may be shorter, or empty.
    segment_quads: u32,
    // C of the whole row, which label smoothing spreads ε over: `classes` except in a vocabulary
    // shard (SHARD in softmax_xent.wgsl).
    total_classes: u32,
    _pad: u32,
}

// Input kinds, as INPUT_KIND.
const LOGITS: u32 = 0u;
const PROBS: u32 = 1u;
const LOG_PROBS: u32 = 2u;

override INPUT_KIND: u32 = LOGITS;
// Input element types, as INPUT_DTYPE: 16-bit values come two to a u32 word, the first in the low
// half.
const F32: u32 = 0u;
const F16: u32 = 1u;
const BF16: u32 = 2u;

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
// A vocabulary shard's pass (cross-entropy only; see softmax_xent.wgsl).
override SHARD: bool = false;
// Each row's statistics are kept in `partials` (at row · segments) for a later pass: KL's
// `elementwise`, which needs log q = (x - m) - log s to the last bit, not x - an f32 lse.
override KEEP_STATS: bool = false;
// Rows handled by one invocation each in `row_per_thread`.
override ROWS_PER_GROUP: u32 = 64u;
// Quads handled by one workgroup of a family's `elementwise` entry point.
override ELEMENTWISE_GROUP: u32 = 64u;
// Invocations of a workgroup that shares one row, or one segment of a row.
override WORKGROUP: u32 = 256u;

// Marks a row whose cls target equals ignore_index.
const IGNORED: u32 = 0xffffffffu;
// Marks a row whose cls target, read on the device, is out of range: its loss and gradient are NaN.
const BAD: u32 = 0xfffffffeu;
const NAN_BITS: u32 = 0x7fc00000u;
// The max of an empty run: the lowest finite f32, so that exp(EMPTY - EMPTY) stays finite. A row
// of only -inf logits keeps max EMPTY and sum 0, and so gets lse -inf.
const EMPTY: f32 = -3.40282347e38;

@group(0) @binding(0) var<uniform> params: Params;
// The chunk's input, row-major, in 16-byte words: four f32 or eight f16 values. Row starts need
// not be word aligned: loads work on quads of four elements and mask the ends of a row.
// Writable only for the in-place gradient.
@group(0) @binding(1) var<storage, read_write> input_words: array<vec4<u32>>;
// Class targets of the whole batch.
@group(0) @binding(2) var<storage, read> class_targets: array<u32>;
// The chunk's dense targets ([rows, classes] f32), laid out as the input.
@group(0) @binding(3) var<storage, read> dense: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> pos_weight: array<f32>;
// Per-row values of the whole batch, or per-element values of the chunk for `elementwise`.
@group(0) @binding(6) var<storage, read_write> values: array<f32>;
@group(0) @binding(7) var<storage, read_write> row_lse: array<f32>;
// The chunk's gradient, row-major in the words of the input's layout (f32 bits, or packed 16-bit
// values with GRAD_PACKED), when it is not written in place.
@group(0) @binding(8) var<storage, read_write> grad_out: array<vec4<u32>>;
// Split rows: the statistics of segment s of chunk row r at r·segments + s; after
// `merge_segments`, the row's at r·segments.
@group(0) @binding(9) var<storage, read_write> partials: array<Stats>;
// With DEVICE_SCALES: the main and z-loss scales, in place of params.alpha and params.beta.
@group(0) @binding(10) var<storage, read> scales: array<f32>;
// With GRAD_PACKED: the gradient of chunk row r's first element at 2r, and of its last at 2r + 1,
// where they share a 16-bit word with another row.
@group(0) @binding(11) var<storage, read_write> edges: array<f32>;

// The scale of the main loss term, and of the z-loss term.
fn alpha() -> f32 {
    if DEVICE_SCALES {
        return scales[0];
    }
    return params.alpha;
}

fn beta() -> f32 {
    if DEVICE_SCALES {
        return scales[1];
    }
    return params.beta;
}

// Four IEEE half floats (in the low 16 bits of each lane) as f32, by their bits. unpack2x16float
// would need naga's SHADER_FLOAT16_IN_FLOAT32 capability, which not every adapter grants.
fn halves_to_f32(h: vec4<u32>) -> vec4<f32> {
    let sign = (h & vec4<u32>(0x8000u)) << vec4<u32>(16u);
    let exponent = (h >> vec4<u32>(10u)) & vec4<u32>(0x1fu);
    let mantissa = h & vec4<u32>(0x3ffu);
    let normal = sign | ((exponent + vec4<u32>(112u)) << vec4<u32>(23u)) | (mantissa << vec4<u32>(13u));
    let special = sign | vec4<u32>(0x7f800000u) | (mantissa << vec4<u32>(13u));
    // Subnormal halves are mantissa · 2^-24.
    let magnitude = vec4<f32>(mantissa) * 5.9604645e-8;
    let subnormal = select(magnitude, -magnitude, sign != vec4<u32>(0u));
    let wide = bitcast<vec4<f32>>(select(normal, special, exponent == vec4<u32>(31u)));
    return select(wide, subnormal, exponent == vec4<u32>(0u));
}

// Quad q: elements 4q .. 4q + 3 of the chunk, as f32.
fn load_quad(q: u32) -> vec4<f32> {
    if INPUT_DTYPE == F32 {
        return bitcast<vec4<f32>>(input_words[q]);
    }
    let word = input_words[q / 2u];
    let pair = select(word.xy, word.zw, (q & 1u) == 1u);
    let packed = vec4<u32>(pair.x, pair.x >> 16u, pair.y, pair.y >> 16u) & vec4<u32>(0xffffu);
    if INPUT_DTYPE == BF16 {
        // A bfloat16 is the high half of an f32.
        return bitcast<vec4<f32>>(packed << vec4<u32>(16u));
    }
    return halves_to_f32(packed);
}

// The input as the loss sees it: soft-capped when asked.
fn transform(x: vec4<f32>) -> vec4<f32> {
    if SOFTCAP {
        return params.softcap * tanh(x / params.softcap);
    }
    return x;
}

// Element i of the chunk, transformed.
fn load_element(i: u32) -> f32 {
    return transform(load_quad(i / 4u))[i % 4u];
}

// log q up to the row's lse shift: the logits themselves, log of probabilities, or log-probs.
fn log_q_unshifted(x: vec4<f32>) -> vec4<f32> {
    if INPUT_KIND == PROBS {
        return log(x);
    }
    return x;
}

fn class_weight(cls: u32) -> f32 {
    if HAS_WEIGHT {
        return weight[cls];
    }
    return 1.0;
}

// Weights of the four classes of a quad; 0 outside the row.
fn quad_weights(first_cls: vec4<u32>, inside: vec4<bool>) -> vec4<f32> {
    var w = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if inside[k] {
            w[k] = class_weight(first_cls[k]);
        }
    }
    return w;
}

fn pos_weights(first_cls: vec4<u32>, inside: vec4<bool>) -> vec4<f32> {
    var w = vec4<f32>(1.0);
    if HAS_POS_WEIGHT {
        for (var k = 0u; k < 4u; k++) {
            if inside[k] {
                w[k] = pos_weight[first_cls[k]];
            }
        }
    }
    return w;
}

// Running statistics of a row. m and s are the online max and Σ exp(x - m) of the logits, t is
// Σ exp(x - m)·(x - m); a, b and c are plain sums whose meaning each family defines.
struct Stats {
    m: f32,
    s: f32,
    t: f32,
    a: f32,
    b: f32,
    c: f32,
}

fn empty_stats() -> Stats {
    return Stats(EMPTY, 0.0, 0.0, 0.0, 0.0, 0.0);
}

// t moves to the new max m with its own s: Σ e^(x-m)(x-m) = e^(m0-m)·(t0 + (m0 - m)·s0).
fn shift_t(st: Stats, m: f32) -> f32 {
    return exp(st.m - m) * (st.t + (st.m - m) * st.s);
}

// The cross-entropy and KL families keep a = Σ v·(log q_unshifted - base) with weight b = Σ v,
// where the base is the running max for logits (0 otherwise): relative to the max, a - log(s)·b
// loses nothing where the logits and the lse are large (summed as Σ v·x, an f32 near 1e6 steps by
// 0.06, and a - lse·b cancels to noise). a moves to a new base m as t does: a + (m0 - m)·b.
fn shift_a(a: f32, b: f32, m0: f32, m: f32) -> f32 {
    if b == 0.0 || INPUT_KIND != LOGITS {
        return a;
    }
    return a + (m0 - m) * b;
}

// The base of `a`, and the lse over it (log s for logits, where the lse is m + log s).
fn a_base(st: Stats) -> f32 {
    if INPUT_KIND == LOGITS {
        return st.m;
    }
    return 0.0;
}

fn lse_over_base(st: Stats) -> f32 {
    if INPUT_KIND == LOGITS {
        return log(st.s);
    }
    return 0.0;
}

// Folds Σ v·(lq - base) and Σ v over the `live` lanes into a and b, after add_exp moved the max
// from m0.
fn add_relative(st: ptr<function, Stats>, m0: f32, v: vec4<f32>, lq: vec4<f32>, live: vec4<bool>) {
    (*st).a = shift_a((*st).a, (*st).b, m0, (*st).m);
    (*st).a += sum4(select(vec4<f32>(0.0), v * (lq - vec4<f32>(a_base(*st))), live));
    (*st).b += sum4(select(vec4<f32>(0.0), v, live));
}

fn merge(x: Stats, y: Stats) -> Stats {
    let m = max(x.m, y.m);
    let s = x.s * exp(x.m - m) + y.s * exp(y.m - m);
    let a = shift_a(x.a, x.b, x.m, m) + shift_a(y.a, y.b, y.m, m);
    return Stats(m, s, shift_t(x, m) + shift_t(y, m), a, x.b + y.b, x.c + y.c);
}

fn sum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// Folds four logits into the online (m, s), and into t when `with_t`. t is kept relative to the
// running max, t = Σ exp(x - m)·(x - m), so that entropy = log s - t / s has no cancellation.
fn add_exp(st: ptr<function, Stats>, x: vec4<f32>, inside: vec4<bool>, with_t: bool) {
    let v = select(vec4<f32>(EMPTY), x, inside);
    let m = max((*st).m, max(max(v.x, v.y), max(v.z, v.w)));
    // The sums move to a new max only when it rises, which after the first quads is rare: one
    // exp in five saved.
    var scale = 1.0;
    if m > (*st).m {
        scale = exp((*st).m - m);
    }
    let e = exp(v - vec4<f32>(m)) * select(vec4<f32>(0.0), vec4<f32>(1.0), inside);
    if with_t {
        // exp(-inf)·(-inf) would be NaN; a cls of probability 0 adds nothing.
        let own = sum4(select(vec4<f32>(0.0), e * (v - vec4<f32>(m)), e > vec4<f32>(0.0)));
        (*st).t = scale * ((*st).t + ((*st).m - m) * (*st).s) + own;
    }
    (*st).s = (*st).s * scale + sum4(e);
    (*st).m = m;
}

// The row's log-sum-exp, for logits; 0 (no shift) for the other input kinds.
fn row_lse_of(st: Stats) -> f32 {
    if INPUT_KIND == LOGITS {
        return st.m + log(st.s);
    }
    return 0.0;
}

// log q of four inputs of a row with these statistics. For logits (x - m) - log s, the max taken
// off first: x - lse would lose log s wherever m + log s rounds to m (an f32 near 1e8 steps by
// 8), and three equal maxima there would each get log q = 0 instead of -log 3.
fn log_q_of(st: Stats, x: vec4<f32>) -> vec4<f32> {
    if INPUT_KIND == LOGITS {
        return (x - vec4<f32>(st.m)) - vec4<f32>(log(st.s));
    }
    return log_q_unshifted(x);
}

// The quads [x, y) that hold chunk row `row`; the first and last may hold other rows' elements.
fn row_span(row: u32) -> vec2<u32> {
    let start = row * params.classes;
    return vec2<u32>(start / 4u, (start + params.classes + 3u) / 4u);
}

// The quads of segment `segment` of chunk row `row`.
fn segment_span(row: u32, segment: u32) -> vec2<u32> {
    let whole = row_span(row);
    let first = min(whole.x + segment * params.segment_quads, whole.y);
    return vec2<u32>(first, min(first + params.segment_quads, whole.y));
}

// Quads an invocation folds into a block's statistics before merging them into its total: the
// f32 sums then grow over at most 256 quads and over the blocks, not over a whole row (a lane may
// scan 250 000 quads of a row of a million classes alone; summed one by one, Σ exp lost about
// 1e-5 of its value there).
const SCAN_BLOCK: u32 = 256u;

// One invocation's statistics over quads span.x + lane, span.x + lane + lanes, ... of a chunk
// row, up to span.y.
fn scan_quads(row: u32, span: vec2<u32>, lane: u32, lanes: u32) -> Stats {
    let start = row * params.classes;
    let end = start + params.classes;
    var total = empty_stats();
    var q = span.x + lane;
    while q < span.y {
        var block = empty_stats();
        let block_end = q + min(span.y - q, SCAN_BLOCK * lanes);
        for (; q < block_end; q += lanes) {
            let idx = vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
            let inside = (idx >= vec4<u32>(start)) & (idx < vec4<u32>(end));
            add_quad(&block, q, transform(load_quad(q)), idx - vec4<u32>(start), inside);
        }
        total = merge(total, block);
    }
    return total;
}

// Stores u32 word k of 16-byte word w of the gradient (the input itself when in place).
fn store_word(w: u32, k: u32, bits: u32) {
    if GRAD_IN_PLACE {
        input_words[w][k] = bits;
    } else {
        grad_out[w][k] = bits;
    }
}

// The u32 word k of 16-byte word w of the gradient, as it stands.
fn stored_word(w: u32, k: u32) -> u32 {
    if GRAD_IN_PLACE {
        return input_words[w][k];
    }
    return grad_out[w][k];
}

// f32 to bfloat16 bits, rounded to nearest even; a NaN stays a (quiet) NaN.
fn to_bf16(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    if (bits & 0x7fffffffu) > 0x7f800000u {
        return (bits >> 16u) | 0x40u;
    }
    return (bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u;
}

// f32 to IEEE half bits, rounded to nearest even: overflow to inf, underflow through the
// subnormals to zero, and a NaN stays a (quiet) NaN.
fn to_f16(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    let sign = (bits >> 16u) & 0x8000u;
    let exponent = (bits >> 23u) & 0xffu;
    let mantissa = bits & 0x7fffffu;
    if exponent == 0xffu {
        return sign | 0x7c00u | select(0u, 0x200u, mantissa != 0u) | (mantissa >> 13u);
    }
    let e = i32(exponent) - 112;
    if e >= 31 {
        return sign | 0x7c00u;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mantissa | 0x800000u;
        let shift = u32(14 - e);
        let round = 1u << (shift - 1u);
        let up = (m & round) != 0u && (m & (3u * round - 1u)) != 0u;
        return sign | ((m >> shift) + u32(up));
    }
    let up = (mantissa & 0x1000u) != 0u && (mantissa & 0x2fffu) != 0u;
    return (sign | (u32(e) << 10u) | (mantissa >> 13u)) + u32(up);
}

fn to_half_bits(v: f32) -> u32 {
    if INPUT_DTYPE == BF16 {
        return to_bf16(v);
    }
    return to_f16(v);
}

// Writes the gradient of quad q of chunk row `row`: whole when the quad lies inside the row, else
// lane by lane, since the rest of the quad belongs to a neighbouring row that another invocation
// writes. Packed, a quad is two u32 words; a word half in another row is left to `stitch_edges`.
fn write_grad(row: u32, q: u32, g: vec4<f32>, inside: vec4<bool>) {
    if GRAD_PACKED {
        for (var k = 0u; k < 2u; k++) {
            let first = inside[2u * k];
            let second = inside[2u * k + 1u];
            if first && second {
                let word = to_half_bits(g[2u * k]) | (to_half_bits(g[2u * k + 1u]) << 16u);
                store_word(q / 2u, 2u * (q & 1u) + k, word);
            } else if first {
                edges[2u * row + 1u] = g[2u * k];
            } else if second {
                edges[2u * row] = g[2u * k + 1u];
            }
        }
        return;
    }
    if all(inside) {
        if GRAD_IN_PLACE {
            input_words[q] = bitcast<vec4<u32>>(g);
        } else {
            grad_out[q] = bitcast<vec4<u32>>(g);
        }
        return;
    }
    for (var k = 0u; k < 4u; k++) {
        if inside[k] {
            store_word(q, k, bitcast<u32>(g[k]));
        }
    }
}

// Writes the gradient of quads span.x + lane, span.x + lane + lanes, ... of a chunk row whose
// statistics are complete, through the soft cap's chain rule: d(c·tanh(x/c))/dx = 1 - (x'/c)².
fn grad_quads(row: u32, st: Stats, span: vec2<u32>, lane: u32, lanes: u32) {
    let start = row * params.classes;
    let end = start + params.classes;
    for (var q = span.x + lane; q < span.y; q += lanes) {
        let idx = vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
        let inside = (idx >= vec4<u32>(start)) & (idx < vec4<u32>(end));
        let x = transform(load_quad(q));
        var g = grad_quad(row, st, q, x, idx - vec4<u32>(start), inside);
        if SOFTCAP {
            let r = x / params.softcap;
            g *= 1.0 - r * r;
        }
        write_grad(row, q, g, inside);
    }
}

// The quad of an `elementwise` invocation, and 1 when it lies inside the chunk, 0 past its end.
fn element_quad(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> vec2<u32> {
    let q = group_index(wg, groups) * ELEMENTWISE_GROUP + lid;
    return vec2<u32>(q, u32(q * 4u < params.rows * params.classes));
}

// Workgroup index on a 2-D grid, so that more than 65 535 groups can be dispatched.
fn group_index(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.y * groups.x + wg.x;
}

// Finishes a row, and keeps its statistics where asked (split rows keep theirs in merge_segments).
fn finish_and_keep(row: u32, st: Stats) {
    finish_row(row, st);
    if KEEP_STATS {
        partials[row] = st;
    }
}

// A workgroup's row, once its statistics are reduced: the first invocation finishes it, and with
// GRAD every invocation writes its share of the gradient. Call it from uniform control flow.
fn finish_workgroup_row(row: u32, st: Stats, lid: u32) {
    if lid == 0u {
        finish_and_keep(row, st);
    }
    if GRAD {
        // finish_row reads the target logit, which an in-place gradient overwrites.
        workgroupBarrier();
        grad_quads(row, st, row_span(row), lid, WORKGROUP);
    }
}

// Small classes: each invocation owns one row and scans it alone, with no barriers.
@compute @workgroup_size(ROWS_PER_GROUP)
fn row_per_thread(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wg, groups) * ROWS_PER_GROUP + lid;
    if row >= params.rows {
        return;
    }
    let st = scan_quads(row, row_span(row), 0u, 1u);
    finish_and_keep(row, st);
    if GRAD {
        grad_quads(row, st, row_span(row), 0u, 1u);
    }
}

// GRAD_PACKED: an invocation per chunk row writes the 16-bit word that the row's last element
// shares with the next row's first (odd C), from both rows' edge values; after the last row, the
// word's other half is kept as it stands.
@compute @workgroup_size(ROWS_PER_GROUP)
fn stitch_edges(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wg, groups) * ROWS_PER_GROUP + lid;
    let end = (row + 1u) * params.classes;
    if row >= params.rows || (end & 1u) == 0u {
        return;
    }
    let word = (end - 1u) / 2u;
    let low = to_half_bits(edges[2u * row + 1u]);
    var high = stored_word(word / 4u, word % 4u) >> 16u;
    if row + 1u < params.rows {
        high = to_half_bits(edges[2u * row + 2u]);
    }
    store_word(word / 4u, word % 4u, low | (high << 16u));
}

// Split rows: the row and segment of a `segment_stats` or `segment_grad` workgroup, or none past
// the chunk's rows.
fn row_segment(wg: vec3<u32>, groups: vec3<u32>) -> vec3<u32> {
    let g = group_index(wg, groups);
    let row = g / params.segments;
    return vec3<u32>(row, g % params.segments, u32(row < params.rows));
}

// Split rows: each invocation merges one row's segments, in segment order, and finishes the row.
@compute @workgroup_size(ROWS_PER_GROUP)
fn merge_segments(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wg, groups) * ROWS_PER_GROUP + lid;
    if row >= params.rows {
        return;
    }
    let first = row * params.segments;
    var st = partials[first];
    for (var s = 1u; s < params.segments; s++) {
        st = merge(st, partials[first + s]);
    }
    finish_row(row, st);
    partials[first] = st;
}

// Split rows: a workgroup writes the gradient of one segment from its row's merged statistics.
@compute @workgroup_size(WORKGROUP)
fn segment_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = row_segment(wg, groups);
    if at.z == 0u {
        return;
    }
    let st = partials[at.x * params.segments];
    grad_quads(at.x, st, segment_span(at.x, at.y), lid, WORKGROUP);
}
