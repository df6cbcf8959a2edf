//! The linear head's checks: fused linear cross-entropy (the logits H·Wᵀ + b made a chunk of
//! rows at a time, never whole) with the gradients of H, W and b, on every engine against the
//! float64 reference on the same request; W in vocabulary shards split between the engines (the
//! statistics merged, the parts of dH summed); and on each adapter's own buffers, whole (against
//! the host call bit for bit) and in shards.

use std::ops::Range;

use half::{bf16, f16};
use rand::SeedableRng;
use xent::io::Floats;
use xent::{
    DeviceGrad, DeviceInput, DeviceLinearGrads, DeviceLinearRequest, DeviceTarget, DeviceVector,
    Dtype, Engine, IndexType, Input, LinearGradsMut, Loss, Output, Request, Result, Shard,
    ShardStats, ShardedLoss, merge_shards,
};

use super::cases::draw_classes;
use super::resident::storage_buffer;
use super::shards::shard_options;
use super::tally::{TOLERANCE, Tally};
use crate::cli::compare::{grad_error, loss_error};
use crate::cli::random::normal;

/// One linear check: N × D × V, H and W in `dtype`.
struct LinearCase {
    /// Its line in the table.
    name: &'static str,
    /// [N, D, V].
    shape: [usize; 3],
    /// H's and W's dtype.
    dtype: Dtype,
}

/// The linear heads every engine is checked on against the reference: odd sizes, so that no
/// dimension is a whole number of tiles, and 16-bit values straddle words.
const LINEAR_CASES: &[LinearCase] = &[
    LinearCase {
        name: "linear head f32, bias, 10% ignored, chunked",
        shape: [67, 96, 1031],
        dtype: Dtype::F32,
    },
    LinearCase {
        name: "linear head bf16 H and W, bias, 10% ignored, chunked",
        shape: [45, 81, 2053],
        dtype: Dtype::Bf16,
    },
];

/// The head of the device-resident and sharded checks: f32 H (so that dH can be written over
/// it) and f16 W, [N, D, V].
const DEVICE_SHAPE: [usize; 3] = [40, 64, 3001];

/// Rows of logits a chunk holds: every call runs several chunks, so that what crosses chunks
/// (dW and db summed chunk by chunk, the mean's divisor) is checked too.
const CHUNK_ROWS: usize = 16;

/// A linear head's inputs, drawn once and shared by every engine.
struct Head {
    shape: [usize; 3],
    hidden: Floats<'static>,
    weight: Floats<'static>,
    bias: Vec<f32>,
    classes: Vec<i64>,
}

/// `values` rounded to `dtype`.
fn floats(values: Vec<f32>, dtype: Dtype) -> Floats<'static> {
    match dtype {
        Dtype::F32 => Floats::F32(values.into()),
        Dtype::F16 => Floats::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
        Dtype::Bf16 => Floats::Bf16(values.iter().map(|&v| bf16::from_f32(v)).collect()),
    }
}

/// The bytes of `input`'s values, as a device buffer holds them.
fn bytes_of<'a>(input: Input<'a>) -> &'a [u8] {
    match input {
        Input::F32(v) => bytemuck::cast_slice(v),
        Input::F16(v) => bytemuck::cast_slice(v),
        Input::Bf16(v) => bytemuck::cast_slice(v),
    }
}

impl Head {
    /// H ~ N(0, 1) in `dtypes[0]`, W ~ N(0, 4/D) in `dtypes[1]` (logits of about twice unit
    /// variance), b ~ N(0, 1), and a class per row, 10% ignored, drawn from `seed`.
    fn draw([n, d, v]: [usize; 3], dtypes: [Dtype; 2], seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Head {
            shape: [n, d, v],
            hidden: floats(normal(n * d, 1.0, seed), dtypes[0]),
            weight: floats(normal(v * d, 2.0 / (d as f32).sqrt(), !seed), dtypes[1]),
            bias: normal(v, 1.0, seed.rotate_left(17)),
            classes: draw_classes(&mut rng, n, v),
        }
    }

