//! The table of `xent verify`: each check on one line, judged against the tolerances and counted.

/// The bound on the loss error (relative, with an absolute floor of the same size) and on the
/// gradient's relative norm error.
pub const TOLERANCE: f64 = 1e-5;

/// The bound on a bf16 gradient's relative norm error against the reference's rounded to bf16:
/// where f32 and float64 round to different bf16 neighbours, one bf16 unit (2^-8 relative).
pub const BF16_GRADIENT_TOLERANCE: f64 = 1.0 / 256.0;

/// The checks printed so far, and how many of them failed.
#[derive(Default)]
pub struct Tally {
    /// Checks off the reference.
    pub failed: usize,
    /// Checks printed.
    pub checks: usize,
}

impl Tally {
    /// Prints the table's header.
    pub fn header(&self) {
        println!(
            "{:<58} {:>10} {:<44} {:>9} {:>9} {:>7}",
            "case", "shape", "engine", "loss err", "grad err", ""
        );
    }

    /// Counts and prints the check `name` of `shape` on `engine`: its loss and gradient errors,
    /// ok when the loss's is within [`TOLERANCE`] and the gradient's within `grad_tolerance`.
    pub fn check(
        &mut self,
        name: &str,
        shape: &[usize],
        engine: &str,
        (loss, grad): (f64, f64),
        grad_tolerance: f64,
    ) {
        let ok = loss <= TOLERANCE && grad <= grad_tolerance;
        self.checks += 1;
        self.failed += usize::from(!ok);
        println!(
            "{name:<58} {:>10} {engine:<44} {loss:>9.1e} {grad:>9.1e} {:>7}",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("x"),
            if ok { "ok" } else { "FAILED" }
        );
    }

    /// Prints how many checks passed, and what they bound.
    pub fn summary(&self) {
        println!(
            "\n{} of {} checks passed (loss: largest |a − e| / max(1, |e|); gradient: ‖a − e‖ / ‖e‖; both within {TOLERANCE:e}, a bf16 gradient within {BF16_GRADIENT_TOLERANCE:e} of the reference's rounded to bf16)",
            self.checks - self.failed,
            self.checks
        );
    }
}
