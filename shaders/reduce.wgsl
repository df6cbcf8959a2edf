// Fixed-order tree sum of f32 values: each workgroup sums one block of BLOCK values, and the host
// chains passes until one value is left. The order of additions depends only on n, so the same
// input gives the same bits on every run. The row kernels have already scaled each value by the
// reduction's divisor, so a sum is all that is left.

struct Params {
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WORKGROUP: u32 = 256u;
const ITEMS: u32 = 8u;
const BLOCK: u32 = WORKGROUP * ITEMS;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;

@compute @workgroup_size(WORKGROUP)
fn reduce_sum(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let block = wg.y * groups.x + wg.x;
    let base = block * BLOCK;
    var acc = 0.0;
    for (var i = 0u; i < ITEMS; i++) {
        let idx = base + i * WORKGROUP + lid;
        if idx < params.n {
            acc += values[idx];
        }
    }
    let total = workgroup_sum(lid, WORKGROUP, acc);
    if lid == 0u {
        sums[block] = total;
    }
}