    /// Mean cross-entropy of H·Wᵀ + b on W's and b's rows `classes` (all of them, or a
    /// vocabulary shard's), [`CHUNK_ROWS`] rows a chunk, with its gradients; with the sharded
    /// checks' options when `sharded`.
    fn request(&self, classes: Range<usize>, sharded: bool) -> Request<'_> {
        let [n, d, _] = self.shape;
        let o = shard_options();
        let rows = classes.start * d..classes.end * d;
        let weight = match self.weight.as_input() {
            Input::F32(w) => Input::F32(&w[rows]),
            Input::F16(w) => Input::F16(&w[rows]),
            Input::Bf16(w) => Input::Bf16(&w[rows]),
        };
        let width = classes.len();
        let request = Request::linear_cross_entropy(
            self.hidden.as_input(),
            [n, d],
            weight,
            [width, d],
            &self.classes[..],
        )
        .linear_bias(&self.bias[classes])
        .linear_chunk_bytes(CHUNK_ROWS * width * 4)
        .with_grad(true);
        if sharded {
            request.label_smoothing(o.label_smoothing).z_loss(o.z_loss)
        } else {
            request
        }
    }

    /// The head's classes in `count` shards, shard k about k + 1 parts wide (uneven, so that
    /// no shard's edge falls where another's would), and each shard's classes.
    fn shards(&self, count: usize) -> Vec<(Shard, Range<usize>)> {
        let v = self.shape[2];
        let parts = (count * (count + 1) / 2).max(1);
        let bounds: Vec<usize> = (0..=count).map(|k| v * (k * (k + 1) / 2) / parts).collect();
        bounds
            .windows(2)
            .map(|w| {
                let shard = Shard {
                    first_class: w[0],
                    total_classes: v,
                };
                (shard, w[0]..w[1])
            })
            .collect()
    }
}

/// The gradients of H, W and b in an output.
fn grads(out: &Output) -> [Option<&[f32]>; 3] {
    let head = out.linear_grads.as_ref();
    [
        out.grad.as_deref(),
        head.map(|g| &g.weight[..]),
        head.and_then(|g| g.bias.as_deref()),
    ]
}

/// The largest of the three gradients' errors against the reference's, NaN when any is NaN or
/// missing.
fn grad_errors(got: [Option<&[f32]>; 3], want: [Option<&[f32]>; 3]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(g, w)| match (g, w) {
            (Some(g), Some(w)) => grad_error(g, w),
            _ => f64::NAN,
        })
        .fold(0.0, |worst: f64, e| {
            if worst.is_nan() || e.is_nan() {
                f64::NAN
            } else {
                worst.max(e)
            }
        })
}

/// Checks every linear case on each of `engines` against the reference, case `i` drawn from
/// `seed + i`; then, on a head drawn from the next seed, its shards split between `engines`, and
/// on each adapter among them the device-resident head and its shards.
pub fn check(engines: &[Engine], seed: u64, tally: &mut Tally) -> Result<()> {
    for (i, case) in LINEAR_CASES.iter().enumerate() {
        let head = Head::draw(case.shape, [case.dtype; 2], seed.wrapping_add(i as u64));
        let request = head.request(0..case.shape[2], false);
        let want = Engine::reference().compute(&request)?;
        for engine in engines {
            let got = engine.compute(&request)?;
            let loss = loss_error(&got.loss, &want.loss);
            let errors = (loss, grad_errors(grads(&got), grads(&want)));
            let name = engine.device().to_string();
            tally.check(case.name, &case.shape, &name, errors, TOLERANCE);
        }
    }
    let seed = seed.wrapping_add(LINEAR_CASES.len() as u64);
    let head = Head::draw(DEVICE_SHAPE, [Dtype::F32, Dtype::F16], seed);
    let errors = sharded_on(engines, &head)?;
    let name = format!("{} engines, a shard each", engines.len());
    let check = "linear head, W in shards over every engine, merged";
    tally.check(check, &DEVICE_SHAPE, &name, errors, TOLERANCE);
    let adapters: Vec<&Engine> = engines.iter().filter(|e| e.wgpu().is_some()).collect();
    for engine in &adapters {
        let errors = device_resident(engine, &head)?;
        let name = engine.device().to_string();
        let check = "linear head on device buffers, f16 W, dH over H";
        tally.check(check, &DEVICE_SHAPE, &name, errors, TOLERANCE);
    }
    for engine in &adapters {
        let errors = device_sharded(engine, &head)?;
        let name = engine.device().to_string();
        let check = "linear head, W in 3 shards on device buffers, merged";
        tally.check(check, &DEVICE_SHAPE, &name, errors, TOLERANCE);
    }
    Ok(())
}

/// An adapter's buffers of a head: H, the labels, and W and b whole or one shard's rows.
struct Buffers {
    hidden: wgpu::Buffer,
    labels: wgpu::Buffer,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    classes: usize,
}

