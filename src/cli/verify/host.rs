//! The host checks: every case on every engine, against the reference on the same request.

use xent::{Engine, Result};

use super::cases::{CASES, Data, dense_of, request};
use super::tally::{TOLERANCE, Tally};
use crate::cli::compare::{grad_error, loss_error};

/// Checks every case on each of `engines` against `reference`, case `i` drawn from `seed + i`.
pub fn check(engines: &[Engine], reference: &Engine, seed: u64, tally: &mut Tally) -> Result<()> {
    for (i, case) in CASES.iter().enumerate() {
        let data = Data::draw(case, seed.wrapping_add(i as u64));
        let dense = dense_of(case, &data);
        let request = request(case, &data, &dense);
        let want = reference.compute(&request)?;
        for engine in engines {
            let got = engine.compute(&request)?;
            let loss = loss_error(&got.loss, &want.loss);
            let grad = match (&got.grad, &want.grad) {
                (Some(g), Some(w)) => grad_error(g, w),
                _ => f64::NAN,
            };
            tally.check(
                case.name,
                &case.shape,
                &engine.device().to_string(),
                (loss, grad),
                TOLERANCE,
            );
        }
    }
    Ok(())
}
