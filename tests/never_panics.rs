//! Whatever a caller passes, every engine answers with `Ok` or a typed `Err`, never a panic, and
//! all engines (and `validate`) agree on which, with the same message. Cases are mostly valid
//! requests of every loss and option, with special values (NaN, ±inf, huge, subnormal) sprinkled
//! in; about a third carry one fault.

mod common;

use half::{bf16, f16};
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

/// Any of the losses.
fn any_loss() -> impl Strategy<Value = LossKind> {
    prop_oneof![
        Just(LossKind::CrossEntropy),
        Just(LossKind::BinaryCrossEntropy),
        Just(LossKind::KlDiv),
        Just(LossKind::Entropy),
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
    /// weight, pos_weight, smoothing, z_loss, softcap, lse, grad, in place, f16 or bf16, i32,
    /// log_target, strict, dense CE target.
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
                    any_loss(),
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
    let brains: Vec<bf16> = input.iter().map(|&v| bf16::from_f32(v)).collect();
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
    // A 16-bit case is f16 or bf16, by the parity of where its fault would go.
    let input = match (half && !in_place, c.fault_at % 2) {
        (true, 0) => Input::F16(&halves),
        (true, _) => Input::Bf16(&brains),
        (false, _) => Input::F32(&input),
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

/// A device-resident request with arbitrary geometry: buffer size, offset, usage, shape, dtype,
/// target placement and values, options.
#[derive(Clone, Debug)]
struct DeviceCase {
    loss: LossKind,
    shape: [usize; 2],
    dtype: u8,
    /// Bytes of the input buffer past what the request needs (negative: too few).
    slack: i64,
    offset: u64,
    storage: bool,
    /// The kind of target, when `faulty`; else the loss's own kind.
    target: u8,
    faulty: bool,
    target_values: Vec<i64>,
    target_offset: u64,
    reduction: Reduction,
    smoothing: f32,
    grad: bool,
    in_place: bool,
    values: Vec<f32>,
    /// A vocabulary shard: its first class, and classes of the row past the shard's.
    shard: Option<(usize, usize)>,
}

fn device_case() -> impl Strategy<Value = DeviceCase> {
    (
        (
            any_loss(),
            (0usize..5, 0usize..40),
            0u8..3,
            prop_oneof![Just(-16_i64), Just(0), Just(0), Just(64), Just(300)],
            prop_oneof![Just(0_u64), Just(256), Just(256), Just(4)],
            proptest::bool::weighted(0.9),
        ),
        (
            (0u8..5, proptest::bool::weighted(0.15)),
            proptest::collection::vec(
                prop_oneof![8 => 0i64..40, 1 => Just(-100), 1 => Just(-3), 1 => Just(1 << 40)],
                0..6,
            ),
            prop_oneof![Just(0_u64), Just(256), Just(256), Just(8)],
            prop_oneof![
                Just(Reduction::Mean),
                Just(Reduction::Sum),
                Just(Reduction::None),
                Just(Reduction::BatchMean)
            ],
            prop_oneof![6 => Just(0.0_f32), 2 => Just(0.1), 1 => Just(1.5)],
            any::<bool>(),
            any::<bool>(),
            proptest::collection::vec(prop_oneof![-5.0f32..5.0, special()], 0..64),
            proptest::option::weighted(
                0.25,
                (
                    prop_oneof![2 => Just(0_usize), 1 => 0usize..50],
                    prop_oneof![2 => Just(0_usize), 1 => 0usize..50],
                ),
            ),
        ),
    )
        .prop_map(
            |(
                (loss, (batch, classes), dtype, slack, offset, storage),
                (
                    (target, faulty),
                    target_values,
                    target_offset,
                    reduction,
                    smoothing,
                    grad,
                    in_place,
                    values,
                    shard,
                ),
            )| DeviceCase {
                // Shards take cross-entropy; other losses there are refusals, left to faulty cases.
                loss: if shard.is_some() && !faulty {
                    LossKind::CrossEntropy
                } else {
                    loss
                },
                shape: [batch, classes],
                dtype,
                slack,
                offset,
                storage,
                target,
                faulty,
                target_values,
                target_offset,
                reduction,
                smoothing,
                grad,
                in_place,
                values,
                shard,
            },
        )
}

/// Records, submits and reads back one device case: `Err` holds the one-line message of the
/// typed error it met (a multi-line one fails the test).
fn device_answer(engine: &Engine, c: &DeviceCase) -> Result<(), String> {
    use wgpu::util::DeviceExt;
    let (device, _) = engine.wgpu().expect("a GPU engine");
    let usage = if c.storage {
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC
    } else {
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_SRC
    };
    let dtype = [xent::Dtype::F32, xent::Dtype::F16, xent::Dtype::Bf16][c.dtype as usize];
    let needed = c.offset + (c.shape[0] * c.shape[1] * dtype.size()).next_multiple_of(16) as u64;
    let size = (needed as i64 + c.slack).max(4) as usize;
    let mut bytes: Vec<u8> = vec![0x3f; c.offset as usize];
    bytes.extend(c.values.iter().flat_map(|v| v.to_le_bytes()));
    bytes.resize(size.next_multiple_of(4), 0x3f);
    let input = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("proptest input"),
        contents: &bytes,
        usage,
    });
    let mut raw: Vec<u8> = vec![0; c.target_offset as usize];
    raw.extend(c.target_values.iter().flat_map(|v| v.to_le_bytes()));
    // Room for a dense [B, C] target too, unless the case is faulty.
    let dense = c.target_offset as usize + (c.shape[0] * c.shape[1] * 4).next_multiple_of(16);
    let room = if c.faulty {
        raw.len()
    } else {
        raw.len().max(dense)
    };
    raw.resize(room.next_multiple_of(16).max(16), 0x3e);
    let targets = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("proptest targets"),
        contents: &raw,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    });
    // Unless the case is faulty: one class index per row, and the loss's own kind of target.
    let mut host_targets: Vec<i64> = c.target_values.clone();
    if !c.faulty {
        host_targets.resize(c.shape[0], 0);
    }
    let kind = match (c.faulty, c.loss) {
        (true, _) => c.target,
        (false, LossKind::Entropy) => 0,
        (false, LossKind::CrossEntropy) => 1 + c.target % 3,
        (false, _) => 4,
    };
    let smoothing = if c.faulty || c.loss == LossKind::CrossEntropy {
        c.smoothing
    } else {
        0.0
    };
    let target = match kind {
        0 => xent::DeviceTarget::None,
        1 => xent::DeviceTarget::Host(Target::ClassesI64(&host_targets)),
        2 => xent::DeviceTarget::Classes {
            buffer: &targets,
            offset: c.target_offset,
            index: xent::IndexType::I64,
        },
        3 => xent::DeviceTarget::Classes {
            buffer: &targets,
            offset: c.target_offset,
            index: xent::IndexType::I32,
        },
        _ => xent::DeviceTarget::Dense {
            buffer: &targets,
            offset: c.target_offset,
        },
    };
    let mut request = xent::DeviceRequest::new(
        c.loss,
        xent::DeviceInput {
            buffer: &input,
            offset: c.offset,
            shape: c.shape,
            dtype,
        },
        target,
    );
    request.options.reduction = c.reduction;
    request.options.label_smoothing = smoothing;
    request.options.grad = c.grad;
    request.options.grad_in_place = c.in_place;
    let one_line = |e: xent::Error| {
        let message = e.to_string();
        assert_eq!(message.lines().count(), 1, "{message}");
        message
    };
    if let Some((first, past)) = c.shard {
        // A shard's statistics, their merge alone, and its gradient pass from that merge.
        let (_, queue) = engine.wgpu().expect("a GPU engine");
        let shard = xent::Shard {
            first_class: first,
            total_classes: first + c.shape[1] + past,
        };
        let mut encoder = device.create_command_encoder(&Default::default());
        let out = engine
            .record_shard_stats(&mut encoder, &request, shard)
            .map_err(one_line)?;
        queue.submit([encoder.finish()]);
        let stats = engine.read_shard_stats(&out).map_err(one_line)?;
        let options = request.options;
        let merged =
            xent::merge_shards(&[stats], &host_targets, None, &options).map_err(one_line)?;
        let mut encoder = device.create_command_encoder(&Default::default());
        let out = engine
            .record_shard_grad(&mut encoder, &request, shard, &merged)
            .map_err(one_line)?;
        queue.submit([encoder.finish()]);
        return engine.check_targets(&out).map_err(one_line);
    }
    let out = engine.submit(&request).map_err(one_line)?;
    engine.check_targets(&out).map_err(one_line)?;
    if out.loss.is_some() {
        engine.read_loss(&out).map_err(one_line)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn device_resident_requests_answer_ok_or_a_typed_error(c in device_case()) {
        // The property: every call returns (no panic, no wgpu abort), and every error is one
        // typed line (asserted inside).
        for engine in common::gpus() {
            let _ = device_answer(engine, &c);
        }
    }

    #[test]
    fn merging_arbitrary_shard_statistics_answers_ok_or_a_typed_error(
        cuts in proptest::collection::vec((0usize..12, 1usize..6, 0usize..7), 0..4),
        total in 1usize..12,
        targets in proptest::collection::vec(prop_oneof![-1i64..13, Just(-100)], 0..6),
        values in proptest::collection::vec(prop_oneof![-5.0f32..5.0, special()], 6),
        smoothing in prop_oneof![Just(0.0_f32), Just(0.2), Just(-1.0)],
    ) {
        let shards: Vec<xent::ShardStats> = cuts
            .iter()
            .map(|&(first, classes, rows)| xent::ShardStats {
                shard: xent::Shard { first_class: first, total_classes: total },
                classes,
                max: values[..rows.min(6)].to_vec(),
                sum_exp: values[..rows.min(6)].iter().map(|v| v.abs()).collect(),
                target_logit: (0..rows).map(|r| (r % 2 == 0).then_some(values[r % 6])).collect(),
                smoothing_sum: vec![values[0]; rows],
            })
            .collect();
        let options = xent::Options { label_smoothing: smoothing, ..Default::default() };
        if let Err(e) = xent::merge_shards(&shards, &targets, None, &options) {
            prop_assert_eq!(e.to_string().lines().count(), 1);
        }
    }
}
