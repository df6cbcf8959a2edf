//! Device-resident requests on a GPU engine: inputs (f32, f16, bf16) and targets (class indices
//! in i32 or i64, dense arrays) in buffers of its device, results read back from the buffers the
//! call leaves; the gradient in a buffer of its own (recorded into an encoder of the caller's)
//! and in place over the input (submitted by the engine).

use wgpu::util::DeviceExt;
use xent::{
    DeviceInput, DeviceOutput, DeviceRequest, DeviceTarget, Dtype, Engine, IndexType, InputKind,
    LossKind, Options, Reduction, Target,
};

use crate::case::{Case, Data, Special, Targets};
use crate::fnv::Fnv;
use crate::report::Report;

/// Bytes before and after the data in every buffer, so that offsets are used and a write outside
/// the data shows in the hash of the whole buffer.
pub const GUARD: u64 = 256;
const GUARD_BYTE: u8 = 0xa5;

/// A STORAGE | COPY_SRC | COPY_DST buffer on `engine`'s device holding `bytes` at `GUARD`,
/// between guard bytes, padded to whole 16-byte words.
pub fn buffer(engine: &Engine, bytes: &[u8]) -> wgpu::Buffer {
    let (device, _) = engine.wgpu().expect("a GPU engine");
    let mut contents = vec![GUARD_BYTE; GUARD as usize];
    contents.extend_from_slice(bytes);
    contents.resize(
        (contents.len() + GUARD as usize).next_multiple_of(16),
        GUARD_BYTE,
    );
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("fingerprint"),
        contents: &contents,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
    })
}

/// Feeds a whole buffer from `buffer`: the guard bytes as they are, the `len` bytes of data at
/// `GUARD` as values of `dtype`.
pub fn whole_buffer(h: &mut Fnv, engine: &Engine, buffer: &wgpu::Buffer, dtype: Dtype, len: u64) {
    h.result(&engine.read_buffer(buffer, 0..buffer.size()), |h, bytes| {
        let (data, end) = (GUARD as usize, (GUARD + len) as usize);
        h.bytes(&bytes[..data]);
        h.values(dtype, &bytes[data..end]);
        h.bytes(&bytes[end..]);
    });
}

/// The device-resident cases; each runs in f32, f16 and bf16.
fn cases() -> Vec<Case> {
    let ce = |shape| Case::new(LossKind::CrossEntropy, shape);
    let bce = |shape| Case::new(LossKind::BinaryCrossEntropy, shape);
    vec![
        ce([1, 1]),
        ce([9, 37]).with(|c| c.ignored = 0.3),
        ce([9, 37]).with(|c| {
            c.target = Targets::I32;
            c.options.reduction = Reduction::None;
        }),
        ce([6, 1001]).with(|c| {
            c.weight = true;
            c.ignored = 0.2;
            c.options.label_smoothing = 0.1;
        }),
        ce([700, 13]).with(|c| {
            c.weight = true;
            c.ignored = 0.1;
            c.options.base = xent::Base::Two;
        }),
        ce([5, 203]).with(|c| {
            c.options.reduction = Reduction::Sum;
            c.options.z_loss = 1e-3;
            c.options.softcap = Some(20.0);
        }),
        ce([11, 64]).with(|c| {
            c.options.reduction = Reduction::None;
            c.options.lse = true;
            c.options.base = xent::Base::Two;
        }),
        ce([4, 33]).with(|c| c.ignored = 1.0),
        ce([7, 29]).with(|c| c.options.input_kind = InputKind::LogProbs),
        ce([1, 70_001]).with(|c| c.weight = true),
        ce([6, 10]).with(|c| {
            c.special = Special::OutOfRange;
            c.options.reduction = Reduction::None;
        }),
        ce([6, 10]).with(|c| c.special = Special::OutOfRange),
        ce([5, 77]).with(|c| c.target = Targets::Dense),
        bce([6, 45]).with(|c| {
            c.pos_weight = true;
            c.weight = true;
        }),
        bce([3, 19]).with(|c| c.options.reduction = Reduction::None),
        Case::new(LossKind::KlDiv, [4, 99]).with(|c| {
            c.options.reduction = Reduction::BatchMean;
            c.options.input_kind = InputKind::LogProbs;
        }),
        Case::new(LossKind::KlDiv, [4, 99]).with(|c| {
            c.options.reduction = Reduction::Sum;
            c.options.log_target = true;
        }),
        Case::new(LossKind::Entropy, [6, 31]).with(|c| c.options.input_kind = InputKind::Probs),
        Case::new(LossKind::Entropy, [3, 4099]).with(|c| c.options.lse = true),
    ]
}

