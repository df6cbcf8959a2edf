//! Device-resident requests (`Engine::record`): logits and targets in wgpu buffers, results left
//! on the device. On every adapter, each must give the same bits as the same request on host
//! slices, in f32, f16 and bf16, with the gradient separate or in place.

mod common;

use half::{bf16, f16};
use rand::Rng;
use rand::rngs::StdRng;
use xent::{
    Base, DeviceInput, DeviceOutput, DeviceRequest, DeviceTarget, Dtype, Engine, Error, IndexType,
    Input, InputKind, LossKind, Options, Reduction, Request, Target,
};

/// Bytes the tests put before and after the data in a buffer, so that offsets are exercised and
/// anything written outside the data is seen.
const GUARD: u64 = 256;
const GUARD_BYTE: u8 = 0xa5;

/// A STORAGE | COPY_SRC | COPY_DST buffer holding `bytes` at offset `GUARD`, between guard bytes.
fn buffer_with(engine: &Engine, bytes: &[u8]) -> wgpu::Buffer {
    let mut contents = vec![GUARD_BYTE; GUARD as usize];
    contents.extend_from_slice(bytes);
    contents.resize(
        (contents.len() + GUARD as usize).next_multiple_of(16),
        GUARD_BYTE,
    );
    common::storage_buffer(engine, &contents)
}

/// The input values of a case, in its dtype.
enum Values {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl Values {
    fn draw(rng: &mut StdRng, dtype: Dtype, n: usize, kind: InputKind) -> Self {
        let x: Vec<f32> = match kind {
            InputKind::Probs => (0..n).map(|_| rng.random_range(0.001..0.999)).collect(),
            InputKind::LogProbs => (0..n).map(|_| rng.random_range(-9.0..-0.01)).collect(),
            InputKind::Logits => common::logits(rng, n, 4.0),
        };
        match dtype {
            Dtype::F32 => Values::F32(x),
            Dtype::F16 => Values::F16(x.iter().map(|&v| f16::from_f32(v)).collect()),
            Dtype::Bf16 => Values::Bf16(x.iter().map(|&v| bf16::from_f32(v)).collect()),
        }
    }

    fn input(&self) -> Input<'_> {
        match self {
            Values::F32(v) => Input::F32(v),
            Values::F16(v) => Input::F16(v),
            Values::Bf16(v) => Input::Bf16(v),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Values::F32(v) => bytemuck::cast_slice(v),
            Values::F16(v) => bytemuck::cast_slice(v),
            Values::Bf16(v) => bytemuck::cast_slice(v),
        }
    }

    /// Little-endian values of this dtype, as f32.
    fn decode(&self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Values::F32(_) => common::floats(bytes),
            Values::F16(_) => bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Values::Bf16(_) => bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        }
    }

    /// f32 gradients rounded to this dtype, as little-endian bytes: what a device gradient in the
    /// input's dtype must hold.
    fn round(&self, grad: &[f32]) -> Vec<u8> {
        match self {
            Values::F32(_) => bytemuck::cast_slice(grad).to_vec(),
            Values::F16(_) => grad
                .iter()
                .flat_map(|&g| f16::from_f32(g).to_le_bytes())
                .collect(),
            Values::Bf16(_) => grad
                .iter()
                .flat_map(|&g| bf16::from_f32(g).to_le_bytes())
                .collect(),
        }
    }
}

/// How a case's target reaches the device.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Where {
    /// Class indices or a dense array on the host, uploaded by xent.
    Host,
    /// In a buffer of the test's: i64 or i32 class indices, or a dense f32 array.
    Device(IndexType),
}

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    loss: LossKind,
    shape: [usize; 2],
    options: Options,
    weight: bool,
    pos_weight: bool,
    ignored: f64,
}

fn case(name: &'static str, loss: LossKind, shape: [usize; 2]) -> Case {
    Case {
        name,
        loss,
        shape,
        options: Options::default(),
        weight: false,
        pos_weight: false,
        ignored: 0.0,
    }
}

