// One workgroup per row; each subgroup reduces its invocations' (max, sum-exp) pairs with subgroup
// operations, then the first invocation merges the subgroups' pairs in subgroup order. Built only
// for devices with the SUBGROUP feature. (Naga takes subgroup operations without an
// `enable subgroups;` directive, and rejects that directive.)

override WORKGROUP: u32 = 256u;

var<workgroup> partial: array<vec2<f32>, 256>;

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
    let m = subgroupMax(mine.x);
    let s = subgroupAdd(mine.y * exp(mine.x - m));
    if lane == 0u {
        partial[subgroup] = vec2<f32>(m, s);
    }
    workgroupBarrier();
    if lid == 0u {
        var stats = partial[0];
        for (var i = 1u; i < subgroups; i++) {
            stats = combine(stats, partial[i]);
        }
        finish_row(row, stats);
    }
}
