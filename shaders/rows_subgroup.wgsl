// One workgroup per row, or per segment of a split row; each subgroup reduces its invocations'
// statistics with subgroup operations, then every invocation merges the subgroups' statistics in
// subgroup order. Built only for devices with the SUBGROUP feature. (Naga takes subgroup
// operations without an `enable subgroups;` directive, and rejects that directive.)

var<workgroup> partial: array<Stats, 256>;

// The workgroup's statistics, from each invocation's own; every invocation gets them.
fn reduce_stats(mine: Stats, subgroup: u32, subgroups: u32, lane: u32) -> Stats {
    let m = subgroupMax(mine.m);
    let scale = exp(mine.m - m);
    let merged = Stats(
        m,
        subgroupAdd(mine.s * scale),
        subgroupAdd(shift_t(mine, m)),
        subgroupAdd(shift_a(mine.a, mine.b, mine.m, m)),
        subgroupAdd(mine.b),
        subgroupAdd(mine.c),
    );
    if lane == 0u {
        partial[subgroup] = merged;
    }
    workgroupBarrier();
    var st = partial[0];
    for (var i = 1u; i < subgroups; i++) {
        st = merge(st, partial[i]);
    }
    return st;
}

@compute @workgroup_size(WORKGROUP)
fn row_per_workgroup(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row = group_index(wg, groups);
    if row >= params.rows {
        return;
    }
    let mine = scan_quads(row, row_span(row), lid, WORKGROUP);
    let st = reduce_stats(mine, subgroup, subgroups, lane);
    finish_workgroup_row(row, st, lid);
}

// Split rows: the statistics of one segment of a row.
@compute @workgroup_size(WORKGROUP)
fn segment_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let at = row_segment(wg, groups);
    if at.z == 0u {
        return;
    }
    let mine = scan_quads(at.x, segment_span(at.x, at.y), lid, WORKGROUP);
    let st = reduce_stats(mine, subgroup, subgroups, lane);
    if lid == 0u {
        partials[group_index(wg, groups)] = st;
    }
}