fn cases() -> Vec<Case> {
    let with = |mut c: Case, f: &dyn Fn(&mut Case)| {
        f(&mut c);
        c
    };
    let ce = LossKind::CrossEntropy;
    vec![
        case("ce 1x1", ce, [1, 1]),
        with(case("ce mean, ignored rows, odd C", ce, [9, 37]), &|c| {
            c.ignored = 0.3
        }),
        with(case("ce weighted mean, smoothing", ce, [6, 1001]), &|c| {
            c.weight = true;
            c.ignored = 0.2;
            c.options.label_smoothing = 0.1;
        }),
        with(
            case(
                "ce weighted mean in bits, rows over a workgroup",
                ce,
                [700, 13],
            ),
            &|c| {
                c.weight = true;
                c.ignored = 0.1;
                c.options.base = Base::Two;
            },
        ),
        with(case("ce sum, z-loss, softcap", ce, [5, 203]), &|c| {
            c.options.reduction = Reduction::Sum;
            c.options.z_loss = 1e-3;
            c.options.softcap = Some(20.0);
        }),
        with(case("ce none, lse, bits", ce, [11, 64]), &|c| {
            c.options.reduction = Reduction::None;
            c.options.lse = true;
            c.options.base = Base::Two;
        }),
        with(case("ce all rows ignored", ce, [4, 33]), &|c| {
            c.ignored = 1.0
        }),
        with(case("ce on log-probs", ce, [7, 29]), &|c| {
            c.options.input_kind = InputKind::LogProbs;
        }),
        with(case("ce mean, one split row", ce, [1, 70_001]), &|c| {
            c.weight = true
        }),
        case("soft ce", ce, [5, 77]),
        with(
            case("bce pos_weight", LossKind::BinaryCrossEntropy, [6, 45]),
            &|c| {
                c.pos_weight = true;
                c.weight = true;
            },
        ),
        with(
            case("bce none", LossKind::BinaryCrossEntropy, [3, 19]),
            &|c| {
                c.options.reduction = Reduction::None;
            },
        ),
        with(case("kl batchmean", LossKind::KlDiv, [4, 99]), &|c| {
            c.options.reduction = Reduction::BatchMean;
            c.options.input_kind = InputKind::LogProbs;
        }),
        with(
            case("entropy of probabilities", LossKind::Entropy, [6, 31]),
            &|c| {
                c.options.input_kind = InputKind::Probs;
            },
        ),
        case("entropy of logits", LossKind::Entropy, [3, 4099]),
    ]
}

/// What one device-resident run left: the loss, values, lse and gradient bytes, read back.
struct DeviceResult {
    loss: Option<f32>,
    values: Vec<f32>,
    lse: Option<Vec<f32>>,
    grad: Option<Vec<u8>>,
}

fn read(engine: &Engine, out: &DeviceOutput, values: usize, grad_bytes: usize) -> DeviceResult {
    let whole = |b: &wgpu::Buffer, n: usize| engine.read_buffer(b, 0..n as u64).unwrap();
    DeviceResult {
        loss: out.loss.as_ref().map(|_| engine.read_loss(out).unwrap()),
        values: common::floats(&whole(
            out.values.as_ref().expect("a plain call has values"),
            values * 4,
        )),
        lse: out
            .lse
            .as_ref()
            .map(|b| common::floats(&whole(b, values * 4))),
        grad: out.grad.as_ref().map(|b| whole(b, grad_bytes)),
    }
}

/// Device values against host values: the same bits.
fn same(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "{what}: index {i}: device {x:e}, host {y:e}"
        );
    }
}

