// Matrix products C = A·B (f32 C, row-major, rows `ldc` apart) on A and B of f32, f16 or bf16,
// read packed from u32 words (no f16 shader feature), with f32 accumulation; and the column sums
// of a matrix. A module is the prelude that src/gpu/shaders.rs writes (the constants shared with
// the host, the tile's constants BM, BN, BK, TM, TN, and the binding declarations of
// src/gpu/bindings.rs), then this file.
//
// Determinism: each element of C is summed by one invocation, in one f32 accumulator, over
// k = 0 .. K - 1 in order, each step `fma(a, b, acc)`; then the bias is added, then the product
// is added to C. So every tile gives the same bits, and so does every run.
//
// A workgroup computes a BM × BN block of C; each of its (BM / TM)·(BN / TN) invocations a
// TM × TN block, of rows tm + i·(BM / TM) and columns tn + j·(BN / TN), so that consecutive
// invocations read consecutive columns.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // 1: C = C + A·B; else C = A·B.
    accumulate: u32,
    // Elements between rows of A and B as stored, and their first elements, from the bound
    // ranges' starts.
    lda: u32,
    a_offset: u32,
    ldb: u32,
    b_offset: u32,
    ldc: u32,
    c_offset: u32,
    // 1: C[i, j] = (A·B)[i, j] + bias[bias_offset + j].
    bias: u32,
    bias_offset: u32,
}

// Set per pipeline by the host: each operand's element type (F32, F16, BF16), and 1 where it is
// stored transposed (A as [K, M], B as [N, K]).
override A_DTYPE: u32 = F32;
override B_DTYPE: u32 = F32;
override A_TRANSPOSED: u32 = 0u;
override B_TRANSPOSED: u32 = 0u;

// Invocations of a workgroup of a tile.
const GROUP: u32 = (BM / TM) * (BN / TN);

// An IEEE half float (the low 16 bits of `h`) as f32, by its bits, as `halves_to_f32` in
// rows_load.wgsl: unpack2x16float would need naga's SHADER_FLOAT16_IN_FLOAT32 capability, which
// not every adapter grants.
fn half_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let exponent = (h >> 10u) & 0x1fu;
    let mantissa = h & 0x3ffu;
    let normal = sign | ((exponent + 112u) << 23u) | (mantissa << 13u);
    let special = sign | 0x7f800000u | (mantissa << 13u);
    // Subnormal halves are mantissa · 2^-24.
    let magnitude = f32(mantissa) * 5.9604645e-8;
    let subnormal = select(magnitude, -magnitude, sign != 0u);
    let wide = bitcast<f32>(select(normal, special, exponent == 31u));
    return select(wide, subnormal, exponent == 0u);
}

// The word of a buffer of `dtype` elements that holds element `e`.
fn word_of(e: u32, dtype: u32) -> u32 {
    if dtype == F32 {
        return e;
    }
    return e >> 1u;
}

// Element `e` of `dtype` from its `word`, as bits that `value` takes: an f32's for f32 and bf16
// (a bfloat16 is the high half of an f32), a half's for f16.
fn bits(word: u32, e: u32, dtype: u32) -> u32 {
    let odd = (e & 1u) == 1u;
    if dtype == F32 {
        return word;
    }
    if dtype == BF16 {
        return select(word << 16u, word & 0xffff0000u, odd);
    }
    return select(word & 0xffffu, word >> 16u, odd);
}

// The f32 value of an element's `bits`.
fn value(bits: u32, dtype: u32) -> f32 {
    if dtype == F16 {
        return half_to_f32(bits);
    }
    return bitcast<f32>(bits);
}

// Where A[i, kk] is stored, as an element index; i < m and kk < k.
fn a_index(i: u32, kk: u32) -> u32 {
    if A_TRANSPOSED == 1u {
        return params.a_offset + kk * params.lda + i;
    }
    return params.a_offset + i * params.lda + kk;
}

// Element `e` of A.
fn a_element(e: u32) -> f32 {
    return value(bits(a[word_of(e, A_DTYPE)], e, A_DTYPE), A_DTYPE);
}

fn a_at(i: u32, kk: u32) -> f32 {
    return a_element(a_index(i, kk));
}

// Where B[kk, j] is stored, as an element index; kk < k and j < n.
fn b_index(kk: u32, j: u32) -> u32 {
    if B_TRANSPOSED == 1u {
        return params.b_offset + j * params.ldb + kk;
    }
    return params.b_offset + kk * params.ldb + j;
}

// Element `e` of B.
fn b_element(e: u32) -> f32 {
    return value(bits(b[word_of(e, B_DTYPE)], e, B_DTYPE), B_DTYPE);
}

fn b_at(kk: u32, j: u32) -> f32 {
    return b_element(b_index(kk, j));
}

