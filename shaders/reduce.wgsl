// Fixed-order tree sum of f32 values: each workgroup sums one block of REDUCE_BLOCK values, and the
// host chains passes until one value is left. The order of additions depends only on n, so the
// same input gives the same bits on every run. The row kernels have already scaled each value by
// the reduction's divisor, so a sum is all that is left. A module is the prelude that
// src/gpu/shaders.rs writes (the constants shared with the host, and the binding declarations of
// src/gpu/bindings.rs), tree_sum.wgsl, and this file.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const REDUCE_BLOCK: u32 = REDUCE_WORKGROUP * REDUCE_ITEMS;

@compute @workgroup_size(REDUCE_WORKGROUP)
fn reduce_sum(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let block = wg.y * groups.x + wg.x;
    let base = block * REDUCE_BLOCK;
    var acc = 0.0;
    for (var i = 0u; i < REDUCE_ITEMS; i++) {
        let idx = base + i * REDUCE_WORKGROUP + lid;
        if idx < params.n {
            acc += values[idx];
        }
    }
    let total = workgroup_sum(lid, REDUCE_WORKGROUP, acc);
    if lid == 0u {
        sums[block] = total;
    }
}
