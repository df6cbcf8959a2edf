//! Trains a bigram language model over a vocabulary of 4096 symbols with xent's fused linear
//! cross-entropy and plain SGD, on the fast CPU path.
//!
//! The corpus is generated from a seeded random Markov chain: each symbol has a few likely
//! successors, and now and then any symbol follows. The model is an embedding E [V, D] and an
//! output head W [V, D] with bias b [V]: the logits of the next token after x are E[x]·Wᵀ + b.
//! Each step takes a batch of N tokens and makes ONE call,
//! [`Engine::compute_linear_into`](xent::Engine::compute_linear_into), which returns the mean
//! loss and writes ∂loss/∂H, ∂loss/∂W and ∂loss/∂b into buffers the loop reuses; the [N, V]
//! logits are never held. SGD then updates W and b, and scatter-adds ∂loss/∂H into E's rows.
//! Every few steps a loss-only call (no gradient slices, so no backward products) scores held-out
//! text. The loss falls from ln V towards the chain's entropy; the program exits non-zero if it
//! did not fall below 0.7 of where it started.
//!
//! ```text
//! cargo run --release --example train_lm_head [SEED]
//! ```

use std::process::ExitCode;
use std::time::Instant;

use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};
use xent::{Engine, LinearGradsMut, Request};

/// The vocabulary: many symbols.
const VOCAB: usize = 4096;
/// The width of the embedding and of the head.
const DIM: usize = 64;
/// The likely successors of each symbol, and their probabilities.
const SUCCESSORS: [f64; 4] = [0.55, 0.25, 0.12, 0.08];
/// How often any symbol at all follows instead, uniformly.
const NOISE: f64 = 0.05;
const TRAIN_TOKENS: usize = 100_000;
const HELD_OUT_TOKENS: usize = 8192;
const BATCH: usize = 1024;
const STEPS: usize = 300;
/// The step size. The mean's gradient carries 1/N, and a symbol's embedding row is in a batch
/// only about N/V times, so plain SGD on the mean takes a large one.
const LEARNING_RATE: f32 = 100.0;
const REPORT_EVERY: usize = 25;
const DEFAULT_SEED: u64 = 42;

/// A random sparse Markov chain over the vocabulary.
struct Chain {
    /// `SUCCESSORS.len()` likely successors per symbol, row by row.
    next: Vec<usize>,
}

impl Chain {
    fn new(rng: &mut impl Rng) -> Self {
        let next = (0..VOCAB * SUCCESSORS.len())
            .map(|_| rng.random_range(0..VOCAB))
            .collect();
        Chain { next }
    }

    fn successors(&self, symbol: usize) -> &[usize] {
        let k = SUCCESSORS.len();
        &self.next[symbol * k..(symbol + 1) * k]
    }

    /// P(next = `to` | current = `from`).
    fn probability(&self, from: usize, to: usize) -> f64 {
        let likely: f64 = (self.successors(from).iter().zip(SUCCESSORS))
            .filter(|&(&s, _)| s == to)
            .map(|(_, p)| p)
            .sum();
        (1.0 - NOISE) * likely + NOISE / VOCAB as f64
    }

    /// The entropy of the next symbol after `from`, in nats: the least expected loss there.
    fn entropy(&self, from: usize) -> f64 {
        let mut candidates = self.successors(from).to_vec();
        candidates.sort_unstable();
        candidates.dedup();
        let likely: f64 = candidates
            .iter()
            .map(|&to| {
                let p = self.probability(from, to);
                -p * p.ln()
            })
            .sum();
        let p_other = NOISE / VOCAB as f64;
        likely - (VOCAB - candidates.len()) as f64 * p_other * p_other.ln()
    }

    fn sample(&self, rng: &mut impl Rng, from: usize) -> usize {
        let u: f64 = rng.random();
        if u < NOISE {
            return rng.random_range(0..VOCAB);
        }
        let mut u = (u - NOISE) / (1.0 - NOISE);
        for (&to, p) in self.successors(from).iter().zip(SUCCESSORS) {
            if u < p {
                return to;
            }
            u -= p;
        }
        *self.successors(from).last().expect("successors")
    }

    fn text(&self, rng: &mut impl Rng, tokens: usize) -> Vec<usize> {
        let mut text = Vec::with_capacity(tokens);
        let mut symbol = rng.random_range(0..VOCAB);
        for _ in 0..tokens {
            text.push(symbol);
            symbol = self.sample(rng, symbol);
        }
        text
    }
}

/// The model's parameters.
struct Model {
    embedding: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Model {
    /// Copies the embeddings of `tokens` into `hidden`, row by row.
    fn embed(&self, tokens: &[usize], hidden: &mut [f32]) {
        for (&t, row) in tokens.iter().zip(hidden.chunks_mut(DIM)) {
            row.copy_from_slice(&self.embedding[t * DIM..(t + 1) * DIM]);
        }
    }

    /// The mean loss of predicting each token of `text` from the one before, with a loss-only
    /// call: no gradient slices, so xent skips the backward products.
    fn evaluate(&self, engine: &Engine, text: &[usize]) -> Result<f32, xent::Error> {
        let n = text.len() - 1;
        let mut hidden = vec![0.0; n * DIM];
        self.embed(&text[..n], &mut hidden);
        let target: Vec<i64> = text[1..].iter().map(|&t| t as i64).collect();
        let request = Request::linear_cross_entropy(
            &hidden[..],
            [n, DIM],
            &self.weight[..],
            [VOCAB, DIM],
            &target[..],
        )
        .linear_bias(&self.bias);
        let out = engine.compute_linear_into(&request, LinearGradsMut::default())?;
        Ok(out.loss.scalar().expect("the mean"))
    }
}

fn main() -> ExitCode {
    match train() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train_lm_head: {e}");
            ExitCode::FAILURE
        }
    }
}

