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
    let c = origin.y + 4u * lane;
    // Rows row0 + 8h .. row0 + 8h + 7 in acc_h, for h < TM / 8.
    var acc_0: array<vec4<f32>, 8>;
    var acc_1: array<vec4<f32>, 8>;
    var acc_2: array<vec4<f32>, 8>;
    var acc_3: array<vec4<f32>, 8>;
    var acc_4: array<vec4<f32>, 8>;
    var acc_5: array<vec4<f32>, 8>;
    var acc_6: array<vec4<f32>, 8>;
    var acc_7: array<vec4<f32>, 8>;
    let last = params.m - 1u;
    let whole = params.k & ~3u;
    for (var k0 = 0u; k0 < whole; k0 += 4u) {
        let cols = b_block(k0, c);
        let q_0 = broadcast_quads(a_block_quad(row0 + 0u, k0, lane));
        acc_0 = block_steps(acc_0, a_rows(q_0), cols);
        if TM > 8u {
            let q_1 = broadcast_quads(a_block_quad(row0 + 8u, k0, lane));
            acc_1 = block_steps(acc_1, a_rows(q_1), cols);
        }
        if TM > 16u {
            let q_2 = broadcast_quads(a_block_quad(row0 + 16u, k0, lane));
            acc_2 = block_steps(acc_2, a_rows(q_2), cols);
        }
        if TM > 24u {
            let q_3 = broadcast_quads(a_block_quad(row0 + 24u, k0, lane));
            acc_3 = block_steps(acc_3, a_rows(q_3), cols);
        }
        if TM > 32u {
            let q_4 = broadcast_quads(a_block_quad(row0 + 32u, k0, lane));
            acc_4 = block_steps(acc_4, a_rows(q_4), cols);
        }
        if TM > 40u {
            let q_5 = broadcast_quads(a_block_quad(row0 + 40u, k0, lane));
            acc_5 = block_steps(acc_5, a_rows(q_5), cols);
        }
        if TM > 48u {
            let q_6 = broadcast_quads(a_block_quad(row0 + 48u, k0, lane));
            acc_6 = block_steps(acc_6, a_rows(q_6), cols);
        }
        if TM > 56u {
            let q_7 = broadcast_quads(a_block_quad(row0 + 56u, k0, lane));
            acc_7 = block_steps(acc_7, a_rows(q_7), cols);
        }
    }
    for (var kk = whole; kk < params.k; kk++) {
        let cols = b_row(kk, c);
        let a_0 = broadcast_values(a_at(min(row0 + 0u + lane, last), kk));
        acc_0 = step(acc_0, a_0, cols);
        if TM > 8u {
            let a_1 = broadcast_values(a_at(min(row0 + 8u + lane, last), kk));
            acc_1 = step(acc_1, a_1, cols);
        }
        if TM > 16u {
            let a_2 = broadcast_values(a_at(min(row0 + 16u + lane, last), kk));
            acc_2 = step(acc_2, a_2, cols);
        }
        if TM > 24u {
            let a_3 = broadcast_values(a_at(min(row0 + 24u + lane, last), kk));
            acc_3 = step(acc_3, a_3, cols);
        }
        if TM > 32u {
            let a_4 = broadcast_values(a_at(min(row0 + 32u + lane, last), kk));
            acc_4 = step(acc_4, a_4, cols);
        }
        if TM > 40u {
            let a_5 = broadcast_values(a_at(min(row0 + 40u + lane, last), kk));
            acc_5 = step(acc_5, a_5, cols);
        }
        if TM > 48u {
            let a_6 = broadcast_values(a_at(min(row0 + 48u + lane, last), kk));
            acc_6 = step(acc_6, a_6, cols);
        }
        if TM > 56u {
            let a_7 = broadcast_values(a_at(min(row0 + 56u + lane, last), kk));
            acc_7 = step(acc_7, a_7, cols);
        }
    }
    store_block(row0, c, acc_0);
    if TM > 8u {
        store_block(row0 + 8u, c, acc_1);
    }
    if TM > 16u {
        store_block(row0 + 16u, c, acc_2);
    }
    if TM > 24u {
        store_block(row0 + 24u, c, acc_3);
    }
    if TM > 32u {
        store_block(row0 + 32u, c, acc_4);
    }
    if TM > 40u {
        store_block(row0 + 40u, c, acc_5);
    }
    if TM > 48u {
        store_block(row0 + 48u, c, acc_6);
    }
    if TM > 56u {
        store_block(row0 + 56u, c, acc_7);
    }
}