/// One case on one engine in one dtype, its target where `at` says: the device result must be
/// the host result bit for bit (a gradient of 16-bit input, the host's f32 gradient rounded to
/// nearest even), in place as well as separate.
fn check(engine: &Engine, rng: &mut StdRng, c: &Case, dtype: Dtype, at: Where) {
    let [batch, classes] = c.shape;
    let n = batch * classes;
    let what = format!("{} {} {dtype:?} target {at:?}", engine.device(), c.name);
    let x = Values::draw(rng, dtype, n, c.options.input_kind);
    let classes_target = c.loss == LossKind::CrossEntropy && c.name != "soft ce";
    let labels = common::targets(rng, batch, classes, c.ignored);
    let dense = match c.loss {
        LossKind::BinaryCrossEntropy => (0..n).map(|_| rng.random_range(0.0..1.0)).collect(),
        _ => common::distribution(rng, batch, classes),
    };
    // Weights over 80 octaves, so that sums of them round in f32 and span several words of an
    // exact sum.
    let weight: Vec<f32> = (0..classes)
        .map(|_| 2_f32.powf(rng.random_range(-40.0..40.0)))
        .collect();
    let pos_weight: Vec<f32> = (0..classes).map(|_| rng.random_range(0.5..3.0)).collect();
    let target = match (c.loss, classes_target) {
        (LossKind::Entropy, _) => Target::None,
        (_, true) => Target::ClassesI64(&labels),
        (_, false) => Target::Dense(&dense),
    };
    let mut request = Request::new(c.loss, x.input(), c.shape, target);
    if c.weight {
        request = request.weight(&weight);
    }
    if c.pos_weight {
        request = request.pos_weight(&pos_weight);
    }
    let o = c.options;
    let request = request
        .reduction(o.reduction)
        .input_kind(o.input_kind)
        .label_smoothing(o.label_smoothing)
        .z_loss(o.z_loss)
        .base(o.base)
        .with_lse(o.lse)
        .with_grad(true);
    let request = match o.softcap {
        Some(cap) => request.softcap(cap),
        None => request,
    };
    let host = engine.compute(&request).unwrap();

    let input = buffer_with(engine, x.bytes());
    let labels32: Vec<i32> = labels.iter().map(|&t| t as i32).collect();
    let target_buffer = match (target, at) {
        (Target::ClassesI64(t), Where::Device(IndexType::I64)) => {
            Some(buffer_with(engine, bytemuck::cast_slice(t)))
        }
        (Target::ClassesI64(_), Where::Device(IndexType::I32)) => {
            Some(buffer_with(engine, bytemuck::cast_slice(&labels32)))
        }
        (Target::Dense(t), Where::Device(_)) => Some(buffer_with(engine, bytemuck::cast_slice(t))),
        _ => None,
    };
    let device_target = match (&target_buffer, at, target) {
        (Some(buffer), Where::Device(index), Target::ClassesI64(_)) => DeviceTarget::Classes {
            buffer,
            offset: GUARD,
            index,
        },
        (Some(buffer), _, _) => DeviceTarget::Dense {
            buffer,
            offset: GUARD,
        },
        (None, _, Target::None) => DeviceTarget::None,
        (None, _, t) => DeviceTarget::Host(t),
    };
    let mut device_request = DeviceRequest::new(
        c.loss,
        DeviceInput {
            buffer: &input,
            offset: GUARD,
            shape: c.shape,
            dtype,
        },
        device_target,
    );
    device_request.weight = c.weight.then_some(&weight[..]);
    device_request.pos_weight = c.pos_weight.then_some(&pos_weight[..]);
    device_request.options = Options {
        grad: true,
        ..request.options()
    };
    let values_len = match &host.loss {
        xent::Loss::Unreduced { values, .. } => values.len(),
        xent::Loss::Scalar(_) => batch,
    };
    let grad_bytes = n * dtype.size();
    let out = engine.submit(&device_request).unwrap();
    let got = read(engine, &out, values_len, grad_bytes);
    // Everything matches bit for bit, the mean's scales over device class targets included (the
    // device sums Σ w_y exactly and rounds its reciprocal as the host does).
    match &host.loss {
        xent::Loss::Scalar(v) => same(&format!("{what}: loss"), &[got.loss.unwrap()], &[*v]),
        xent::Loss::Unreduced { values, .. } => {
            same(&format!("{what}: values"), &got.values, values);
        }
    }
    if let Some(lse) = &host.lse {
        same(&format!("{what}: lse"), got.lse.as_ref().unwrap(), lse);
    }
    let expected_grad = x.round(host.grad.as_ref().unwrap());
    let grad = got.grad.as_ref().unwrap();
    same(
        &format!("{what}: gradient"),
        &x.decode(grad),
        &x.decode(&expected_grad),
    );
    assert!(
        grad == &expected_grad,
        "{what}: gradient bytes differ from the host gradient in the input's dtype"
    );

    // In place (which implies a gradient): the gradient lands over the input, and nothing
    // outside it changes.
    device_request.options.grad = false;
    device_request.options.grad_in_place = true;
    let out = engine.submit(&device_request).unwrap();
    assert!(
        out.grad.is_none(),
        "{what}: in place returns no gradient buffer"
    );
    engine.check_targets(&out).unwrap();
    let data = grad_bytes as u64;
    let after = engine.read_buffer(&input, 0..input.size()).unwrap();
    assert!(
        after[GUARD as usize..(GUARD + data) as usize] == grad[..],
        "{what}: the in-place gradient differs from the separate one"
    );
    assert!(
        after[..GUARD as usize]
            .iter()
            .chain(&after[(GUARD + data) as usize..])
            .all(|&b| b == GUARD_BYTE),
        "{what}: an in-place gradient wrote outside the input"
    );
}