impl Buffers {
    /// H and the labels of `head`, with W's and b's classes `range`, on `device`.
    fn new(device: &wgpu::Device, head: &Head, range: std::ops::Range<usize>) -> Self {
        let d = head.shape[1];
        let weight = bytes_of(head.weight.as_input());
        let size = head.weight.as_input().dtype().size();
        Buffers {
            hidden: storage_buffer(device, "verify hidden", bytes_of(head.hidden.as_input())),
            labels: storage_buffer(device, "verify labels", bytemuck::cast_slice(&head.classes)),
            weight: storage_buffer(
                device,
                "verify linear weight",
                &weight[range.start * d * size..range.end * d * size],
            ),
            bias: storage_buffer(
                device,
                "verify linear bias",
                bytemuck::cast_slice(&head.bias[range.clone()]),
            ),
            classes: range.len(),
        }
    }

    /// The device request of `host` (its options and chunks) on these buffers, no gradients.
    fn request<'a>(&'a self, head: &Head, host: &Request) -> DeviceLinearRequest<'a> {
        let [n, d, _] = head.shape;
        let input = |buffer, shape, floats: &Floats| DeviceInput {
            buffer,
            offset: 0,
            shape,
            dtype: floats.as_input().dtype(),
        };
        let mut r = DeviceLinearRequest::new(
            input(&self.hidden, [n, d], &head.hidden),
            input(&self.weight, [self.classes, d], &head.weight),
            DeviceTarget::Classes {
                buffer: &self.labels,
                offset: 0,
                index: IndexType::I64,
            },
        );
        r.bias = Some(DeviceVector {
            buffer: &self.bias,
            offset: 0,
        });
        r.options = host.options();
        r.chunk_bytes = host.linear().and_then(|l| l.chunk_bytes);
        r
    }
}

/// f32 values of `bytes`.
fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(bytes)
}

