// The CPU adapters' product of gemm_lanes.wgsl with one load of A per lane instead of eight:
// the workgroup is one subgroup of LANES = 8 lanes (the host builds it only where subgroups are
// exactly 8 wide), lane l loads quad l of the block of A, and every lane takes each quad from
// its lane by a subgroup broadcast. Built only for devices with the SUBGROUP feature.

// Every lane's quad, to all lanes: quad q of the block is lane q's.
fn broadcast_quads(mine: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        subgroupBroadcast(mine, 0u),
        subgroupBroadcast(mine, 1u),
        subgroupBroadcast(mine, 2u),
        subgroupBroadcast(mine, 3u),
        subgroupBroadcast(mine, 4u),
        subgroupBroadcast(mine, 5u),
        subgroupBroadcast(mine, 6u),
        subgroupBroadcast(mine, 7u),
    );
}

// Every lane's value, to all lanes.
fn broadcast_values(mine: f32) -> array<f32, 8> {
    return array<f32, 8>(
        subgroupBroadcast(mine, 0u),
        subgroupBroadcast(mine, 1u),
        subgroupBroadcast(mine, 2u),
        subgroupBroadcast(mine, 3u),
        subgroupBroadcast(mine, 4u),
        subgroupBroadcast(mine, 5u),
        subgroupBroadcast(mine, 6u),
        subgroupBroadcast(mine, 7u),
    );
}

@compute @workgroup_size(BN / TN)
fn gemm_subgroup(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let origin = tile_origin(wg.y * groups.x + wg.x);
    if origin.z == 0u {
        return;
    }
    let row0 = origin.x;
    let c = origin.y + TN * lane;
    var acc: array<vec4<f32>, 8>;
    let whole = params.k & ~3u;
    for (var k0 = 0u; k0 < whole; k0 += 4u) {
        let t = broadcast_quads(a_block_quad(row0, k0, lane));
        block_steps(&acc, a_rows(t), k0, c);
    }
    for (var kk = whole; kk < params.k; kk++) {
        let a = broadcast_values(a_at(min(row0 + lane, params.m - 1u), kk));
        step(&acc, a, b_row(kk, c));
    }
    store_block(row0, c, acc);
}
