// Products for CPU adapters (lavapipe, llvmpipe), where an invocation is a SIMD lane and every
// load is a loop over the lanes, whatever its address: a vec4 load costs about twice a scalar
// one and brings four values, and workgroup memory costs as much as a buffer. So a workgroup is
// one batch of LANES = BN / TN lanes (TM = BM a multiple of 8), and each load is a vec4 of four
// consecutive elements (a "quad") where the host allows it. Lane l holds C's columns
// c = col0 + 4l .. c + 3 (and with TN = 8, c + 32 .. c + 35) for rows row0 .. row0 + TM - 1, as
// vec4 accumulators in halves of eight rows, and takes K four at a time: for each k, every row's
// value times its columns' values. A module is gemm.wgsl, this file, and for the subgroup kernel gemm_subgroup.wgsl.

// Set per pipeline by the host: 1 where A (B) is bound with `a_quads` (`b_quads`) too, its
// element offset and row pitch a multiple of four, and every quad a kernel reads within the
// binding; else quads are read element by element.
override A_QUADS: u32 = 0u;
override B_QUADS: u32 = 0u;

// Four 16-bit elements of `dtype` as f32: those of `e`'s quad (e a multiple of four) in the
// eight of `words`.
fn halves(words: vec4<u32>, e: u32, dtype: u32) -> vec4<f32> {
    let pair = select(words.xy, words.zw, (e & 4u) == 4u);
    let h = vec4<u32>(pair.x, pair.x >> 16u, pair.y, pair.y >> 16u) & vec4<u32>(0xffffu);
    if dtype == BF16 {
        return bitcast<vec4<f32>>(h << vec4<u32>(16u));
    }
    return vec4<f32>(half_to_f32(h.x), half_to_f32(h.y), half_to_f32(h.z), half_to_f32(h.w));
}

// A's elements e .. e + 3.
fn a_quad(e: u32) -> vec4<f32> {
    if A_QUADS == 1u {
        if A_DTYPE == F32 {
            return bitcast<vec4<f32>>(a_quads[e >> 2u]);
        }
        return halves(a_quads[e >> 3u], e, A_DTYPE);
    }
    return vec4<f32>(a_element(e), a_element(e + 1u), a_element(e + 2u), a_element(e + 3u));
}

// B's elements e .. e + 3.
fn b_quad(e: u32) -> vec4<f32> {
    if B_QUADS == 1u {
        if B_DTYPE == F32 {
            return bitcast<vec4<f32>>(b_quads[e >> 2u]);
        }
        return halves(b_quads[e >> 3u], e, B_DTYPE);
    }
    return vec4<f32>(b_element(e), b_element(e + 1u), b_element(e + 2u), b_element(e + 3u));
}

// The eight rows' values at k0 .. k0 + 3 of transposed A, from its quads
// t[2j + h] = A[row0 + 4h .. row0 + 4h + 3, k0 + j].
fn rows_of_transposed(t: array<vec4<f32>, 8>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        vec4<f32>(t[0].x, t[2].x, t[4].x, t[6].x),
        vec4<f32>(t[0].y, t[2].y, t[4].y, t[6].y),
        vec4<f32>(t[0].z, t[2].z, t[4].z, t[6].z),
        vec4<f32>(t[0].w, t[2].w, t[4].w, t[6].w),
        vec4<f32>(t[1].x, t[3].x, t[5].x, t[7].x),
        vec4<f32>(t[1].y, t[3].y, t[5].y, t[7].y),
        vec4<f32>(t[1].z, t[3].z, t[5].z, t[7].z),
        vec4<f32>(t[1].w, t[3].w, t[5].w, t[7].w),
    );
}

// Quad 2j + h of an 8 × 4 block of A from row0, k0 (rows past m are never stored): row0 + 2j + h
// (j < 4) along k for plain A; A[row0 + 4h .. + 3, k0 + j] for transposed A, whose rows are its
// stored columns.
fn a_block_quad(row0: u32, k0: u32, q: u32) -> vec4<f32> {
    if A_TRANSPOSED == 1u {
        return a_quad(a_index(row0 + 4u * (q & 1u), k0 + (q >> 1u)));
    }
    return a_quad(a_index(min(row0 + q, params.m - 1u), k0));
}

// The eight rows' values at k0 .. k0 + 3 from the block's eight quads.
fn a_rows(t: array<vec4<f32>, 8>) -> array<vec4<f32>, 8> {
    if A_TRANSPOSED == 1u {
        return rows_of_transposed(t);
    }
    return t;
}

