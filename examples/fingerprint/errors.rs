//! Bad requests, each hashed by its error's `Display` text: the checks every engine runs before
//! it computes anything.

use half::f16;
use xent::{
    Base, Engine, Input, InputKind, LossKind, Options, Reduction, Request, Shard, Target,
    merge_shards,
};

use crate::report::Report;

const X: [f32; 6] = [0.5, -1.0, 2.0, 0.25, 1.5, -0.5];
const P: [f32; 6] = [0.2, 0.3, 0.5, 0.1, 0.1, 0.8];
const T: [i64; 2] = [0, 2];

/// Each bad request through the call it is bad for.
pub fn run(engine: &Engine, report: &mut Report) {
    let ce = || Request::cross_entropy(&X[..], [2, 3], &T[..]);
    let bce = || Request::binary_cross_entropy(&X[..], [2, 3], &P[..]);
    let nan = [0.5, f32::NAN, 1.0, 2.0, 0.0, 0.0];
    let inf_target = [0.2, 0.3, 0.5, 0.1, f32::INFINITY, 0.8];
    let x16: Vec<f16> = X.iter().map(|&v| f16::from_f32(v)).collect();
    let requests: [(&str, Request); 28] = [
        (
            "target out of range",
            Request::cross_entropy(&X[..], [2, 3], &[0_i64, 3][..]),
        ),
        (
            "negative i32 target",
            Request::cross_entropy(&X[..], [2, 3], &[-1_i32, 0][..]),
        ),
        (
            "input length",
            Request::cross_entropy(&X[..5], [2, 3], &T[..]),
        ),
        (
            "target length",
            Request::cross_entropy(&X[..], [2, 3], &T[..1]),
        ),
        (
            "dense target length",
            Request::cross_entropy(&X[..], [2, 3], &P[..4]),
        ),
        (
            "no classes",
            Request::cross_entropy(Input::F32(&[]), [2, 0], &T[..]),
        ),
        (
            "shape overflow",
            Request::cross_entropy(Input::F32(&[]), [usize::MAX, 2], &T[..]),
        ),
        ("smoothing 1.5", ce().label_smoothing(1.5)),
        ("smoothing NaN", ce().label_smoothing(f32::NAN)),
        ("negative z-loss", ce().z_loss(-1.0)),
        ("z-loss in bits", ce().z_loss(1e-4).base(Base::Two)),
        ("softcap 0", ce().softcap(0.0)),
        (
            "softcap on log-probs",
            ce().softcap(30.0).input_kind(InputKind::LogProbs),
        ),
        ("log_target on cross-entropy", ce().log_target(true)),
        ("pos_weight on cross-entropy", ce().pos_weight(&[1.0; 3])),
        ("weight length", ce().weight(&[1.0; 2])),
        ("negative weight", ce().weight(&[1.0, -0.5, 1.0])),
        (
            "infinite pos_weight",
            bce().pos_weight(&[1.0, f32::INFINITY, 1.0]),
        ),
        ("lse on BCE", bce().with_lse(true)),
        ("base on BCE", bce().base(Base::Ten)),
        ("BCE on log-probs", bce().input_kind(InputKind::LogProbs)),
        (
            "weight on KL",
            Request::kl_div(&X[..], [2, 3], &P[..]).weight(&[1.0; 3]),
        ),
        (
            "class targets on KL",
            Request::new(LossKind::KlDiv, &X[..], [2, 3], Target::ClassesI64(&T)),
        ),
        (
            "entropy with a target",
            Request::new(LossKind::Entropy, &X[..], [2, 3], Target::Dense(&P)),
        ),
        (
            "cross-entropy without a target",
            Request::new(LossKind::CrossEntropy, &X[..], [2, 3], Target::None),
        ),
        (
            "not a probability",
            Request::entropy(&X[..], [2, 3]).input_kind(InputKind::Probs),
        ),
        (
            "NaN in strict mode",
            Request::cross_entropy(&nan[..], [2, 3], &T[..]).strict(true),
        ),
        (
            "+inf target in strict mode",
            Request::kl_div(&P[..], [2, 3], &inf_target[..])
                .input_kind(InputKind::Probs)
                .strict(true),
        ),
    ];
    for (name, request) in requests {
        report.error(
            &format!("error: {name} | compute"),
            &engine.compute(&request),
        );
    }
    let f16_in_place = Request::cross_entropy(&x16[..], [2, 3], &T[..]).grad_in_place(true);
    report.error(
        "error: in-place gradient of f16 input | compute",
        &engine.compute(&f16_in_place),
    );
    let mut grad = [0.0_f32; 5];
    report.error(
        "error: gradient length | compute_into",
        &engine.compute_into(&ce(), &mut grad),
    );
    let mut logits = X;
    report.error(
        "error: in place over a non-empty input | compute_in_place",
        &engine.compute_in_place(&ce(), &mut logits),
    );
    let mut short = [0.5_f32; 5];
    let empty = ce().with_input(Input::F32(&[]));
    report.error(
        "error: in-place logits length | compute_in_place",
        &engine.compute_in_place(&empty, &mut short),
    );
    let mut strict = nan;
    report.error(
        "error: NaN in strict mode | compute_in_place",
        &engine.compute_in_place(&empty.strict(true), &mut strict),
    );
    shards(engine, report);
}

