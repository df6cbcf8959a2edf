//! The inputs of one shape: fresh logits, targets and probe data, drawn from a seed and rotated
//! from run to run so that caches do not flatter the numbers.

use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use xent::io::Floats;
use xent::{Dtype, LossKind, Request, Target};

use super::report::{Shape, read_bytes};
use crate::cli::random::normal;

/// Inputs rotate over enough sets to hold this many bytes (twice the L3 cache here), and at
/// least two.
const ROTATION_BYTES: usize = 64 << 20;
const MAX_SETS: usize = 256;

/// One shape's inputs: `sets` fresh draws of logits, targets and probe data, used in turn.
pub struct Inputs {
    shape: Shape,
    /// f32 logits, when the dtype is f32.
    pub f32_logits: Vec<Vec<f32>>,
    /// float16 or bfloat16 logits, when the dtype is one of those.
    half_logits: Vec<Floats<'static>>,
    classes: Vec<Vec<i64>>,
    dense: Vec<Vec<f32>>,
    /// What a probe reads: as many bytes as a call reads.
    probe: Vec<Vec<f32>>,
}

impl Inputs {
    /// The sets of `shape` for `loss` on `dtype` input, drawn from `seed`.
    pub fn draw(shape: Shape, loss: LossKind, dtype: Dtype, seed: u64) -> Self {
        let Shape(b, c) = shape;
        let dense_target = matches!(loss, LossKind::BinaryCrossEntropy | LossKind::KlDiv);
        let bytes = read_bytes(shape, loss, dtype) as usize;
        let sets = ROTATION_BYTES.div_ceil(bytes).clamp(2, MAX_SETS);
        let mut inputs = Inputs {
            shape,
            f32_logits: Vec::new(),
            half_logits: Vec::new(),
            classes: Vec::new(),
            dense: Vec::new(),
            probe: Vec::new(),
        };
        for set in 0..sets {
            let seed = seed ^ (set as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let logits = normal(b * c, 3.0, seed);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            inputs
                .classes
                .push((0..b).map(|_| rng.random_range(0..c as i64)).collect());
            if dense_target {
                let mut t: Vec<f32> = (0..b * c).map(|_| rng.random::<f32>()).collect();
                if loss == LossKind::KlDiv {
                    for row in t.chunks_mut(c) {
                        let sum: f32 = row.iter().sum();
                        row.iter_mut().for_each(|v| *v /= sum);
                    }
                }
                inputs.dense.push(t);
            }
            let plain_f32 = dtype == Dtype::F32 && !dense_target;
            if !plain_f32 {
                inputs.probe.push(normal(bytes / 4, 1.0, !seed));
            }
            match dtype {
                Dtype::F32 => inputs.f32_logits.push(logits),
                Dtype::F16 => inputs.half_logits.push(Floats::F16(
                    logits.iter().map(|&v| f16::from_f32(v)).collect(),
                )),
                Dtype::Bf16 => inputs.half_logits.push(Floats::Bf16(
                    logits.iter().map(|&v| bf16::from_f32(v)).collect(),
                )),
            }
        }
        inputs
    }

    /// How many sets there are.
    pub fn sets(&self) -> usize {
        self.classes.len()
    }

    /// The request of set `k`.
    pub fn request(&self, loss: LossKind, k: usize) -> Request<'_> {
        let Shape(b, c) = self.shape;
        let target = match loss {
            LossKind::CrossEntropy => Target::from(&self.classes[k][..]),
            LossKind::BinaryCrossEntropy | LossKind::KlDiv => Target::Dense(&self.dense[k]),
            LossKind::Entropy => Target::None,
        };
        match self.f32_logits.get(k) {
            Some(x) => Request::new(loss, &x[..], [b, c], target),
            None => Request::new(loss, self.half_logits[k].as_input(), [b, c], target),
        }
    }

    /// What the probe of set `k` reads.
    pub fn probe(&self, k: usize) -> &[f32] {
        self.probe.get(k).unwrap_or_else(|| &self.f32_logits[k])
    }
}
