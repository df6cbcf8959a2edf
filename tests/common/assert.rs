//! The tests' assertions that results are close, NaN-aware, and the norms they bound; built on the
//! measures `xent verify` reports (`src/cli/compare.rs`).

use super::compare::{scalar_error, squared_norms};

/// Asserts |actual - expected| <= atol + rtol·|expected| elementwise, with NaN matching NaN and an
/// infinity matching the same infinity. A failure names the first bad index.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], atol: f64, rtol: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        let (a, e) = (f64::from(a), f64::from(e));
        let ok = if e.is_nan() || a.is_nan() {
            e.is_nan() && a.is_nan()
        } else if e.is_infinite() || a.is_infinite() {
            a == e
        } else {
            (a - e).abs() <= atol + rtol * e.abs()
        };
        assert!(
            ok,
            "{what}: first mismatch at index {i}: got {a}, expected {e} (atol {atol}, rtol {rtol})"
        );
    }
}

/// Asserts a relative error of at most `rtol` (or an absolute one of `rtol` near zero).
pub fn assert_scalar(what: &str, actual: f32, expected: f32, rtol: f64) {
    let (a, e) = (f64::from(actual), f64::from(expected));
    assert!(
        (a - e).abs() <= rtol * e.abs().max(1.0),
        "{what}: got {a}, expected {e}, relative error {:.3e} over {rtol:e}",
        scalar_error(a, e)
    );
}

/// ‖a − b‖ / ‖b‖ in f64, or ‖a − b‖ when b is all zeros. NaN anywhere gives NaN, which fails
/// every `<=` check.
pub fn relative_norm_error(a: &[f32], b: &[f32]) -> f64 {
    let (diff, norm) = norms(a, b);
    if norm == 0.0 { diff } else { diff / norm }
}

/// ‖a − b‖ and ‖b‖.
pub fn norms(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let (diff, norm) = squared_norms(a, b);
    (diff.sqrt(), norm.sqrt())
}