/// Vocabulary shards that cannot be one, or do not tile the row.
fn shards(engine: &Engine, report: &mut Report) {
    let shard = |first_class| Shard {
        first_class,
        total_classes: 5,
    };
    let soft = Request::cross_entropy(&X[..], [2, 3], &P[..]);
    report.error(
        "error: shard of soft targets | shard_stats",
        &engine.shard_stats(&soft, shard(0)),
    );
    let ce = Request::cross_entropy(&X[..], [2, 3], &T[..]);
    report.error(
        "error: shard past the row | shard_stats",
        &engine.shard_stats(&ce, shard(3)),
    );
    let logprobs = ce.input_kind(InputKind::LogProbs);
    report.error(
        "error: shard of log-probs | shard_stats",
        &engine.shard_stats(&logprobs, shard(0)),
    );
    let far = Request::cross_entropy(&X[..], [2, 3], &[0_i64, 7][..]);
    report.error(
        "error: shard target past the total | shard_stats",
        &engine.shard_stats(&far, shard(0)),
    );
    let o = Options::default();
    let Ok(left) = engine.shard_stats(&ce, shard(0)) else {
        report.surprise("error: shards", "the left shard failed");
        return;
    };
    report.error(
        "error: no shards | merge_shards",
        &merge_shards(&[], &T, None, &o),
    );
    report.error(
        "error: shards with a gap | merge_shards",
        &merge_shards(std::slice::from_ref(&left), &T, None, &o),
    );
    report.error(
        "error: overlapping shards | merge_shards",
        &merge_shards(&[left.clone(), left.clone()], &T, None, &o),
    );
    report.error(
        "error: shard rows against targets | merge_shards",
        &merge_shards(std::slice::from_ref(&left), &[0, 1, 2], None, &o),
    );
    let Ok(right) = engine.shard_stats(&Request::cross_entropy(&X[..4], [2, 2], &T[..]), shard(3))
    else {
        report.surprise("error: shards", "the right shard failed");
        return;
    };
    let sum = Options {
        reduction: Reduction::Sum,
        ..o
    };
    let merged = merge_shards(&[right, left], &T, None, &sum);
    report.ok(
        "shards 2x3+2x2 of 5, sum | merge_shards",
        &merged,
        |h, m| h.merged(m),
    );
    if let Ok(merged) = merged {
        let mut grad = [0.0_f32; 3];
        let one_row = Request::cross_entropy(&X[..3], [1, 3], &T[..1]);
        report.error(
            "error: shard gradient of other rows | shard_grad",
            &engine.shard_grad(&one_row, shard(0), &merged, &mut grad),
        );
        let mut short = [0.0_f32; 5];
        report.error(
            "error: shard gradient length | shard_grad",
            &engine.shard_grad(&ce, shard(0), &merged, &mut short),
        );
    }
}
