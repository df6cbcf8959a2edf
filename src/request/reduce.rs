//! The reduction: what a request's scalar reductions divide by, the kernels' scales, and the one
//! place a sum of row losses becomes a [`Loss`].

use super::exact_sum::ExactSum;
use super::kinds::{LossKind, Reduction};
use super::markers::IGNORED;
use super::options::Options;
use crate::output::Loss;

/// The reduction's scales in f32, as the kernels multiply by them: each row's loss in the chosen
/// base times `main`, its z-loss term times `z_loss`. Both are 0 where a mean has nothing to
/// average.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Scales {
    /// The scale of the loss (in nats, divided into the base).
    pub main: f32,
    /// The scale of the z-loss term.
    pub z_loss: f32,
}

/// One value of a reduced result from its (main, z-loss) sums and the reduction's `(main,
/// z-loss)` divisors (see [`Reduce::divisors`]).
pub(crate) fn divide((main, z_loss): (f64, f64), (main_divisor, z_divisor): (f64, f64)) -> f32 {
    (main / main_divisor + z_loss / z_divisor) as f32
}

/// The scalar of a scalar reduction from its (main, z-loss) sums: 0 where the mean has nothing
/// to average.
pub(crate) fn scalar(sums: (f64, f64), divisors: Option<(f64, f64)>) -> Loss {
    Loss::Scalar(divisors.map_or(0.0, |divisors| divide(sums, divisors)))
}

/// What a request's scalar reductions divide by: `valid_rows` counted rows of a [B, C] request
/// with these encoded class targets, when it has them.
#[derive(Clone, Copy)]
pub(crate) struct Reduce<'a> {
    pub loss: LossKind,
    pub options: &'a Options,
    pub shape: [usize; 2],
    pub valid_rows: usize,
    pub targets: Option<&'a [u32]>,
    pub weight: Option<&'a [f32]>,
}

impl Reduce<'_> {
    /// The divisors of the scalar reductions, in float64, as (main, z-loss): the result is
    /// Σ main / main divisor + Σ z / z-loss divisor, where `main` is the loss in nats and `z` the
    /// z-loss term. `None` when the mean has nothing to average (it is then 0).
    pub fn divisors(&self) -> Option<(f64, f64)> {
        let [batch, classes] = self.shape;
        let rows = batch as f64;
        let ln = self.options.base.ln();
        match self.options.reduction {
            Reduction::None | Reduction::Sum => Some((ln, 1.0)),
            Reduction::BatchMean if batch == 0 => None,
            Reduction::BatchMean => Some((ln * rows, rows)),
            Reduction::Mean => match (self.targets, self.loss.elementwise()) {
                (_, _) if self.valid_rows == 0 => None,
                (Some(t), _) => {
                    // Unweighted, Σ w_y is the count of valid rows, with no sum to take.
                    let weights: f64 = self.weight.map_or(self.valid_rows as f64, |w| {
                        t.iter()
                            .filter(|&&y| y != IGNORED)
                            .map(|&y| f64::from(w[y as usize]))
                            .sum()
                    });
                    Some((ln * weights, self.valid_rows as f64))
                }
                (_, true) => Some((ln * rows * classes as f64, rows)),
                (_, false) => Some((ln * rows, rows)),
            },
        }
    }

    /// The kernels' scales, the reciprocals of the divisors in f32, or 0 where the mean has
    /// nothing to average. A mean over class targets takes them from the exact Σ w_y
    /// and row count ([`ExactSum`]), as the device does for targets only it holds.
    pub fn scales(&self) -> Scales {
        match self.targets {
            Some(t) if self.options.reduction == Reduction::Mean && self.valid_rows > 0 => {
                let rows = ExactSum::count(self.valid_rows);
                let weights = self.weight.map_or(rows, |w| {
                    let mut sum = ExactSum::default();
                    t.iter()
                        .filter(|&&y| y != IGNORED)
                        .for_each(|&y| sum.add(w[y as usize]));
                    sum
                });
                Scales {
                    main: weights.reciprocal(self.options.base.ln()),
                    z_loss: rows.reciprocal(1.0),
                }
            }
            _ => self
                .divisors()
                .map_or(Scales::default(), |(main, z_loss)| Scales {
                    main: (1.0 / main) as f32,
                    z_loss: (1.0 / z_loss) as f32,
                }),
        }
    }
}