#[test]
fn device_results_match_host_results_bit_for_bit() {
    let mut rng = common::rng("device resident");
    common::check_expected_backends(common::gpus());
    for engine in common::gpus() {
        for c in cases() {
            for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
                check(engine, &mut rng, &c, dtype, Where::Host);
                if c.loss != LossKind::Entropy {
                    check(engine, &mut rng, &c, dtype, Where::Device(IndexType::I64));
                }
            }
            if c.loss == LossKind::CrossEntropy {
                check(
                    engine,
                    &mut rng,
                    &c,
                    Dtype::F32,
                    Where::Device(IndexType::I32),
                );
            }
        }
    }
}

/// A request on `input` (f32 [B, C] at `GUARD`) against i64 class targets in `labels`.
fn class_request<'a>(
    input: &'a wgpu::Buffer,
    labels: &'a wgpu::Buffer,
    shape: [usize; 2],
    index: IndexType,
) -> DeviceRequest<'a> {
    DeviceRequest::new(
        LossKind::CrossEntropy,
        DeviceInput {
            buffer: input,
            offset: GUARD,
            shape,
            dtype: Dtype::F32,
        },
        DeviceTarget::Classes {
            buffer: labels,
            offset: GUARD,
            index,
        },
    )
}

#[test]
fn an_out_of_range_device_target_is_named_and_its_row_is_nan() {
    let mut rng = common::rng("device targets out of range");
    let [batch, classes] = [6, 10];
    let x = common::logits(&mut rng, batch * classes, 2.0);
    for engine in common::gpus() {
        for (index, bad) in [
            (IndexType::I64, 99_i64),
            (IndexType::I32, -5),
            (IndexType::I64, 1 << 40),
        ] {
            let t: Vec<i64> = vec![3, 0, -100, bad, 9, bad];
            let raw: Vec<u8> = match index {
                IndexType::I64 => bytemuck::cast_slice(&t).to_vec(),
                IndexType::I32 => t.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect(),
            };
            let input = buffer_with(engine, bytemuck::cast_slice(&x));
            let labels = buffer_with(engine, &raw);
            let mut request = class_request(&input, &labels, [batch, classes], index);
            request.options.reduction = Reduction::None;
            request.options.grad = true;
            let out = engine.submit(&request).unwrap();
            let err = engine.check_targets(&out).unwrap_err();
            let expected = if index == IndexType::I32 {
                bad as i32 as i64
            } else {
                bad
            };
            assert!(
                matches!(err, Error::TargetOutOfRange { row: 3, target, classes: 10, ignore_index: -100 } if target == expected),
                "{} {index:?}: {err:?}",
                engine.device()
            );
            let values = common::floats(
                &engine
                    .read_buffer(
                        out.values.as_ref().expect("a plain call has values"),
                        0..batch as u64 * 4,
                    )
                    .unwrap(),
            );
            for (row, v) in values.iter().enumerate() {
                assert_eq!(v.is_nan(), row == 3 || row == 5, "row {row}: {v}");
            }
            assert_eq!(values[2], 0.0, "the ignored row");
            let grad = common::floats(
                &engine
                    .read_buffer(out.grad.as_ref().unwrap(), 0..(batch * classes) as u64 * 4)
                    .unwrap(),
            );
            for (i, g) in grad.iter().enumerate() {
                let row = i / classes;
                assert_eq!(g.is_nan(), row == 3 || row == 5, "grad[{i}] = {g}");
            }
            request.options.reduction = Reduction::Mean;
            let out = engine.submit(&request).unwrap();
            assert!(matches!(
                engine.read_loss(&out),
                Err(Error::TargetOutOfRange { row: 3, .. })
            ));
        }
    }
}

