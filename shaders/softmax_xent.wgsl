// Softmax cross-entropy over [rows, classes] f32 logits with class-index targets.
//
// This file holds what every variant shares: the bindings, the online (max, sum-exp) scan of a
// row, and the per-row epilogue. The entry point that reduces a row over a whole workgroup lives in
// a variant file (softmax_xent_workgroup.wgsl or softmax_xent_subgroup.wgsl) that the host joins
// with this one, so that subgroup operations only reach adapters that have them.

struct Params {
    // Rows in this chunk.
    rows: u32,
    classes: u32,
    // Index of this chunk's first row in the whole batch, for targets and per-row outputs.
    row_base: u32,
    _pad: u32,
}

// Marks a row whose target equals ignore_index: its loss is 0 and it is not counted.
const IGNORED: u32 = 0xffffffffu;
// The max of an empty run: the lowest finite f32, so that exp(EMPTY - EMPTY) stays finite. A row of
// only -inf logits keeps max EMPTY and sum 0, and so gets lse -inf.
const EMPTY: f32 = -3.40282347e38;

@group(0) @binding(0) var<uniform> params: Params;
// The chunk's logits, row-major, read as vec4 words. Row starts need not be word aligned: the scan
// masks the words at either end of a row.
@group(0) @binding(1) var<storage, read> logits: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_lse: array<f32>;

// Rows handled by one thread each in `row_per_thread`.
override ROWS_PER_GROUP: u32 = 64u;

// Merges two running (max, sum of exp(x - max)) pairs. An empty pair is (EMPTY, 0).
fn combine(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let m = max(a.x, b.x);
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

// One invocation's running (max, sum-exp) over the words lane, lane + lanes, ... of a row.
fn scan_row(row: u32, lane: u32, lanes: u32) -> vec2<f32> {
    let start = row * params.classes;
    let end = start + params.classes;
    let first_word = start / 4u;
    let last_word = (end + 3u) / 4u;
    var m = EMPTY;
    var s = 0.0;
    for (var w = first_word + lane; w < last_word; w += lanes) {
        let idx = vec4<u32>(w * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
        let inside = (idx >= vec4<u32>(start)) & (idx < vec4<u32>(end));
        let v = select(vec4<f32>(EMPTY), logits[w], inside);
        let new_m = max(m, max(max(v.x, v.y), max(v.z, v.w)));
        let e = exp(v - vec4<f32>(new_m)) * select(vec4<f32>(0.0), vec4<f32>(1.0), inside);
        s = s * exp(m - new_m) + ((e.x + e.y) + (e.z + e.w));
        m = new_m;
    }
    return vec2<f32>(m, s);
}

// Writes lse and loss = lse - x[target] for a chunk row whose (max, sum-exp) is complete.
fn finish_row(row: u32, stats: vec2<f32>) {
    let lse = stats.x + log(stats.y);
    let global_row = params.row_base + row;
    let target_class = targets[global_row];
    var loss = 0.0;
    if target_class != IGNORED {
        let flat = row * params.classes + target_class;
        loss = lse - logits[flat / 4u][flat % 4u];
    }
    row_loss[global_row] = loss;
    row_lse[global_row] = lse;
}

// Workgroup index on a 2-D grid, so that batches of more than 65 535 groups can be dispatched.
fn group_index(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.y * groups.x + wg.x;
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
    finish_row(row, scan_row(row, 0u, 1u));
}