// Writes C[i, j] from its product `sum`, with the bias and the accumulation the params ask for.
fn store(i: u32, j: u32, sum: f32) {
    if i >= params.m || j >= params.n {
        return;
    }
    var value = sum;
    if params.bias == 1u {
        value += bias[params.bias_offset + j];
    }
    let at = params.c_offset + i * params.ldc + j;
    if params.accumulate == 1u {
        value = c[at] + value;
    }
    c[at] = value;
}

// The tile of workgroup `group` (row-tile fastest, so that consecutive workgroups share B's
// columns): its first row and column, or none past the last tile.
fn tile_origin(group: u32) -> vec3<u32> {
    let tiles_m = (params.m + BM - 1u) / BM;
    let tiles = tiles_m * ((params.n + BN - 1u) / BN);
    return vec3<u32>((group % tiles_m) * BM, (group / tiles_m) * BN, u32(group < tiles));
}

// K-slices of A and B, BK deep, as f32: a_tile[kk·BM + i] = A[row0 + i, k0 + kk], and
// b_tile[kk·BN + j] = B[k0 + kk, col0 + j].
var<workgroup> a_tile: array<f32, BK * BM>;
var<workgroup> b_tile: array<f32, BK * BN>;

// Each K-slice is staged in workgroup memory by the whole workgroup, then read from there.
@compute @workgroup_size(GROUP)
fn gemm_tiled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let origin = tile_origin(wg.y * groups.x + wg.x);
    if origin.z == 0u {
        return;
    }
    let row0 = origin.x;
    let col0 = origin.y;
    let tm = lid / (BN / TN);
    let tn = lid % (BN / TN);
    var acc: array<f32, TM * TN>;
    for (var k0 = 0u; k0 < params.k; k0 += BK) {
        let depth = min(BK, params.k - k0);
        // Rows past m and columns past n read row m - 1 and column n - 1, and are never stored;
        // slots past `depth` are never read.
        for (var t = lid; t < BM * BK; t += GROUP) {
            var i = t / BK;
            var kk = t % BK;
            if A_TRANSPOSED == 1u {
                i = t % BM;
                kk = t / BM;
            }
            a_tile[kk * BM + i] = a_at(min(row0 + i, params.m - 1u), k0 + min(kk, depth - 1u));
        }
        for (var t = lid; t < BN * BK; t += GROUP) {
            var j = t % BN;
            var kk = t / BN;
            if B_TRANSPOSED == 1u {
                j = t / BK;
                kk = t % BK;
            }
            b_tile[kk * BN + j] = b_at(k0 + min(kk, depth - 1u), min(col0 + j, params.n - 1u));
        }
        workgroupBarrier();
        for (var kk = 0u; kk < depth; kk++) {
            var av: array<f32, TM>;
            var bv: array<f32, TN>;
            for (var i = 0u; i < TM; i++) {
                av[i] = a_tile[kk * BM + tm + i * (BM / TM)];
            }
            for (var j = 0u; j < TN; j++) {
                bv[j] = b_tile[kk * BN + tn + j * (BN / TN)];
            }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) {
                    acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) {
            store(row0 + tm + i * (BM / TM), col0 + tn + j * (BN / TN), acc[i * TN + j]);
        }
    }
}

// Each invocation reads its rows of A and columns of B straight from the buffers, with no
// workgroup memory and no barrier (BK is unused).
@compute @workgroup_size(GROUP)
fn gemm_direct(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let origin = tile_origin(wg.y * groups.x + wg.x);
    if origin.z == 0u {
        return;
    }
    let row0 = origin.x + lid / (BN / TN);
    let col0 = origin.y + lid % (BN / TN);
    var acc: array<f32, TM * TN>;
    for (var kk = 0u; kk < params.k; kk++) {
        var av: array<f32, TM>;
        var bv: array<f32, TN>;
        for (var i = 0u; i < TM; i++) {
            av[i] = a_at(min(row0 + i * (BM / TM), params.m - 1u), kk);
        }
        for (var j = 0u; j < TN; j++) {
            bv[j] = b_at(kk, min(col0 + j * (BN / TN), params.n - 1u));
        }
        for (var i = 0u; i < TM; i++) {
            for (var j = 0u; j < TN; j++) {
                acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]);
            }
        }
    }
    for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) {
            store(row0 + i * (BM / TM), col0 + j * (BN / TN), acc[i * TN + j]);
        }
    }
}

// C[0, j] = Σ_i A[i, j] (+ C[0, j] with accumulate), for j < n: one invocation per column, over
// its rows in order from an f32 accumulator at 0. Reads A as `a_at` does (A_TRANSPOSED 0);
// params.k, B and the bias are unused.
@compute @workgroup_size(COLUMNS_GROUP)
fn column_sums(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = (wg.y * groups.x + wg.x) * COLUMNS_GROUP + lid;
    if j >= params.n {
        return;
    }
    var sum = 0.0;
    for (var i = 0u; i < params.m; i++) {
        sum += a_at(i, j);
    }
    let at = params.c_offset + j;
    if params.accumulate == 1u {
        sum = c[at] + sum;
    }
    c[at] = sum;
}

