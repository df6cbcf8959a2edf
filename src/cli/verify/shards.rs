//! The shard checks: the vocabulary split between engines on host slices, and in shards on one
//! adapter's buffers; the merged loss and the gathered gradient against the reference's on the
//! whole rows.

use xent::{
    DeviceInput, DeviceRequest, DeviceTarget, Dtype, Engine, IndexType, LossKind,
    Options as RequestOptions, Request, Result, Shard, ShardStats, ShardedLoss, merge_shards,
};

use super::cases::{Data, VOCAB_SHAPE};
use super::resident::storage_buffer;
use crate::cli::compare::{grad_error, loss_error};

/// The options of the sharded checks.
pub fn shard_options() -> RequestOptions {
    RequestOptions {
        label_smoothing: 0.1,
        z_loss: 1e-4,
        ..Default::default()
    }
}

/// A shard's request on its columns `x` (or on all of them).
fn shard_request<'a>(x: &'a [f32], data: &'a Data) -> Request<'a> {
    let batch = VOCAB_SHAPE[0];
    let o = shard_options();
    Request::cross_entropy(x, [batch, x.len() / batch], &data.classes[..])
        .label_smoothing(o.label_smoothing)
        .z_loss(o.z_loss)
}

/// A shard's request on its columns in `input`, with the batch's i64 class indices in `labels`.
fn device_shard_request<'a>(
    input: &'a wgpu::Buffer,
    labels: &'a wgpu::Buffer,
    columns: usize,
) -> DeviceRequest<'a> {
    let mut r = DeviceRequest::new(
        LossKind::CrossEntropy,
        DeviceInput {
            buffer: input,
            offset: 0,
            shape: [VOCAB_SHAPE[0], columns],
            dtype: Dtype::F32,
        },
        DeviceTarget::Classes {
            buffer: labels,
            offset: 0,
            index: IndexType::I64,
        },
    );
    r.options = shard_options();
    r
}

/// The vocabulary split in `count` shards, shard k's statistics from `stats(k, shard, columns)`
/// and its gradient from `grad(k, shard, columns, merged)`: the merged loss and the gathered
/// gradient against the reference's on the whole rows.
fn sharded(
    data: &Data,
    count: usize,
    stats: impl Fn(usize, Shard, &[f32]) -> Result<ShardStats>,
    grad: impl Fn(usize, Shard, &[f32], &ShardedLoss) -> Result<Vec<f32>>,
) -> Result<(f64, f64)> {
    let [batch, classes] = VOCAB_SHAPE;
    let want = Engine::reference().compute(&shard_request(&data.logits, data).with_grad(true))?;
    let step = classes.div_ceil(count.max(1));
    let shards: Vec<(Shard, Vec<f32>)> = (0..classes)
        .step_by(step)
        .map(|first| {
            let end = (first + step).min(classes);
            let columns = data
                .logits
                .chunks_exact(classes)
                .flat_map(|row| row[first..end].to_vec())
                .collect();
            let shard = Shard {
                first_class: first,
                total_classes: classes,
            };
            (shard, columns)
        })
        .collect();
    let mut all = Vec::new();
    for (k, (shard, x)) in shards.iter().enumerate() {
        all.push(stats(k, *shard, x)?);
    }
    let merged = merge_shards(&all, &data.classes, None, &shard_options())?;
    let mut gathered = vec![0.0_f32; batch * classes];
    for (k, (shard, x)) in shards.iter().enumerate() {
        let width = x.len() / batch;
        let piece = grad(k, *shard, x, &merged)?;
        for (row, values) in piece.chunks_exact(width).enumerate() {
            let at = row * classes + shard.first_class;
            gathered[at..at + width].copy_from_slice(values);
        }
    }
    Ok((
        loss_error(&merged.loss, &want.loss),
        grad_error(&gathered, want.grad.as_deref().unwrap_or_default()),
    ))
}

/// The vocabulary split between `engines`, a shard each, on host slices.
pub fn sharded_on(engines: &[Engine], data: &Data) -> Result<(f64, f64)> {
    sharded(
        data,
        engines.len(),
        |k, shard, x| engines[k].shard_stats(&shard_request(x, data), shard),
        |k, shard, x, merged| {
            let mut piece = vec![0.0_f32; x.len()];
            engines[k].shard_grad(&shard_request(x, data), shard, merged, &mut piece)?;
            Ok(piece)
        },
    )
}

/// The vocabulary in three shards on `engine`'s device: f32 logits and i64 class targets in its
/// buffers, each shard's statistics read back and merged, and its gradient written in place.
pub fn device_sharded(engine: &Engine, data: &Data) -> Result<(f64, f64)> {
    let Some((device, queue)) = engine.wgpu() else {
        return Ok((f64::NAN, f64::NAN));
    };
    let labels = storage_buffer(device, "verify labels", bytemuck::cast_slice(&data.classes));
    let buffer =
        |label, values: &[f32]| storage_buffer(device, label, bytemuck::cast_slice(values));
    sharded(
        data,
        3,
        |_, shard, x| {
            let input = buffer("verify shard logits", x);
            let r = device_shard_request(&input, &labels, x.len() / VOCAB_SHAPE[0]);
            let mut encoder = device.create_command_encoder(&Default::default());
            let out = engine.record_shard_stats(&mut encoder, &r, shard)?;
            queue.submit([encoder.finish()]);
            engine.read_shard_stats(&out)
        },
        |_, shard, x, merged| {
            let input = buffer("verify shard logits", x);
            let mut r = device_shard_request(&input, &labels, x.len() / VOCAB_SHAPE[0]);
            r.options.grad_in_place = true;
            let mut encoder = device.create_command_encoder(&Default::default());
            let out = engine.record_shard_grad(&mut encoder, &r, shard, merged)?;
            queue.submit([encoder.finish()]);
            engine.check_targets(&out)?;
            let bytes = engine.read_buffer(&input, 0..(x.len() * 4) as u64)?;
            Ok(bytemuck::pod_collect_to_vec(&bytes))
        },
    )
}
