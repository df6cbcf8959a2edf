//! Device buffers a test fills, and the values it reads back from them.

use xent::Engine;

/// A STORAGE | COPY_SRC | COPY_DST buffer on `engine`'s device holding `contents`, padded with
/// zeros to whole 16-byte words.
pub fn storage_buffer(engine: &Engine, contents: &[u8]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    let (device, _) = engine.wgpu().expect("a GPU engine");
    let mut padded = contents.to_vec();
    padded.resize(padded.len().next_multiple_of(16).max(16), 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("test data"),
        contents: &padded,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
    })
}

/// Little-endian f32 values from bytes.
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