/// Reads cut byte ranges that do not start or end on 4-byte words out of the words around them
/// (the data sit after `GUARD` bytes).
#[test]
fn read_buffer_returns_exactly_the_bytes_asked_for() {
    let mut rng = common::rng("device resident, read_buffer");
    let bytes: Vec<u8> = (0..64).map(|_| rng.random()).collect();
    for engine in common::gpus() {
        let buffer = buffer_with(engine, &bytes);
        for range in [0..64, 0..1, 3..10, 13..13, 5..8, 61..64, 63..64] {
            let at = GUARD + range.start as u64..GUARD + range.end as u64;
            let got = engine.read_buffer(&buffer, at);
            assert_eq!(got.unwrap(), &bytes[range.clone()], "{range:?}");
        }
    }
}

#[test]
fn calls_recorded_before_one_submission_keep_their_own_results() {
    let mut rng = common::rng("device resident, one encoder");
    let [batch, classes] = [40, 300];
    for engine in common::gpus() {
        let (device, queue) = engine.wgpu().unwrap();
        let xs: Vec<Vec<f32>> = (0..3)
            .map(|_| common::logits(&mut rng, batch * classes, 3.0))
            .collect();
        let ts: Vec<Vec<i64>> = (0..3)
            .map(|_| common::targets(&mut rng, batch, classes, 0.1))
            .collect();
        let inputs: Vec<wgpu::Buffer> = xs
            .iter()
            .map(|x| buffer_with(engine, bytemuck::cast_slice(x)))
            .collect();
        let labels: Vec<wgpu::Buffer> = ts
            .iter()
            .map(|t| buffer_with(engine, bytemuck::cast_slice(t)))
            .collect();
        let mut encoder = device.create_command_encoder(&Default::default());
        let outs: Vec<DeviceOutput> = (0..3)
            .map(|k| {
                let mut request =
                    class_request(&inputs[k], &labels[k], [batch, classes], IndexType::I64);
                request.options.label_smoothing = 0.05 * k as f32;
                engine.record(&mut encoder, &request).unwrap()
            })
            .collect();
        queue.submit([encoder.finish()]);
        for k in 0..3 {
            let expected = engine
                .compute(
                    &Request::cross_entropy(&xs[k][..], [batch, classes], &ts[k][..])
                        .label_smoothing(0.05 * k as f32),
                )
                .unwrap()
                .loss
                .scalar()
                .unwrap();
            let got = engine.read_loss(&outs[k]).unwrap();
            assert_eq!(
                got.to_bits(),
                expected.to_bits(),
                "{} call {k}",
                engine.device()
            );
        }
    }
}

