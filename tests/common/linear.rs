//! Linear heads in tests: their logits in float64, and the check that a gradient added into a
//! buffer's old contents chunk by chunk is the written gradient plus them, within the rounding of
//! those additions.

/// The logits H·Wᵀ + b of a head [N, D] × [V, D], each summed in f64 and rounded to f32.
pub fn head_logits(h: &[f32], w: &[f32], b: Option<&[f32]>, [n, d, v]: [usize; 3]) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * v);
    for row in h.chunks_exact(d.max(1)).take(n) {
        for (c, class) in w.chunks_exact(d.max(1)).take(v).enumerate() {
            let dot: f64 = row
                .iter()
                .zip(class)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            out.push((dot + b.map_or(0.0, |b| f64::from(b[c]))) as f32);
        }
    }
    out
}

/// The most the partial sums of dW = Gᵀ·H and db = Σ_rows G can be in magnitude, whatever
/// chunks of rows they are summed in: Σ_r |G[r, c]|·|H[r, j]| for each element of dW [V, D],
/// and Σ_r |G[r, c]| for each of db `[V]`, from G = ∂loss/∂logits [N, V].
pub fn product_magnitudes(g: &[f32], h: &[f32], [n, d, v]: [usize; 3]) -> [Vec<f64>; 2] {
    let mut weight = vec![0.0_f64; v * d];
    let mut bias = vec![0.0_f64; v];
    for r in 0..n {
        for c in 0..v {
            let gc = f64::from(g[r * v + c].abs());
            bias[c] += gc;
            for j in 0..d {
                weight[c * d + j] += gc * f64::from(h[r * d + j].abs());
            }
        }
    }
    [weight, bias]
}

/// Asserts that each `got` is `start` + `written` within `roundings` roundings to f32 (half a
/// unit in the last place each, 2⁻²⁴ relative) of partial sums at most |start| + `magnitude`
/// in size. A gradient added into a buffer chunk by chunk, and the same gradient written, are
/// the same chunk products summed in the same order, the one from the old contents and the
/// other from zero: each addition rounds once, and nothing else differs.
pub fn assert_added(
    what: &str,
    got: &[f32],
    start: &[f32],
    written: &[f32],
    roundings: usize,
    magnitude: &[f64],
) {
    assert_eq!(got.len(), start.len(), "{what}: lengths");
    assert_eq!(got.len(), written.len(), "{what}: lengths");
    assert_eq!(got.len(), magnitude.len(), "{what}: lengths");
    let half_ulp = f64::from(f32::EPSILON) / 2.0;
    for (i, (((&g, &s), &w), &m)) in got
        .iter()
        .zip(start)
        .zip(written)
        .zip(magnitude)
        .enumerate()
    {
        let want = f64::from(s) + f64::from(w);
        // 1% over the bound: G here is the reference's, within a few ulps of the engine's.
        let bound = roundings as f64 * half_ulp * (f64::from(s.abs()) + m) * 1.01;
        assert!(
            (f64::from(g) - want).abs() <= bound,
            "{what}[{i}]: {w} added to {s} is {g}, not {want} (±{bound:e}, {roundings} roundings)"
        );
    }
}
