//! The float64 reference. It is written to be obviously correct rather than fast: every GPU result
//! is checked against it.

use crate::loss::{Checked, Reduction};
use crate::output::{Loss, Output};

/// log Σ exp(x), shifted by the row max so that no exp overflows. A NaN anywhere gives NaN; a row
/// of only −inf gives −inf.
fn log_sum_exp(row: &[f32]) -> f64 {
    if row.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    let max = row
        .iter()
        .map(|&x| f64::from(x))
        .fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
    max + sum.ln()
}

/// Softmax cross-entropy, `lse(x_i) - x_i[y_i]` per row, reduced in float64.
pub(crate) fn softmax_cross_entropy(req: &Checked) -> Output {
    let lse: Vec<f64> = (0..req.batch).map(|r| log_sum_exp(req.row(r))).collect();
    let losses: Vec<f64> = (0..req.batch)
        .map(|r| match req.target(r) {
            Some(t) => lse[r] - f64::from(req.row(r)[t]),
            None => 0.0,
        })
        .collect();
    let sum: f64 = losses.iter().sum();
    let loss = match req.options.reduction {
        Reduction::None => Loss::PerRow(losses.iter().map(|&l| l as f32).collect()),
        Reduction::Sum => Loss::Scalar(sum as f32),
        Reduction::Mean if req.valid_rows == 0 => Loss::Scalar(0.0),
        Reduction::Mean => Loss::Scalar((sum / req.valid_rows as f64) as f32),
    };
    Output {
        loss,
        lse: req
            .options
            .lse
            .then(|| lse.iter().map(|&v| v as f32).collect()),
        valid_rows: req.valid_rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SoftmaxCrossEntropy;

    #[test]
    fn matches_hand_computed_values() {
        // Row 0: lse(2, 1, 0.1) - 2; row 1 is ignored.
        let logits = [2.0_f32, 1.0, 0.1, 0.5, 2.5, 0.3];
        let targets = [0_i64, -100];
        let req = SoftmaxCrossEntropy::new(&logits, [2, 3], &targets[..])
            .reduction(Reduction::None)
            .check()
            .unwrap();
        let out = softmax_cross_entropy(&req);
        let x = [2.0_f64, 1.0, 0.1f32 as f64];
        let expected = (x.iter().map(|v| v.exp()).sum::<f64>()).ln() - 2.0;
        let rows = out.loss.per_row().unwrap();
        assert!((f64::from(rows[0]) - expected).abs() < 1e-7);
        assert_eq!(rows[1], 0.0);
        assert_eq!(out.valid_rows, 1);
    }

    #[test]
    fn survives_magnitudes_that_overflow_a_naive_exp() {
        let logits = [1.0e4_f32, -1.0e4, 9_999.0];
        let lse = log_sum_exp(&logits);
        assert!((lse - (1.0e4 + (1.0 + (-1.0_f64).exp()).ln())).abs() < 1e-9);
    }

    #[test]
    fn masked_rows_and_nan_rows() {
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY; 3]), f64::NEG_INFINITY);
        assert!((log_sum_exp(&[f32::NEG_INFINITY, 0.0]) - 0.0).abs() < 1e-15);
        assert!(log_sum_exp(&[1.0, f32::NAN]).is_nan());
    }
}
