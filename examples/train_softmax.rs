//! Fits a softmax classifier with plain SGD, using xent's loss and gradient.
//!
//! The data are points around K random centres in D dimensions; the model is logits = X·W + b.
//! Each step asks xent for the mean cross-entropy and its gradient with respect to the logits
//! (on the best GPU adapter, software ones such as lavapipe included; on the fast CPU path only
//! where there is none), back-propagates it through the linear layer by hand, and takes a step.
//! The loss falls from ln K towards 0.
//!
//! ```text
//! cargo run --release --example train_softmax
//! ```

use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};
use xent::{Engine, Request};

const SAMPLES: usize = 512;
const FEATURES: usize = 16;
const CLASSES: usize = 10;
const STEPS: usize = 200;
const LEARNING_RATE: f32 = 0.5;

fn main() -> Result<(), xent::Error> {
    let engine = Engine::gpu().unwrap_or_else(|e| {
        println!("{e}; the fast CPU path computes the gradient instead");
        Engine::cpu()
    });
    println!("training on {}", engine.device());
    let mut rng = StdRng::seed_from_u64(42);
    let normal = Normal::new(0.0_f32, 1.0).expect("unit variance");
    let centres: Vec<f32> = (0..CLASSES * FEATURES)
        .map(|_| normal.sample(&mut rng))
        .collect();
    let labels: Vec<i64> = (0..SAMPLES)
        .map(|_| rng.random_range(0..CLASSES as i64))
        .collect();
    let x: Vec<f32> = labels
        .iter()
        .flat_map(|&y| {
            let centre = &centres[y as usize * FEATURES..(y as usize + 1) * FEATURES];
            centre
                .iter()
                .map(|c| c + normal.sample(&mut rng))
                .collect::<Vec<_>>()
        })
        .collect();

    let mut w = vec![0.0_f32; FEATURES * CLASSES];
    let mut b = [0.0_f32; CLASSES];
    let mut logits = vec![0.0_f32; SAMPLES * CLASSES];
    let mut grad = vec![0.0_f32; SAMPLES * CLASSES];
    let mut first = None;
    let mut last = 0.0;
    for step in 0..STEPS {
        for (row, out) in x.chunks(FEATURES).zip(logits.chunks_mut(CLASSES)) {
            for (k, o) in out.iter_mut().enumerate() {
                *o = b[k]
                    + row
                        .iter()
                        .enumerate()
                        .map(|(f, v)| v * w[f * CLASSES + k])
                        .sum::<f32>();
            }
        }
        let request = Request::cross_entropy(&logits[..], [SAMPLES, CLASSES], &labels[..]);
        let loss = engine
            .compute_into(&request, &mut grad)?
            .loss
            .scalar()
            .expect("the mean");
        first.get_or_insert(loss);
        last = loss;
        if step % 20 == 0 || step == STEPS - 1 {
            let correct = logits
                .chunks(CLASSES)
                .zip(&labels)
                .filter(|(row, y)| {
                    let best = row
                        .iter()
                        .enumerate()
                        .fold(0, |best, (k, v)| if *v > row[best] { k } else { best });
                    best as i64 == **y
                })
                .count();
            println!(
                "step {step:>3}: loss {loss:.4}, accuracy {:.1}%",
                100.0 * correct as f32 / SAMPLES as f32
            );
        }
        // dW = Xᵀ·dlogits, db = Σ rows of dlogits; grad already carries the mean's 1/N.
        for (row, g) in x.chunks(FEATURES).zip(grad.chunks(CLASSES)) {
            for (f, v) in row.iter().enumerate() {
                for (k, gk) in g.iter().enumerate() {
                    w[f * CLASSES + k] -= LEARNING_RATE * v * gk;
                }
            }
            for (bk, gk) in b.iter_mut().zip(g) {
                *bk -= LEARNING_RATE * gk;
            }
        }
    }
    let first = first.expect("at least one step");
    println!("loss fell from {first:.4} to {last:.4}");
    assert!(
        last < 0.25 * first,
        "the loss did not fall enough: {first} -> {last}"
    );
    Ok(())
}