/// Every device-resident case on `engine`, with data from `seed`, then the refused requests.
pub fn run(engine: &Engine, seed: u64, report: &mut Report) {
    for (i, case) in cases().iter().enumerate() {
        for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
            let case = case.with(|c| c.dtype = dtype);
            let data = Data::draw(&case, seed.wrapping_add(i as u64));
            one(engine, &case, &data, false, report);
            if case.target != Targets::None {
                one(engine, &case, &data, true, report);
            }
        }
    }
    refusals(engine, report);
}

/// A case with its target on the host (uploaded by xent) or in a buffer of the device.
fn one(engine: &Engine, case: &Case, data: &Data, on_device: bool, report: &mut Report) {
    let (device, queue) = engine.wgpu().expect("a GPU engine");
    let input = buffer(engine, data.values.bytes());
    let target_bytes: Option<&[u8]> = match case.target {
        _ if !on_device => None,
        Targets::None => None,
        Targets::I32 => Some(bytemuck::cast_slice(&data.classes32)),
        Targets::I64 => Some(bytemuck::cast_slice(&data.classes)),
        Targets::Dense => Some(bytemuck::cast_slice(&data.dense)),
    };
    let target_buffer = target_bytes.map(|bytes| buffer(engine, bytes));
    let target = match (&target_buffer, case.target) {
        (Some(buffer), Targets::I32 | Targets::I64) => DeviceTarget::Classes {
            buffer,
            offset: GUARD,
            index: if case.target == Targets::I32 {
                IndexType::I32
            } else {
                IndexType::I64
            },
        },
        (Some(buffer), _) => DeviceTarget::Dense {
            buffer,
            offset: GUARD,
        },
        (None, Targets::None) => DeviceTarget::None,
        (None, Targets::I32) => DeviceTarget::Host(Target::ClassesI32(&data.classes32)),
        (None, Targets::I64) => DeviceTarget::Host(Target::ClassesI64(&data.classes)),
        (None, Targets::Dense) => DeviceTarget::Host(Target::Dense(&data.dense)),
    };
    let mut request = DeviceRequest::new(
        case.loss,
        DeviceInput {
            buffer: &input,
            offset: GUARD,
            shape: case.shape,
            dtype: case.dtype,
        },
        target,
    );
    request.weight = case.weight.then_some(&data.weight[..]);
    request.pos_weight = case.pos_weight.then_some(&data.pos_weight[..]);
    request.options = case.options;
    let at = if on_device { "device" } else { "host" };
    let name = format!("device-resident, targets on the {at}: {}", case.name());
    // A target out of range on the host is refused before anything is recorded.
    let refused = case.special == Special::OutOfRange && !on_device;

    let mut encoder = device.create_command_encoder(&Default::default());
    let out = engine.record(&mut encoder, &request);
    if out.is_ok() {
        queue.submit([encoder.finish()]);
    }
    if out.is_err() != refused {
        report.surprise(&name, "record did not do what the case expects");
    }
    report.hashed(&format!("{name} | record"), |h| {
        h.result(&out, |h, out| read(h, engine, case, out));
    });

    request.options.grad = false;
    request.options.grad_in_place = true;
    let out = engine.submit(&request);
    if out.is_err() != refused {
        report.surprise(&name, "submit did not do what the case expects");
    }
    report.hashed(&format!("{name} | submit, gradient in place"), |h| {
        h.result(&out, |h, out| read(h, engine, case, out));
        let len = (data.x.len() * case.dtype.size()) as u64;
        whole_buffer(h, engine, &input, case.dtype, len);
    });
}

