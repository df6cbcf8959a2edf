//! Linear heads whose products sum over many terms, on every GPU adapter against the float64
//! reference: each of the three products' depth K long in turn (the logits' K = D, dH's K = V,
//! dW's and db's K = the rows of a chunk), at 40 000 to 70 000, past where a kernel's loop could
//! stop short (llvmpipe ends a shader's loops after 65 535 iterations in all).

mod common;

use xent::{Engine, Output, Request};

/// Each part (loss, lse, dH, dW, db) of one head within 1e-4 of the reference's in relative norm
/// on every GPU adapter; the failures are listed together.
fn check(test: &str, [n, d, v]: [usize; 3], one_chunk: bool) {
    let mut rng = common::rng(test);
    let rng = &mut rng;
    let what = format!("[{n}, {d}, {v}]");
    let hidden = common::logits(rng, n * d, 1.0);
    let weight = common::logits(rng, v * d, 1.0 / (d as f32).sqrt());
    let bias = common::logits(rng, v, 0.5);
    let targets = common::targets(rng, n, v, 0.1);
    let mut request =
        Request::linear_cross_entropy(&hidden[..], [n, d], &weight[..], [v, d], &targets[..])
            .linear_bias(&bias)
            .with_lse(true)
            .with_grad(true);
    if one_chunk {
        request = request.linear_chunk_bytes(n * v * 4);
    }
    let want = Engine::reference().compute(&request).unwrap();
    let gpus = common::gpus();
    common::check_expected_backends(gpus);
    if gpus.is_empty() {
        eprintln!(
            "{test}: no GPU adapter, nothing to check (set XENT_REQUIRE_GPU=1 to fail instead)"
        );
    }
    let mut failures = Vec::new();
    for engine in gpus {
        let got = engine.compute(&request).unwrap();
        failures.extend(off(&format!("{} {what}", engine.device()), got, &want));
    }
    assert!(failures.is_empty(), "{}", failures.join("; "));
}

/// The parts of `got` off `want`'s by more than 1e-4 in relative norm, each named.
fn off(what: &str, got: Output, want: &Output) -> Vec<String> {
    let want = want.clone();
    let (g, w) = (got.linear_grads.unwrap(), want.linear_grads.unwrap());
    let parts = [
        (
            "loss",
            vec![got.loss.scalar().unwrap()],
            vec![want.loss.scalar().unwrap()],
        ),
        ("lse", got.lse.unwrap(), want.lse.unwrap()),
        ("dH", got.grad.unwrap(), want.grad.unwrap()),
        ("dW", g.weight, w.weight),
        ("db", g.bias.unwrap(), w.bias.unwrap()),
    ];
    let mut failures = Vec::new();
    for (name, got, want) in parts {
        let error = common::relative_norm_error(&got, &want);
        if error.is_nan() || error > 1e-4 {
            failures.push(format!("{what}: {name} off the reference's by {error:.2e}"));
        }
    }
    failures
}

#[test]
fn the_logits_product_sums_over_a_long_d() {
    check("long D", [2, 40_000, 3], false);
}

#[test]
fn the_hidden_states_gradient_sums_over_a_long_v() {
    check("long V", [2, 3, 65_537], false);
}

#[test]
fn the_heads_gradients_sum_over_a_long_chunk() {
    check("long chunk", [70_000, 2, 3], true);
}
