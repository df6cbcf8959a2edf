// The row kernels' entry points that both reduction variants share, and how a module of them is
// made. A module is, in order: the prelude that src/gpu/shaders.rs writes (the constants shared
// with the host, and the binding declarations of src/gpu/bindings.rs); rows_params.wgsl,
// rows_load.wgsl, rows_stats.wgsl, rows_grad.wgsl and this file; one reduction variant
// (rows_workgroup.wgsl or rows_subgroup.wgsl); and one loss family (cross_entropy.wgsl,
// kl_div.wgsl, entropy.wgsl, bce.wgsl), which supplies `add_quad` (fold four elements into the
// statistics), `finish_row` (write the row's value) and `grad_quad` (the gradient of four
// elements, given the row's statistics).
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
fn row_per_invocation(
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