#[test]
fn a_million_classes_in_four_rows_on_the_device() {
    let mut rng = common::rng("device resident, 4 x 1048576");
    let [batch, classes] = [4, 1 << 20];
    let x = common::logits(&mut rng, batch * classes, 3.0);
    let t = common::targets(&mut rng, batch, classes, 0.0);
    let request = Request::cross_entropy(&x[..], [batch, classes], &t[..]).with_grad(true);
    let expected = Engine::reference().compute(&request).unwrap();
    for engine in common::gpus() {
        for dtype in [Dtype::F32, Dtype::Bf16] {
            let bytes: Vec<u8> = match dtype {
                Dtype::Bf16 => x
                    .iter()
                    .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                    .collect(),
                _ => bytemuck::cast_slice(&x).to_vec(),
            };
            let input = buffer_with(engine, &bytes);
            let labels = buffer_with(engine, bytemuck::cast_slice(&t));
            let mut device_request =
                class_request(&input, &labels, [batch, classes], IndexType::I64);
            device_request.input.dtype = dtype;
            device_request.options.grad_in_place = true;
            device_request.options.grad = true;
            let out = engine.submit(&device_request).unwrap();
            let loss = engine.read_loss(&out).unwrap();
            let after = engine
                .read_buffer(&input, GUARD..GUARD + bytes.len() as u64)
                .unwrap();
            let grad: Vec<f32> = match dtype {
                Dtype::Bf16 => after
                    .chunks_exact(2)
                    .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                _ => common::floats(&after),
            };
            let what = format!("{} {dtype:?}", engine.device());
            if dtype == Dtype::F32 {
                common::assert_scalar(&what, loss, expected.loss.scalar().unwrap(), 1e-5);
                let error = common::relative_norm_error(&grad, expected.grad.as_ref().unwrap());
                assert!(error <= 1e-5, "{what}: gradient error {error:e}");
            } else {
                // The loss of the rounded logits, against the reference on those same values.
                let rounded: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
                let on_rounded = Engine::reference()
                    .compute(
                        &Request::cross_entropy(&rounded[..], [batch, classes], &t[..])
                            .with_grad(true),
                    )
                    .unwrap();
                common::assert_scalar(&what, loss, on_rounded.loss.scalar().unwrap(), 1e-5);
                let error = common::relative_norm_error(&grad, on_rounded.grad.as_ref().unwrap());
                // One rounding to bf16 (2^-9 relative at most) of each gradient value.
                assert!(error <= 2e-3, "{what}: gradient error {error:e}");
            }
        }
    }
}

#[test]
fn unusable_buffers_and_options_are_typed_errors() {
    let engine = common::gpus().first();
    let Some(engine) = engine else {
        eprintln!("no GPU adapter");
        return;
    };
    let (device, _) = engine.wgpu().unwrap();
    let x = vec![0.5_f32; 3 * 7];
    let good = buffer_with(engine, bytemuck::cast_slice(&x));
    let labels = buffer_with(engine, bytemuck::cast_slice(&[1_i64, 2, 3]));
    let uniform = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("not storage"),
        size: 1024,
        usage: wgpu::BufferUsages::UNIFORM,
        mapped_at_creation: false,
    });
    let base = class_request(&good, &labels, [3, 7], IndexType::I64);
    let variants: Vec<(&str, DeviceRequest, &str)> = vec![
        (
            "usage",
            DeviceRequest {
                input: DeviceInput {
                    buffer: &uniform,
                    ..base.input
                },
                ..base
            },
            "input: usage",
        ),
        (
            "offset",
            DeviceRequest {
                input: DeviceInput {
                    offset: 4,
                    ..base.input
                },
                ..base
            },
            "input: offset 4 is not a multiple",
        ),
        (
            "size",
            DeviceRequest {
                input: DeviceInput {
                    shape: [300, 7],
                    ..base.input
                },
                ..base
            },
            "input: needs 8400 bytes from offset 256",
        ),
        (
            "target size",
            DeviceRequest {
                input: DeviceInput {
                    shape: [60, 1],
                    ..base.input
                },
                ..base
            },
            "target: needs 480 bytes from offset 256",
        ),
        (
            "strict",
            DeviceRequest {
                options: Options {
                    strict: true,
                    ..base.options
                },
                ..base
            },
            "strict: strict mode checks values on the host",
        ),
        (
            "option",
            DeviceRequest {
                options: Options {
                    label_smoothing: 2.0,
                    ..base.options
                },
                ..base
            },
            "label_smoothing: 2 is outside [0, 1]",
        ),
        (
            "target kind",
            DeviceRequest {
                loss: LossKind::KlDiv,
                ..base
            },
            "kl-div: needs a float target of shape [3, 7], not class indices",
        ),
    ];
    for (name, request, message) in variants {
        let err = engine.submit(&request).unwrap_err();
        assert!(
            err.to_string().starts_with(message),
            "{name}: {err} (expected {message}...)"
        );
    }
    // The input's own buffer as a dense target: one dispatch would bind it read-write and
    // read-only.
    let aliased = DeviceRequest {
        loss: LossKind::KlDiv,
        target: DeviceTarget::Dense {
            buffer: &good,
            offset: 0,
        },
        input: DeviceInput {
            shape: [1, 7],
            ..base.input
        },
        ..base
    };
    let err = engine.submit(&aliased).unwrap_err();
    assert!(
        err.to_string().starts_with("target: is the input's buffer"),
        "{err}"
    );
    let err = engine.read_buffer(&good, 0..u64::MAX).unwrap_err();
    assert!(
        matches!(err, Error::DeviceBuffer { what: "read", .. }),
        "{err:?}"
    );
    let err = Engine::cpu().submit(&base).unwrap_err();
    assert!(
        matches!(err, Error::DeviceBuffer { what: "engine", .. }),
        "{err:?}"
    );
    let err = engine.read_buffer(&good, 0..good.size() + 4).unwrap_err();
    assert!(
        matches!(err, Error::DeviceBuffer { what: "read", .. }),
        "{err:?}"
    );
}

