//! Device-resident requests (`Engine::record`): logits and targets in wgpu buffers, results left
//! on the device. On every adapter, each must give the same bits as the same request on host
//! slices, in f32, f16 and bf16, with the gradient separate or in place.

mod common;

use half::{bf16, f16};
use rand::Rng;
use rand::rngs::StdRng;
use wgpu::util::DeviceExt;
use xent::{
    Base, DeviceInput, DeviceOutput, DeviceRequest, DeviceTarget, Dtype, Engine,
    IndexType, Input, InputKind, LossKind, Options, Reduction, Request, Target,
};

/// Bytes the tests put before and after the data in a buffer, so that offsets are exercised and
/// anything written outside the data is seen.
const GUARD: u64 = 256;
const GUARD_BYTE: u8 = 0xa5;

/// A STORAGE | COPY_SRC | COPY_DST buffer holding `bytes` at offset `GUARD`, between guard bytes.
fn buffer_with(engine: &Engine, bytes: &[u8]) -> wgpu::Buffer {
    let (device, _) = engine.wgpu().expect("a GPU engine");
    let mut contents = vec![GUARD_BYTE; GUARD as usize];
    contents.extend_from_slice(bytes);
    contents.resize((contents.len() + GUARD as usize).next_multiple_of(16), GUARD_BYTE);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("test data"),
        contents: &contents,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
    })
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
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
            Values::F32(_) => floats(bytes),
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
        with(case("ce mean, ignored rows, odd C", ce, [9, 37]), &|c| c.ignored = 0.3),
        with(case("ce weighted mean, smoothing", ce, [6, 1001]), &|c| {
            c.weight = true;
            c.ignored = 0.2;
            c.options.label_smoothing = 0.1;
        }),
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
        with(case("ce all rows ignored", ce, [4, 33]), &|c| c.ignored = 1.0),
        with(case("ce on log-probs", ce, [7, 29]), &|c| {
            c.options.input_kind = InputKind::LogProbs;
        }),
        with(case("ce mean, one split row", ce, [1, 70_001]), &|c| c.weight = true),
        case("soft ce", ce, [5, 77]),
        with(case("bce pos_weight", LossKind::BinaryCrossEntropy, [6, 45]), &|c| {
            c.pos_weight = true;
            c.weight = true;
        }),
        with(case("bce none", LossKind::BinaryCrossEntropy, [3, 19]), &|c| {
            c.options.reduction = Reduction::None;
        }),
        with(case("kl batchmean", LossKind::KlDiv, [4, 99]), &|c| {
            c.options.reduction = Reduction::BatchMean;
            c.options.input_kind = InputKind::LogProbs;
        }),
        with(case("entropy of probabilities", LossKind::Entropy, [6, 31]), &|c| {
            c.options.input_kind = InputKind::Probs;
        }),
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
        values: floats(&whole(&out.values, values * 4)),
        lse: out.lse.as_ref().map(|b| floats(&whole(b, values * 4))),
        grad: out.grad.as_ref().map(|b| whole(b, grad_bytes)),
    }
}

/// Device values against host values: the same bits, or with `ulps`, within that many units in
/// the last place of the dtype (relative `ulps`·2^-mantissa bits).
fn same(what: &str, a: &[f32], b: &[f32], ulps: Option<(f64, Dtype)>) {
    if let Some((ulps, dtype)) = ulps {
        let bits = match dtype {
            Dtype::F32 => 23,
            Dtype::F16 => 10,
            Dtype::Bf16 => 7,
        };
        let rtol = ulps * 2_f64.powi(-bits);
        return common::assert_close(what, a, b, 1e-30, rtol);
    }
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
    let weight: Vec<f32> = (0..classes).map(|_| rng.random_range(0.2..2.0)).collect();
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
    // A weighted mean over device class targets divides by Σ w_y summed on the device in f32,
    // where the host sums in f64: its scale may differ in the last bit. Everything else matches
    // bit for bit.
    let scale_ulps = (matches!(at, Where::Device(_))
        && c.weight
        && o.reduction == Reduction::Mean
        && classes_target)
        .then_some(2.0);
    match &host.loss {
        xent::Loss::Scalar(v) => same(
            &format!("{what}: loss"),
            &[got.loss.unwrap()],
            &[*v],
            scale_ulps.map(|u| (u, Dtype::F32)),
        ),
        xent::Loss::Unreduced { values, .. } => {
            same(&format!("{what}: values"), &got.values, values, None);
        }
    }
    if let Some(lse) = &host.lse {
        same(&format!("{what}: lse"), got.lse.as_ref().unwrap(), lse, None);
    }
    let expected_grad = x.round(host.grad.as_ref().unwrap());
    let grad = got.grad.as_ref().unwrap();
    same(
        &format!("{what}: gradient"),
        &x.decode(grad),
        &x.decode(&expected_grad),
        scale_ulps.map(|u| (u, dtype)),
    );
    assert!(
        scale_ulps.is_some() || grad == &expected_grad,
        "{what}: gradient bytes differ from the host gradient in the input's dtype"
    );

    // In place: the gradient lands over the input, and nothing outside it changes.
    device_request.options.grad_in_place = true;
    let out = engine.submit(&device_request).unwrap();
    assert!(out.grad.is_none(), "{what}: in place returns no gradient buffer");
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
                check(engine, &mut rng, &c, Dtype::F32, Where::Device(IndexType::I32));
            }
        }
    }
}
