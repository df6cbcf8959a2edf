// One workgroup per row; each subgroup reduces its invocations' statistics with subgroup
// operations, then every invocation merges the subgroups' statistics in subgroup order. Built
// only for devices with the SUBGROUP feature. (Naga takes subgroup operations without an
// `enable subgroups;` directive, and rejects that directive.)

override WORKGROUP: u32 = 256u;

var<workgroup> partial: array<Stats, 256>;

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
    let mine = scan_row(row, lid, WORKGROUP);
    let m = subgroupMax(mine.m);
    let scale = exp(mine.m - m);
    let merged = Stats(
        m,
        subgroupAdd(mine.s * scale),
        subgroupAdd(shift_t(mine, m)),
        subgroupAdd(mine.a),
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
    if lid == 0u {
        finish_row(row, st);
    }
    if GRAD {
        // finish_row reads the target logit, which an in-place gradient overwrites.
        workgroupBarrier();
        grad_row(row, st, lid, WORKGROUP);
    }
}
