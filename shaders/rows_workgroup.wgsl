// One workgroup per row; the invocations' statistics meet in a fixed-order tree in workgroup
// memory. Used where the adapter has no subgroup operations (GL, for one).

override WORKGROUP: u32 = 256u;

var<workgroup> partial: array<Stats, 256>;

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
    partial[lid] = scan_row(row, lid, WORKGROUP);
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial[lid] = merge(partial[lid], partial[lid + stride]);
        }
        workgroupBarrier();
    }
    let st = partial[0];
    if lid == 0u {
        finish_row(row, st);
    }
    if GRAD {
        // finish_row reads the target logit, which an in-place gradient overwrites.
        workgroupBarrier();
        grad_row(row, st, lid, WORKGROUP);
    }
}
