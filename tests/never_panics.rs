//! Whatever a caller passes, every engine answers with `Ok` or a typed `Err`, never a panic, and
//! all engines (and `validate`) agree on which, with the same message. Cases are mostly valid
//! requests of every loss and option, with special values (NaN, ±inf, huge, subnormal) sprinkled
//! in; about a third carry one fault.

mod common;

use half::f16;
use proptest::prelude::*;
use xent::{Base, Engine, Input, InputKind, LossKind, Reduction, Request, Target};

/// Special floats a caller might pass.
fn special() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(f32::MAX),
        Just(-f32::MAX),
        Just(1e-40_f32),
        Just(-0.0_f32),
        Just(-1.0_f32),
        Just(2.5_f32),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    loss: LossKind,
    batch: usize,
    classes: usize,
    /// B·C + 1 values each, so that a fault can make a length one too long.
    logits: Vec<f32>,
    unit: Vec<f32>,
    class_targets: Vec<i64>,
    weight: Vec<f32>,
    /// (where, what) pairs overwritten in logit inputs.
    specials: Vec<(usize, f32)>,
    reduction: Reduction,
    kind: u8,
    base: Base,
    smoothing: f32,
    z_loss: f32,
    softcap: f32,
    /// weight, pos_weight, smoothing, z_loss, softcap, lse, grad, in place, f16, i32, log_target,
    /// strict, dense CE target.
    picks: [bool; 13],
    fault: u8,
    fault_value: f32,
    fault_at: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..6, 1usize..40)
        .prop_flat_map(|(batch, classes)| {
            let n = batch * classes + 1;
            (
                (
                    prop_oneof![
                        Just(LossKind::CrossEntropy),
                        Just(LossKind::BinaryCrossEntropy),
                        Just(LossKind::KlDiv),
                        Just(LossKind::Entropy)
                    ],
                    Just((batch, classes)),
                    proptest::collection::vec(-30.0_f32..30.0, n),
                    proptest::collection::vec(0.0_f32..1.0, n),
                    proptest::collection::vec(0..classes as i64, batch + 1),
                    proptest::collection::vec(0.1_f32..2.0, classes + 1),
                    proptest::collection::vec((0..n, special()), 0..3),
                ),
                (
                    prop_oneof![
                        Just(Reduction::None),
                        Just(Reduction::Sum),
                        Just(Reduction::Mean),
                        Just(Reduction::BatchMean)
                    ],
                    0u8..3,
                    prop_oneof![3 => Just(Base::E), 1 => Just(Base::Two), 1 => Just(Base::Ten)],
                    0.0_f32..=1.0,
                    0.0_f32..1e-3,
                    1.0_f32..50.0,
                    any::<[bool; 13]>(),
                    0u8..18,
                    prop_oneof![special(), -5.0_f32..5.0],
                    0usize..1000,
                ),
            )
        })
        .prop_map(|(a, b)| {
            let (loss, (batch, classes), logits, unit, class_targets, weight, specials) = a;
            let (
                reduction,
                kind,
                base,
                smoothing,
                z_loss,
                softcap,
                picks,
                fault,
                fault_value,
                fault_at,
            ) = b;
            Case {
                loss,
                batch,
                classes,
                logits,
                unit,
                class_targets,
                weight,
                specials,
                reduction,
                kind,
                base,
                smoothing,
                z_loss,
                softcap,
                picks,
                fault,
                fault_value,
                fault_at,
            }
        })
}

/// The faults, one per case at most.
const SHORT_INPUT: u8 = 0;
const LONG_TARGET: u8 = 1;
const TARGET_OUT_OF_RANGE: u8 = 2;
const NO_CLASSES: u8 = 3;
const BAD_WEIGHT_VALUE: u8 = 4;
const LONG_WEIGHT: u8 = 5;
const BAD_SMOOTHING: u8 = 6;
const BAD_Z_LOSS: u8 = 7;
const BAD_SOFTCAP: u8 = 8;
const STRICT_NAN: u8 = 9;
const NOT_A_PROBABILITY: u8 = 10;
const FOREIGN_OPTION: u8 = 11;