// B[k0 + j, c .. c + 3] for j < 4 (columns past n are never stored).
fn b_block(k0: u32, c: u32) -> array<vec4<f32>, 4> {
    if B_TRANSPOSED == 1u {
        let last = params.n - 1u;
        let t0 = b_quad(b_index(k0, min(c, last)));
        let t1 = b_quad(b_index(k0, min(c + 1u, last)));
        let t2 = b_quad(b_index(k0, min(c + 2u, last)));
        let t3 = b_quad(b_index(k0, min(c + 3u, last)));
        return array<vec4<f32>, 4>(
            vec4<f32>(t0.x, t1.x, t2.x, t3.x),
            vec4<f32>(t0.y, t1.y, t2.y, t3.y),
            vec4<f32>(t0.z, t1.z, t2.z, t3.z),
            vec4<f32>(t0.w, t1.w, t2.w, t3.w),
        );
    }
    return array<vec4<f32>, 4>(
        b_quad(b_index(k0, c)),
        b_quad(b_index(k0 + 1u, c)),
        b_quad(b_index(k0 + 2u, c)),
        b_quad(b_index(k0 + 3u, c)),
    );
}

// B[kk, c .. c + 3].
fn b_row(kk: u32, c: u32) -> vec4<f32> {
    if B_TRANSPOSED == 1u {
        let last = params.n - 1u;
        return vec4<f32>(
            b_at(kk, min(c, last)),
            b_at(kk, min(c + 1u, last)),
            b_at(kk, min(c + 2u, last)),
            b_at(kk, min(c + 3u, last)),
        );
    }
    return b_quad(b_index(kk, c));
}

// One row's accumulator after four steps of k: its values `a` at them, times B's `cols`.
fn row_steps(acc: vec4<f32>, a: vec4<f32>, cols: array<vec4<f32>, 4>) -> vec4<f32> {
    var sum = fma(vec4<f32>(a.x), cols[0], acc);
    sum = fma(vec4<f32>(a.y), cols[1], sum);
    sum = fma(vec4<f32>(a.z), cols[2], sum);
    return fma(vec4<f32>(a.w), cols[3], sum);
}

// Eight rows' accumulators after four steps of k: their values `rows` at them, times B's `cols`.
fn block_steps(
    acc: array<vec4<f32>, 8>,
    rows: array<vec4<f32>, 8>,
    cols: array<vec4<f32>, 4>,
) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        row_steps(acc[0], rows[0], cols),
        row_steps(acc[1], rows[1], cols),
        row_steps(acc[2], rows[2], cols),
        row_steps(acc[3], rows[3], cols),
        row_steps(acc[4], rows[4], cols),
        row_steps(acc[5], rows[5], cols),
        row_steps(acc[6], rows[6], cols),
        row_steps(acc[7], rows[7], cols),
    );
}

// Eight rows' accumulators after one step of k: their values `a` at it, times B's row `cols`.
fn step(acc: array<vec4<f32>, 8>, a: array<f32, 8>, cols: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        fma(vec4<f32>(a[0]), cols, acc[0]),
        fma(vec4<f32>(a[1]), cols, acc[1]),
        fma(vec4<f32>(a[2]), cols, acc[2]),
        fma(vec4<f32>(a[3]), cols, acc[3]),
        fma(vec4<f32>(a[4]), cols, acc[4]),
        fma(vec4<f32>(a[5]), cols, acc[5]),
        fma(vec4<f32>(a[6]), cols, acc[6]),
        fma(vec4<f32>(a[7]), cols, acc[7]),
    );
}

// Writes eight rows from row0 of the lane's four columns.
fn store_block(row0: u32, c: u32, acc: array<vec4<f32>, 8>) {
    for (var i = 0u; i < 8u; i++) {
        store(row0 + i, c, acc[i].x);
        store(row0 + i, c + 1u, acc[i].y);
        store(row0 + i, c + 2u, acc[i].z);
        store(row0 + i, c + 3u, acc[i].w);
    }
}

// The eight rows' values from row0 at kk (rows past m read row m - 1, and are never stored).
fn a_column(row0: u32, kk: u32) -> array<f32, 8> {
    let last = params.m - 1u;
    return array<f32, 8>(
        a_at(min(row0, last), kk),
        a_at(min(row0 + 1u, last), kk),
        a_at(min(row0 + 2u, last), kk),
        a_at(min(row0 + 3u, last), kk),
        a_at(min(row0 + 4u, last), kk),
        a_at(min(row0 + 5u, last), kk),
        a_at(min(row0 + 6u, last), kk),
        a_at(min(row0 + 7u, last), kk),
    );
}

// The eight rows' values from row0 at k0 .. k0 + 3, every quad read by this lane.
fn a_block(row0: u32, k0: u32) -> array<vec4<f32>, 8> {
    return a_rows(array<vec4<f32>, 8>(
        a_block_quad(row0, k0, 0u),
        a_block_quad(row0, k0, 1u),
        a_block_quad(row0, k0, 2u),
        a_block_quad(row0, k0, 3u),
        a_block_quad(row0, k0, 4u),
        a_block_quad(row0, k0, 5u),
        a_block_quad(row0, k0, 6u),
        a_block_quad(row0, k0, 7u),
    ));
}

