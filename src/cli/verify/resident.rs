//! The device-resident check: a call recorded on an adapter's own buffers, against the host call
//! bit for bit and against the reference.

use half::bf16;
use wgpu::util::DeviceExt;
use xent::{
    DeviceInput, DeviceRequest, DeviceTarget, Dtype, Engine, IndexType, LossKind, Request, Result,
};

use super::cases::{Data, VOCAB_SHAPE};
use crate::cli::compare::{grad_error, loss_error};

/// A STORAGE | COPY_SRC | COPY_DST buffer on `device` holding `bytes`, padded with zeros to whole
/// 16-byte words (device-resident inputs are read in 16-byte words).
pub fn storage_buffer(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    let mut contents = bytes.to_vec();
    contents.resize(contents.len().next_multiple_of(16), 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &contents,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
    })
}

/// A device-resident call on `engine`: bf16 logits and i64 class targets in buffers of its device,
/// label smoothing, the gradient in place. Its loss and gradient must be the host request's bit
/// for bit (the gradient rounded to bf16); the errors against the reference on the same bf16
/// values are returned, or NaN for a mismatch.
pub fn device_resident(engine: &Engine, data: &Data) -> Result<(f64, f64)> {
    let Some((device, queue)) = engine.wgpu() else {
        return Ok((f64::NAN, f64::NAN));
    };
    let logits: Vec<bf16> = data.logits.iter().map(|&v| bf16::from_f32(v)).collect();
    let request = Request::cross_entropy(&logits[..], VOCAB_SHAPE, &data.classes[..])
        .label_smoothing(0.1)
        .with_grad(true);
    let host = engine.compute(&request)?;
    let want = Engine::reference().compute(&request)?;
    let input = storage_buffer(device, "verify logits", bytemuck::cast_slice(&logits));
    let labels = storage_buffer(device, "verify labels", bytemuck::cast_slice(&data.classes));
    let mut device_request = DeviceRequest::new(
        LossKind::CrossEntropy,
        DeviceInput {
            buffer: &input,
            offset: 0,
            shape: VOCAB_SHAPE,
            dtype: Dtype::Bf16,
        },
        DeviceTarget::Classes {
            buffer: &labels,
            offset: 0,
            index: IndexType::I64,
        },
    );
    device_request.options = request.options();
    device_request.options.grad_in_place = true;
    let mut encoder = device.create_command_encoder(&Default::default());
    let out = engine.record(&mut encoder, &device_request)?;
    queue.submit([encoder.finish()]);
    let loss = engine.read_loss(&out)?;
    let grad: Vec<f32> = engine
        .read_buffer(&input, 0..(logits.len() * 2) as u64)?
        .chunks_exact(2)
        .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    let host_grad = host.grad.as_deref().unwrap_or_default();
    let same = Some(loss) == host.loss.scalar()
        && grad
            .iter()
            .zip(host_grad)
            .all(|(&g, &h)| g == bf16::from_f32(h).to_f32());
    if !same {
        return Ok((f64::NAN, f64::NAN));
    }
    // The gradient is stored in bf16: against the reference, its rounding is the error.
    let rounded: Vec<f32> = want
        .grad
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|&g| bf16::from_f32(g).to_f32())
        .collect();
    Ok((
        loss_error(&xent::Loss::Scalar(loss), &want.loss),
        grad_error(&grad, &rounded),
    ))
}