fn train() -> Result<(), Box<dyn std::error::Error>> {
    let seed = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|_| format!("not a seed: {arg:?}"))?,
        None => DEFAULT_SEED,
    };
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let chain = Chain::new(&mut rng);
    let corpus = chain.text(&mut rng, TRAIN_TOKENS);
    let held_out = chain.text(&mut rng, HELD_OUT_TOKENS);
    // The least loss any model can expect on the held-out text: the chain's entropy at each of
    // its tokens, averaged.
    let floor = held_out[..HELD_OUT_TOKENS - 1]
        .iter()
        .map(|&t| chain.entropy(t))
        .sum::<f64>()
        / (HELD_OUT_TOKENS - 1) as f64;
    println!(
        "seed {seed}: a Markov chain over V = {VOCAB} symbols, {} likely successors each; \
         {TRAIN_TOKENS} tokens to train on, {HELD_OUT_TOKENS} held out",
        SUCCESSORS.len()
    );
    println!(
        "ln V = {:.4} (a uniform guess); the chain's entropy on the held-out text, the least \
         loss there: {floor:.4}",
        (VOCAB as f64).ln()
    );

    let engine = Engine::cpu();
    println!(
        "training on {}: E, W [{VOCAB}, {DIM}], b [{VOCAB}]; batch {BATCH}, SGD at {LEARNING_RATE}",
        engine.device()
    );
    let init = Normal::new(0.0_f32, 0.1).expect("a positive deviation");
    let mut model = Model {
        embedding: (0..VOCAB * DIM).map(|_| init.sample(&mut rng)).collect(),
        weight: (0..VOCAB * DIM).map(|_| init.sample(&mut rng)).collect(),
        bias: vec![0.0; VOCAB],
    };

    // Reused every step: the batch, and the buffers xent writes the gradients into.
    let mut tokens = vec![0_usize; BATCH];
    let mut target = vec![0_i64; BATCH];
    let mut hidden = vec![0.0_f32; BATCH * DIM];
    let mut d_hidden = vec![0.0_f32; BATCH * DIM];
    let mut d_weight = vec![0.0_f32; VOCAB * DIM];
    let mut d_bias = vec![0.0_f32; VOCAB];

    let first = model.evaluate(&engine, &held_out)?;
    println!("step   0: held-out loss {first:.4}");
    let mut train_loss = 0.0;
    let mut last = first;
    for step in 1..=STEPS {
        for (token, t) in tokens.iter_mut().zip(&mut target) {
            let i = rng.random_range(0..TRAIN_TOKENS - 1);
            *token = corpus[i];
            *t = corpus[i + 1] as i64;
        }
        model.embed(&tokens, &mut hidden);
        let request = Request::linear_cross_entropy(
            &hidden[..],
            [BATCH, DIM],
            &model.weight[..],
            [VOCAB, DIM],
            &target[..],
        )
        .linear_bias(&model.bias);
        // One fused call: the mean loss, and dH, dW and db written over the buffers.
        let grads = LinearGradsMut {
            hidden: Some(&mut d_hidden),
            weight: Some(&mut d_weight),
            bias: Some(&mut d_bias),
            add: false,
        };
        let loss = engine.compute_linear_into(&request, grads)?.loss;
        train_loss += loss.scalar().expect("the mean");

        for (w, g) in model.weight.iter_mut().zip(&d_weight) {
            *w -= LEARNING_RATE * g;
        }
        for (b, g) in model.bias.iter_mut().zip(&d_bias) {
            *b -= LEARNING_RATE * g;
        }
        // The embedding's gradient: each row of dH added to the row of E it came from.
        for (&t, g) in tokens.iter().zip(d_hidden.chunks(DIM)) {
            for (e, g) in model.embedding[t * DIM..(t + 1) * DIM].iter_mut().zip(g) {
                *e -= LEARNING_RATE * g;
            }
        }

        if step % REPORT_EVERY == 0 {
            last = model.evaluate(&engine, &held_out)?;
            println!(
                "step {step:>3}: train loss {:.4} (mean of the last {REPORT_EVERY} steps), \
                 held-out loss {last:.4}",
                train_loss / REPORT_EVERY as f32
            );
            train_loss = 0.0;
        }
    }
    println!(
        "held-out loss fell from {first:.4} to {last:.4} (ln V {:.4}, least {floor:.4}) in {:.1} s",
        (VOCAB as f64).ln(),
        started.elapsed().as_secs_f64()
    );
    if !last.is_finite() || last >= 0.7 * first {
        return Err(format!(
            "the loss did not fall below 0.7 of where it started: {first:.4} -> {last:.4}"
        )
        .into());
    }
    Ok(())
}
