//! How far a result is from the reference's, in f64: the measures `xent verify` reports, on which
//! the tests' assertions are built (`tests/common` includes this file by path), so that an error
//! bound means the same in both.

/// |a − e| / max(1, |e|): the error of a value relative to the expected one, absolute near zero.
pub fn scalar_error(actual: f64, expected: f64) -> f64 {
    (actual - expected).abs() / expected.abs().max(1.0)
}

/// Σ(a − e)² and Σe², in f64, over the pairs of `actual` and `expected` in order.
pub fn squared_norms(actual: &[f32], expected: &[f32]) -> (f64, f64) {
    let diff: f64 = actual
        .iter()
        .zip(expected)
        .map(|(&a, &e)| (f64::from(a) - f64::from(e)).powi(2))
        .sum();
    let norm: f64 = expected.iter().map(|&e| f64::from(e).powi(2)).sum();
    (diff, norm)
}

/// The largest [`scalar_error`] over the loss values.
pub fn loss_error(got: &xent::Loss, want: &xent::Loss) -> f64 {
    let values = |l: &xent::Loss| match l {
        xent::Loss::Scalar(v) => vec![*v],
        xent::Loss::Unreduced { values, .. } => values.clone(),
    };
    values(got)
        .iter()
        .zip(values(want))
        .map(|(&a, e)| scalar_error(f64::from(a), f64::from(e)))
        .fold(0.0, f64::max)
}

/// ‖a − e‖ / ‖e‖, as √(Σ(a − e)² / Σe²); a zero `want` divides by the least positive f64.
pub fn grad_error(got: &[f32], want: &[f32]) -> f64 {
    let (diff, norm) = squared_norms(got, want);
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}