/// Feeds what a call left: the scalar, the target status, the values, lse and gradient buffers.
fn read(h: &mut Fnv, engine: &Engine, case: &Case, out: &DeviceOutput) {
    let [batch, classes] = case.shape;
    h.tag("loss");
    match &out.loss {
        Some(_) => h.result(&engine.read_loss(out), |h, v| h.f32(*v)),
        None => h.tag("none"),
    }
    h.tag("targets");
    h.result(&engine.check_targets(out), |_, ()| {});
    let unreduced = case.options.reduction == Reduction::None && case.loss.elementwise();
    let values = if unreduced { batch * classes } else { batch };
    let grad = batch * classes * case.dtype.size();
    let buffers = [
        ("values", &out.values, Dtype::F32, values * 4),
        ("lse", &out.lse, Dtype::F32, batch * 4),
        ("grad", &out.grad, case.dtype, grad),
    ];
    for (label, buffer, dtype, len) in buffers {
        h.tag(label);
        match buffer {
            Some(b) => h.result(&engine.read_buffer(b, 0..len as u64), |h, bytes| {
                h.values(dtype, bytes);
            }),
            None => h.tag("none"),
        }
    }
}

/// Device-resident requests that are refused, and reads of what a call did not leave.
fn refusals(engine: &Engine, report: &mut Report) {
    let (device, _) = engine.wgpu().expect("a GPU engine");
    let x = [0.5_f32; 21];
    let good = buffer(engine, bytemuck::cast_slice(&x));
    let labels = buffer(engine, bytemuck::cast_slice(&[1_i64, 2, 3]));
    let uniform = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("fingerprint uniform"),
        size: 1024,
        usage: wgpu::BufferUsages::UNIFORM,
        mapped_at_creation: false,
    });
    let input = |buffer, offset, shape| DeviceInput {
        buffer,
        offset,
        shape,
        dtype: Dtype::F32,
    };
    let classes = DeviceTarget::Classes {
        buffer: &labels,
        offset: GUARD,
        index: IndexType::I64,
    };
    let ce = |input| DeviceRequest::new(LossKind::CrossEntropy, input, classes);
    let base = ce(input(&good, GUARD, [3, 7]));
    let strict = DeviceRequest {
        options: Options {
            strict: true,
            ..base.options
        },
        ..base
    };
    let lse = DeviceRequest {
        options: Options {
            lse: true,
            ..base.options
        },
        ..DeviceRequest::new(
            LossKind::BinaryCrossEntropy,
            base.input,
            DeviceTarget::Host(Target::Dense(&x)),
        )
    };
    let refused = [
        ("usage", ce(input(&uniform, 0, [3, 7]))),
        ("offset", ce(input(&good, 4, [3, 7]))),
        ("input size", ce(input(&good, GUARD, [300, 7]))),
        ("target size", ce(input(&good, GUARD, [60, 1]))),
        ("strict", strict),
        ("lse on BCE", lse),
    ];
    for (name, request) in refused {
        let out = engine.submit(&request);
        report.error(&format!("device-resident error: {name} | submit"), &out);
    }
    let none = DeviceRequest {
        options: Options {
            reduction: Reduction::None,
            ..base.options
        },
        ..base
    };
    match engine.submit(&none) {
        Ok(out) => {
            let loss = engine.read_loss(&out);
            report.error("device-resident error: no scalar | read_loss", &loss);
            let stats = engine.read_shard_stats(&out);
            report.error(
                "device-resident error: not shard statistics | read_shard_stats",
                &stats,
            );
        }
        Err(e) => report.surprise("device-resident, none", &format!("failed: {e}")),
    }
}
