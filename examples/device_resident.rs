//! A wgpu user's logits and labels, already on their GPU, and xent's loss with the gradient
//! written in place over the logits: no host round trip, and no device memory for a gradient.
//!
//! The program opens its own device (the first adapter wgpu finds, lavapipe on a machine with no
//! GPU), fills a bf16 [B, C] logits buffer and an i64 labels buffer the way a training step would
//! have left them, records xent's passes into its own command encoder, submits, and reads the
//! scalar back. It then checks the in-place bf16 gradient against the same request on host
//! slices, and exits non-zero on a mismatch.
//!
//! ```text
//! cargo run --release --example device_resident
//! ```

use half::bf16;
use rand::{Rng, SeedableRng, rngs::StdRng};
use wgpu::util::DeviceExt;
use xent::{DeviceInput, DeviceRequest, DeviceTarget, Dtype, Engine, IndexType, LossKind, Request};

/// A GPT-2-sized vocabulary: odd, so rows straddle the u32 words bf16 values are packed in.
const CLASSES: usize = 50_257;
const BATCH: usize = 16;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("a training loop's device"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;
    println!("on {}", adapter.get_info().name);

    // What the forward pass left: bf16 logits, and labels with padding rows at -100.
    let mut rng = StdRng::seed_from_u64(7);
    let logits: Vec<bf16> = (0..BATCH * CLASSES)
        .map(|_| bf16::from_f32(rng.random_range(-6.0..6.0)))
        .collect();
    let labels: Vec<i64> = (0..BATCH)
        .map(|r| {
            if r % 5 == 4 {
                -100
            } else {
                rng.random_range(0..CLASSES as i64)
            }
        })
        .collect();
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    // The kernels read whole 16-byte words: the buffer is padded to one.
    let mut bytes = bytemuck::cast_slice::<bf16, u8>(&logits).to_vec();
    bytes.resize(bytes.len().next_multiple_of(16), 0);
    let logits_buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("logits"),
        contents: &bytes,
        usage,
    });
    let labels_buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("labels"),
        contents: bytemuck::cast_slice(&labels),
        usage,
    });

    // xent on the same device, recording into the training step's encoder.
    let engine = Engine::from_wgpu(device.clone(), queue.clone());
    let mut request = DeviceRequest::new(
        LossKind::CrossEntropy,
        DeviceInput {
            buffer: &logits_buffer,
            offset: 0,
            shape: [BATCH, CLASSES],
            dtype: Dtype::Bf16,
        },
        DeviceTarget::Classes {
            buffer: &labels_buffer,
            offset: 0,
            index: IndexType::I64,
        },
    );
    request.options.label_smoothing = 0.1;
    request.options.grad_in_place = true;
    request.options.grad = true;
    let mut encoder = device.create_command_encoder(&Default::default());
    let start = std::time::Instant::now();
    let out = engine.record(&mut encoder, &request)?;
    queue.submit([encoder.finish()]);
    let loss = engine.read_loss(&out)?;
    println!(
        "mean cross-entropy over {BATCH} x {CLASSES} bf16 logits: {loss:.6} ({:.1} ms, gradient in place)",
        start.elapsed().as_secs_f64() * 1e3
    );

    // The same request on host slices, for comparison.
    let host = engine.compute(
        &Request::cross_entropy(&logits[..], [BATCH, CLASSES], &labels[..])
            .label_smoothing(0.1)
            .with_grad(true),
    )?;
    let host_loss = host.loss.scalar().unwrap_or(f32::NAN);
    let grad = engine.read_buffer(&logits_buffer, 0..(BATCH * CLASSES * 2) as u64)?;
    let mismatches = grad
        .chunks_exact(2)
        .zip(host.grad.as_deref().unwrap_or_default())
        .filter(|&(bits, &g)| bf16::from_le_bytes([bits[0], bits[1]]) != bf16::from_f32(g))
        .count();
    println!(
        "host slices: {host_loss:.6}; in-place bf16 gradient values that differ from the host's f32 gradient rounded to bf16: {mismatches}"
    );
    if loss.to_bits() != host_loss.to_bits() || mismatches > 0 {
        return Err("the device-resident result differs from the host one".into());
    }
    Ok(())
}