/// A device-resident linear head on `engine`'s buffers: dH written over H, dW written over a
/// buffer of the caller's that holds NaNs, db into a new one. Its loss and gradients must be the host call's bit for bit;
/// the errors against the reference are returned, or NaN for a mismatch.
fn device_resident(engine: &Engine, head: &Head) -> Result<(f64, f64)> {
    let Some((device, queue)) = engine.wgpu() else {
        return Ok((f64::NAN, f64::NAN));
    };
    let [n, d, v] = head.shape;
    let host_request = head.request(0..v, false);
    let host = engine.compute(&host_request)?;
    let want = Engine::reference().compute(&host_request)?;
    let buffers = Buffers::new(device, head, 0..v);
    let d_weight = storage_buffer(device, "verify weight gradient", &vec![0xff; v * d * 4]);
    let mut request = buffers.request(head, &host_request);
    request.grads = DeviceLinearGrads {
        hidden: DeviceGrad::InPlace,
        weight: DeviceGrad::Into {
            buffer: &d_weight,
            offset: 0,
            add: false,
        },
        bias: DeviceGrad::New,
    };
    let mut encoder = device.create_command_encoder(&Default::default());
    let out = engine.record_linear(&mut encoder, &request)?;
    queue.submit([encoder.finish()]);
    let loss = engine.read_loss(&out.loss)?;
    let read = |buffer: &wgpu::Buffer, values: usize| -> Result<Vec<f32>> {
        Ok(f32s(&engine.read_buffer(buffer, 0..values as u64 * 4)?))
    };
    let bias = out.bias.as_ref().map(|b| read(b, v)).transpose()?;
    let got = [
        read(&buffers.hidden, n * d)?,
        read(&d_weight, v * d)?,
        bias.unwrap_or_default(),
    ];
    let got = [Some(&got[0][..]), Some(&got[1][..]), Some(&got[2][..])];
    let bits = |x: Option<&[f32]>| x.map(|x| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    let same = Some(loss) == host.loss.scalar()
        && got
            .iter()
            .zip(grads(&host))
            .all(|(g, h)| bits(*g) == bits(h));
    if !same {
        return Ok((f64::NAN, f64::NAN));
    }
    Ok((
        loss_error(&Loss::Scalar(loss), &want.loss),
        grad_errors(got, grads(&want)),
    ))
}

/// The head in `count` shards of uneven width, with label smoothing and z-loss: shard k's
/// statistics from `stats(k, shard, classes)`, merged, then its gradients from
/// `grad(k, shard, classes, merged)`: its part of dH, and its dW and db slices. The merged loss
/// and the gathered gradients (the parts of dH summed over the shards, in order) against the
/// reference's on the whole head.
fn sharded(
    head: &Head,
    count: usize,
    stats: impl Fn(usize, Shard, Range<usize>) -> Result<ShardStats>,
    grad: impl Fn(usize, Shard, Range<usize>, &ShardedLoss) -> Result<[Vec<f32>; 3]>,
) -> Result<(f64, f64)> {
    let [n, d, v] = head.shape;
    let whole = head.request(0..v, true);
    let want = Engine::reference().compute(&whole)?;
    let shards = head.shards(count);
    let mut all = Vec::new();
    for (k, (shard, classes)) in shards.iter().enumerate() {
        all.push(stats(k, *shard, classes.clone())?);
    }
    let merged = merge_shards(&all, &head.classes, None, &whole.options())?;
    let (mut d_hidden, mut d_weight, mut d_bias) = (vec![0.0_f32; n * d], Vec::new(), Vec::new());
    for (k, (shard, classes)) in shards.iter().enumerate() {
        let [part, weight, bias] = grad(k, *shard, classes.clone(), &merged)?;
        d_hidden.iter_mut().zip(part).for_each(|(sum, p)| *sum += p);
        d_weight.extend(weight);
        d_bias.extend(bias);
    }
    Ok((
        loss_error(&merged.loss, &want.loss),
        grad_errors(
            [Some(&d_hidden), Some(&d_weight), Some(&d_bias)],
            grads(&want),
        ),
    ))
}

/// The head's classes split between `engines`, a shard each, on host slices
/// ([`Engine::shard_stats`], [`Engine::shard_linear_grad`]).
fn sharded_on(engines: &[Engine], head: &Head) -> Result<(f64, f64)> {
    let [n, d, _] = head.shape;
    sharded(
        head,
        engines.len(),
        |k, shard, classes| engines[k].shard_stats(&head.request(classes, true), shard),
        |k, shard, classes, merged| {
            let width = classes.len();
            let request = head.request(classes, true);
            let mut out = [vec![0.0; n * d], vec![0.0; width * d], vec![0.0; width]];
            let [hidden, weight, bias] = &mut out;
            let grads = LinearGradsMut {
                hidden: Some(hidden),
                weight: Some(weight),
                bias: Some(bias),
                add: false,
            };
            engines[k].shard_linear_grad(&request, shard, merged, grads)?;
            Ok(out)
        },
    )
}

/// The head's classes in three shards on `engine`'s buffers: each shard's statistics read back
/// ([`Engine::record_linear_shard_stats`]), and its gradients into new buffers
/// ([`Engine::record_linear_shard_grad`]), read back.
fn device_sharded(engine: &Engine, head: &Head) -> Result<(f64, f64)> {
    let Some((device, queue)) = engine.wgpu() else {
        return Ok((f64::NAN, f64::NAN));
    };
    let [n, d, _] = head.shape;
    sharded(
        head,
        3,
        |_, shard, classes| {
            let host = head.request(classes.clone(), true);
            let buffers = Buffers::new(device, head, classes);
            let request = buffers.request(head, &host);
            let mut encoder = device.create_command_encoder(&Default::default());
            let out = engine.record_linear_shard_stats(&mut encoder, &request, shard)?;
            queue.submit([encoder.finish()]);
            engine.read_shard_stats(&out.loss)
        },
        |_, shard, classes, merged| {
            let width = classes.len();
            let host = head.request(classes.clone(), true);
            let buffers = Buffers::new(device, head, classes);
            let mut request = buffers.request(head, &host);
            request.grads = DeviceLinearGrads {
                hidden: DeviceGrad::New,
                weight: DeviceGrad::New,
                bias: DeviceGrad::New,
            };
            let mut encoder = device.create_command_encoder(&Default::default());
            let out = engine.record_linear_shard_grad(&mut encoder, &request, shard, merged)?;
            queue.submit([encoder.finish()]);
            engine.check_targets(&out.loss)?;
            let read = |buffer: &Option<wgpu::Buffer>, values: usize| -> Result<Vec<f32>> {
                match buffer {
                    Some(b) => Ok(f32s(&engine.read_buffer(b, 0..values as u64 * 4)?)),
                    None => Ok(vec![f32::NAN; values]),
                }
            };
            Ok([
                read(&out.hidden, n * d)?,
                read(&out.weight, width * d)?,
                read(&out.bias, width)?,
            ])
        },
    )
}
