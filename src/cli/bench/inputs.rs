//! The inputs of one shape: fresh logits, targets and probe data, or a linear head's hidden
//! states, weight, bias and targets, drawn from a seed and rotated from run to run so that caches
//! do not flatter the numbers.

use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use xent::io::Floats;
use xent::{Dtype, LossKind, Request, Target};

use super::report::read_bytes;
use crate::cli::random::normal;

/// Inputs rotate over enough sets to hold this many bytes (twice the L3 cache here), and at
/// least two.
pub const ROTATION_BYTES: usize = 64 << 20;
const MAX_SETS: usize = 256;

/// How many sets of `bytes` each rotate: enough to hold [`ROTATION_BYTES`], 2 to 256 of them.
fn sets_of(bytes: usize) -> usize {
    ROTATION_BYTES.div_ceil(bytes.max(1)).clamp(2, MAX_SETS)
}

/// One shape's inputs: `sets` fresh draws of logits, targets and probe data, used in turn.
pub struct Inputs {
    shape: [usize; 2],
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
    /// The sets of B × C logits for `loss` on `dtype` input, drawn from `seed`.
    pub fn draw(shape: [usize; 2], loss: LossKind, dtype: Dtype, seed: u64) -> Self {
        let [b, c] = shape;
        let dense_target = matches!(loss, LossKind::BinaryCrossEntropy | LossKind::KlDiv);
        let bytes = read_bytes(b * c, loss, dtype) as usize;
        let sets = sets_of(bytes);
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
        let [b, c] = self.shape;
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

/// A linear head's inputs: `sets` draws of f32 hidden states H ~ N(0, 1) [N, D], a weight
/// W ~ N(0, 1/D) [V, D] (logits of about unit variance), a bias b ~ N(0, 1) [V] and N class
/// targets, used in turn.
pub struct LinearInputs {
    shape: [usize; 3],
    hidden: Vec<Vec<f32>>,
    weight: Vec<Vec<f32>>,
    bias: Vec<Vec<f32>>,
    classes: Vec<Vec<i64>>,
}

impl LinearInputs {
    /// The bytes of one set of N × D × V.
    fn set_bytes([n, d, v]: [usize; 3]) -> usize {
        (n * d + v * d + v) * 4 + n * 8
    }

    /// How many sets N × D × V rotates over: enough to hold [`ROTATION_BYTES`], as for logits;
    /// but one, not rotated, when a set alone holds that much.
    pub fn sets(shape: [usize; 3]) -> usize {
        match Self::set_bytes(shape) {
            bytes if bytes >= ROTATION_BYTES => 1,
            bytes => sets_of(bytes),
        }
    }

    /// `sets` sets of N × D × V, drawn from `seed` (set k the same whatever `sets`).
    pub fn draw(shape: [usize; 3], sets: usize, seed: u64) -> Self {
        let [n, d, v] = shape;
        let mut inputs = LinearInputs {
            shape,
            hidden: Vec::new(),
            weight: Vec::new(),
            bias: Vec::new(),
            classes: Vec::new(),
        };
        for set in 0..sets {
            let seed = seed ^ (set as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            inputs.hidden.push(normal(n * d, 1.0, seed));
            inputs
                .weight
                .push(normal(v * d, 1.0 / (d as f32).sqrt(), !seed));
            inputs.bias.push(normal(v, 1.0, seed.rotate_left(17)));
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            inputs
                .classes
                .push((0..n).map(|_| rng.random_range(0..v as i64)).collect());
        }
        inputs
    }

    /// The request of set `k`: mean cross-entropy of H·Wᵀ + b against the classes.
    pub fn request(&self, k: usize) -> Request<'_> {
        let [n, d, v] = self.shape;
        Request::linear_cross_entropy(
            &self.hidden[k][..],
            [n, d],
            &self.weight[k][..],
            [v, d],
            &self.classes[k][..],
        )
        .linear_bias(&self.bias[k])
    }
}
