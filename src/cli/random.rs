//! The random inputs of `xent bench` and `xent verify`: the same values for the same seed,
//! whatever the number of threads.

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

/// n draws of N(0, σ²), in parallel from per-block seeds.
pub fn normal(n: usize, sigma: f32, seed: u64) -> Vec<f32> {
    let dist = Normal::new(0.0_f32, sigma).unwrap_or_else(|_| unreachable!("σ > 0"));
    let mut v = vec![0.0_f32; n];
    v.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(i, block)| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(i as u64));
            block.iter_mut().for_each(|x| *x = dist.sample(&mut rng));
        });
    v
}