/// Every engine's answer to the case, as `Ok(())` or the error's message.
fn answers(c: &Case, engines: &[Engine]) -> Vec<(String, Result<(), String>)> {
    let [
        w,
        pw,
        smooth,
        z,
        cap,
        lse,
        grad,
        in_place,
        half,
        i32_t,
        log_target,
        strict,
        dense_ce,
    ] = c.picks;
    let classes = if c.fault == NO_CLASSES { 0 } else { c.classes };
    let n = c.batch * classes;
    let ce = c.loss == LossKind::CrossEntropy;
    let kind = match (c.kind, c.loss) {
        (1, _) => InputKind::Probs,
        (2, loss) if loss != LossKind::BinaryCrossEntropy => InputKind::LogProbs,
        _ => InputKind::Logits,
    };
    let input_len = if c.fault == SHORT_INPUT {
        n.saturating_sub(1)
    } else {
        n
    };
    let mut input: Vec<f32> = if kind == InputKind::Probs {
        c.unit[..input_len].to_vec()
    } else {
        let mut x = c.logits[..input_len].to_vec();
        for &(at, v) in &c.specials {
            if at < x.len() {
                x[at] = v;
            }
        }
        x
    };
    if c.fault == NOT_A_PROBABILITY && !input.is_empty() {
        let at = c.fault_at % input.len();
        input[at] = 1.5;
    }
    if c.fault == STRICT_NAN && !input.is_empty() {
        let at = c.fault_at % input.len();
        input[at] = f32::NAN;
    }
    let halves: Vec<f16> = input.iter().map(|&v| f16::from_f32(v)).collect();
    let target_len = |len: usize| len + usize::from(c.fault == LONG_TARGET);
    let mut class_targets = c.class_targets[..target_len(c.batch)].to_vec();
    if c.fault == TARGET_OUT_OF_RANGE {
        let at = c.fault_at % class_targets.len();
        class_targets[at] = c.classes as i64 + (c.fault_at % 3) as i64;
    }
    let i32_targets: Vec<i32> = class_targets.iter().map(|&t| t as i32).collect();
    let dense: Vec<f32> = if log_target {
        c.unit[..target_len(n)].iter().map(|p| p.ln()).collect()
    } else {
        c.unit[..target_len(n)].to_vec()
    };
    let target = match c.loss {
        LossKind::Entropy => Target::None,
        LossKind::CrossEntropy if !dense_ce && i32_t => Target::ClassesI32(&i32_targets),
        LossKind::CrossEntropy if !dense_ce => Target::ClassesI64(&class_targets),
        _ => Target::Dense(&dense),
    };
    let input = if half && !in_place {
        Input::F16(&halves)
    } else {
        Input::F32(&input)
    };
    let mut weight = c.weight[..classes + usize::from(c.fault == LONG_WEIGHT)].to_vec();
    if c.fault == BAD_WEIGHT_VALUE && !weight.is_empty() {
        let at = c.fault_at % weight.len();
        weight[at] = c.fault_value;
    }
    let logits_ce = ce && kind == InputKind::Logits;
    let mut request = Request::new(c.loss, input, [c.batch, classes], target)
        .reduction(c.reduction)
        .input_kind(kind)
        .with_lse(lse && kind == InputKind::Logits && c.loss != LossKind::BinaryCrossEntropy)
        .with_grad(grad)
        .grad_in_place(in_place)
        .log_target(log_target && c.loss == LossKind::KlDiv)
        .strict((strict && c.specials.is_empty()) || c.fault == STRICT_NAN);
    if c.loss != LossKind::BinaryCrossEntropy && !(z && logits_ce) {
        request = request.base(c.base);
    }
    if (w
        && matches!(
            c.loss,
            LossKind::CrossEntropy | LossKind::BinaryCrossEntropy
        ))
        || matches!(c.fault, BAD_WEIGHT_VALUE | LONG_WEIGHT)
    {
        request = request.weight(&weight);
    }
    if pw && c.loss == LossKind::BinaryCrossEntropy && kind == InputKind::Logits {
        request = request.pos_weight(&c.weight[..classes]);
    }
    if smooth && ce {
        request = request.label_smoothing(c.smoothing);
    }
    if z && logits_ce {
        request = request.z_loss(c.z_loss);
    }
    if cap && logits_ce {
        request = request.softcap(c.softcap);
    }
    request = match c.fault {
        BAD_SMOOTHING => request.label_smoothing(c.fault_value),
        BAD_Z_LOSS => request.z_loss(c.fault_value),
        BAD_SOFTCAP => request.softcap(c.fault_value),
        FOREIGN_OPTION if c.loss == LossKind::KlDiv => request.label_smoothing(0.1),
        FOREIGN_OPTION => request.log_target(true),
        _ => request,
    };
    let message = |r: xent::Result<xent::Output>| r.map(drop).map_err(|e| e.to_string());
    let mut out = vec![(
        "validate".to_owned(),
        request.validate().map_err(|e| e.to_string()),
    )];
    for engine in engines {
        out.push((
            engine.device().to_string(),
            message(engine.compute(&request)),
        ));
        // A caller's gradient slice of the wrong length is an error too.
        let mut short = vec![0.0_f32; n.saturating_sub(1)];
        if n > 0 {
            let into = engine.compute_into(&request, &mut short);
            assert!(
                into.is_err(),
                "{}: a short gradient slice was taken",
                engine.device()
            );
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_engine_answers_ok_or_the_same_error(c in case()) {
        let engines: Vec<Engine> = common::under_test()
            .into_iter()
            .chain([Engine::reference()])
            .collect();
        let answers = answers(&c, &engines);
        let (_, first) = &answers[0];
        for (who, answer) in &answers[1..] {
            prop_assert_eq!(first, answer, "validate against {}", who);
        }
        for (_, answer) in &answers {
            if let Err(message) = answer {
                prop_assert_eq!(message.lines().count(), 1, "{}", message);
            }
        }
        // A case with no fault is a valid request.
        if c.fault > FOREIGN_OPTION {
            prop_assert!(first.is_ok(), "{:?}", first);
        }
    }
}
