// The bandwidth probe: reads every byte of its input once, as vec4<f32>, and sums it. Each
// workgroup sums one contiguous range of `per_group` quads, the way the row kernels read a row, and
// writes one partial sum. Its time is the ceiling that a loss kernel reading the same bytes is
// measured against. A module is the prelude that src/gpu/shaders.rs writes (the constants shared
// with the host, and the binding declarations of src/gpu/bindings.rs), tree_sum.wgsl, and this
// file.

struct Params {
    quads: u32,
    per_group: u32,
    _pad0: u32,
    _pad1: u32,
}

// Set by the host per adapter: 256 on GPUs, 8 on CPU adapters, where an invocation is a SIMD
// lane.
override WORKGROUP: u32 = 256u;

@compute @workgroup_size(WORKGROUP)
fn probe_sum(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = wg.y * groups.x + wg.x;
    let start = group * params.per_group;
    let end = min(start + params.per_group, params.quads);
    var acc = vec4<f32>(0.0);
    for (var i = start + lid; i < end; i += WORKGROUP) {
        acc += data[i];
    }
    let total = workgroup_sum(lid, WORKGROUP, acc.x + acc.y + acc.z + acc.w);
    if lid == 0u {
        sums[group] = total;
    }
}