// Every lane reads every value of A it needs itself (all lanes at the same addresses), so each
// quad of A serves TN / 4 quads of columns: lane l's columns c + 32w .. c + 32w + 3 for
// w < TN / 4, c = col0 + 4l. TM is at most 32.
@compute @workgroup_size(BN / TN)
fn gemm_lanes(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let origin = tile_origin(wg.y * groups.x + wg.x);
    if origin.z == 0u {
        return;
    }
    let row0 = origin.x;
    let c = origin.y + 4u * lane;
    // Rows row0 + 8h .. row0 + 8h + 7 of columns c + 32w .. in acc_h_w, for h < TM / 8 and
    // w < TN / 4 (written out: an array of them indexed in a loop would live in memory).
    var acc_0_0: array<vec4<f32>, 8>;
    var acc_0_1: array<vec4<f32>, 8>;
    var acc_1_0: array<vec4<f32>, 8>;
    var acc_1_1: array<vec4<f32>, 8>;
    var acc_2_0: array<vec4<f32>, 8>;
    var acc_2_1: array<vec4<f32>, 8>;
    var acc_3_0: array<vec4<f32>, 8>;
    var acc_3_1: array<vec4<f32>, 8>;
    let whole = params.k & ~3u;
    for (var k0 = 0u; k0 < whole; k0 += 4u) {
        let cols_0 = b_block(k0, c);
        var cols_1 = cols_0;
        if TN > 4u {
            cols_1 = b_block(k0, c + 32u);
        }
        let rows_0 = a_block(row0 + 0u, k0);
        acc_0_0 = block_steps(acc_0_0, rows_0, cols_0);
        if TN > 4u {
            acc_0_1 = block_steps(acc_0_1, rows_0, cols_1);
        }
        if TM > 8u {
            let rows_1 = a_block(row0 + 8u, k0);
            acc_1_0 = block_steps(acc_1_0, rows_1, cols_0);
            if TN > 4u {
                acc_1_1 = block_steps(acc_1_1, rows_1, cols_1);
            }
        }
        if TM > 16u {
            let rows_2 = a_block(row0 + 16u, k0);
            acc_2_0 = block_steps(acc_2_0, rows_2, cols_0);
            if TN > 4u {
                acc_2_1 = block_steps(acc_2_1, rows_2, cols_1);
            }
        }
        if TM > 24u {
            let rows_3 = a_block(row0 + 24u, k0);
            acc_3_0 = block_steps(acc_3_0, rows_3, cols_0);
            if TN > 4u {
                acc_3_1 = block_steps(acc_3_1, rows_3, cols_1);
            }
        }
    }
    for (var kk = whole; kk < params.k; kk++) {
        let cols_0 = b_row(kk, c);
        var cols_1 = cols_0;
        if TN > 4u {
            cols_1 = b_row(kk, c + 32u);
        }
        let a_0 = a_column(row0 + 0u, kk);
        acc_0_0 = step(acc_0_0, a_0, cols_0);
        if TN > 4u {
            acc_0_1 = step(acc_0_1, a_0, cols_1);
        }
        if TM > 8u {
            let a_1 = a_column(row0 + 8u, kk);
            acc_1_0 = step(acc_1_0, a_1, cols_0);
            if TN > 4u {
                acc_1_1 = step(acc_1_1, a_1, cols_1);
            }
        }
        if TM > 16u {
            let a_2 = a_column(row0 + 16u, kk);
            acc_2_0 = step(acc_2_0, a_2, cols_0);
            if TN > 4u {
                acc_2_1 = step(acc_2_1, a_2, cols_1);
            }
        }
        if TM > 24u {
            let a_3 = a_column(row0 + 24u, kk);
            acc_3_0 = step(acc_3_0, a_3, cols_0);
            if TN > 4u {
                acc_3_1 = step(acc_3_1, a_3, cols_1);
            }
        }
    }
    store_block(row0, c, acc_0_0);
    if TN > 4u {
        store_block(row0, c + 32u, acc_0_1);
    }
    if TM > 8u {
        store_block(row0 + 8u, c, acc_1_0);
    }
    if TM > 8u && TN > 4u {
        store_block(row0 + 8u, c + 32u, acc_1_1);
    }
    if TM > 16u {
        store_block(row0 + 16u, c, acc_2_0);
    }
    if TM > 16u && TN > 4u {
        store_block(row0 + 16u, c + 32u, acc_2_1);
    }
    if TM > 24u {
        store_block(row0 + 24u, c, acc_3_0);
    }
    if TM > 24u && TN > 4u {
        store_block(row0 + 24u, c + 32u, acc_3_1);
    }
}