#[test]
fn a_callers_device_and_encoder() {
    let mut rng = common::rng("device resident, caller's device");
    let [batch, classes] = [33, 517];
    let x = common::logits(&mut rng, batch * classes, 3.0);
    let t = common::targets(&mut rng, batch, classes, 0.1);
    for (_, device, queue) in common::caller_devices() {
        let engine = Engine::from_wgpu(device.clone(), queue.clone());
        let input = buffer_with(&engine, bytemuck::cast_slice(&x));
        let labels = buffer_with(&engine, bytemuck::cast_slice(&t));
        let mut request = class_request(&input, &labels, [batch, classes], IndexType::I64);
        request.options.grad = true;
        let mut encoder = device.create_command_encoder(&Default::default());
        let out = engine.record(&mut encoder, &request).unwrap();
        // The caller's own work after xent's, in the same encoder: a copy of the gradient.
        let copy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("caller's copy"),
            size: (batch * classes * 4) as u64,
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(out.grad.as_ref().unwrap(), 0, &copy, 0, copy.size());
        queue.submit([encoder.finish()]);
        let host = engine
            .compute(&Request::cross_entropy(&x[..], [batch, classes], &t[..]).with_grad(true))
            .unwrap();
        assert_eq!(
            engine.read_loss(&out).unwrap().to_bits(),
            host.loss.scalar().unwrap().to_bits()
        );
        let grad = common::floats(&engine.read_buffer(&copy, 0..copy.size()).unwrap());
        same(
            "caller's copy of the gradient",
            &grad,
            host.grad.as_ref().unwrap(),
        );
    }
}

#[test]
fn inputs_over_one_binding_go_in_aligned_row_chunks() {
    let mut rng = common::rng("device resident, small bindings");
    // Devices that bind at most 1 MiB at once: every case below but one takes several chunks.
    let devices = common::caller_devices_with(|limits| wgpu::Limits {
        max_storage_buffer_binding_size: 1 << 20,
        ..limits
    });
    for (_, device, queue) in devices {
        let engine = Engine::from_wgpu(device, queue);
        let ce = case("ce, chunks", LossKind::CrossEntropy, [700, 1001]);
        let weighted = Case {
            weight: true,
            ignored: 0.2,
            ..case("weighted ce, chunks", LossKind::CrossEntropy, [300, 3001])
        };
        let mut bce = case("bce none, chunks", LossKind::BinaryCrossEntropy, [500, 999]);
        bce.options.reduction = Reduction::None;
        // One row of 70 001 classes fits one binding: one chunk, at any offset.
        let one_row = case("one long row", LossKind::CrossEntropy, [1, 70_001]);
        for (c, dtype) in [
            (&one_row, Dtype::F32),
            (&ce, Dtype::Bf16),
            (&ce, Dtype::F32),
            (&weighted, Dtype::F16),
            (&bce, Dtype::F32),
        ] {
            check(&engine, &mut rng, c, dtype, Where::Device(IndexType::I64));
        }
    }
}
