// One workgroup per row, or per segment of a split row; the invocations' statistics meet in a
// fixed-order tree in workgroup memory. Used where the adapter has no subgroup operations (GL,
// for one).

var<workgroup> partial: array<Stats, 256>;

// The workgroup's statistics, from each invocation's own; every invocation gets them.
fn reduce_stats(mine: Stats, lid: u32) -> Stats {
    partial[lid] = mine;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial[lid] = merge(partial[lid], partial[lid + stride]);
        }
        workgroupBarrier();
    }
    return partial[0];
}

@compute @workgroup_size(WORKGROUP)
fn row_per_workgroup(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = group_index(wg, groups);
    if row >= params.rows {
        return;
    }
    let st = reduce_stats(scan_quads(row, row_span(row), lid, WORKGROUP), lid);
    finish_workgroup_row(row, st, lid);
}

// Split rows: the statistics of one segment of a row.
@compute @workgroup_size(WORKGROUP)
fn segment_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = row_segment(wg, groups);
    if at.z == 0u {
        return;
    }
    let st = reduce_stats(scan_quads(at.x, segment_span(at.x, at.y), lid, WORKGROUP), lid);
    if lid == 0u {
        partials[group_index(wg, groups)] = st;
    }
}
