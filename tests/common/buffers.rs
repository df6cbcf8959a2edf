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

/// Bytes the tests put before and after the data in a buffer, so that offsets are exercised and
/// anything written outside the data is seen.
pub const GUARD: u64 = 256;
pub const GUARD_BYTE: u8 = 0xa5;

/// A STORAGE | COPY_SRC | COPY_DST buffer holding `bytes` at offset `GUARD`, between guard bytes.
pub fn guarded_buffer(engine: &Engine, bytes: &[u8]) -> wgpu::Buffer {
    let mut contents = vec![GUARD_BYTE; GUARD as usize];
    contents.extend_from_slice(bytes);
    contents.resize(
        (contents.len() + GUARD as usize).next_multiple_of(16),
        GUARD_BYTE,
    );
    storage_buffer(engine, &contents)
}

/// The bytes of values as they lie in memory (16-bit values two to a word).
pub fn float_bytes<'a>(values: &'a xent::io::Floats) -> &'a [u8] {
    use xent::io::Floats;
    match values {
        Floats::F32(v) => bytemuck::cast_slice(v),
        Floats::F16(v) => bytemuck::cast_slice(v),
        Floats::Bf16(v) => bytemuck::cast_slice(v),
    }
}

/// `count` f32 values of `buffer` from byte `offset`.
pub fn read_floats(engine: &Engine, buffer: &wgpu::Buffer, offset: u64, count: usize) -> Vec<f32> {
    let bytes = engine.read_buffer(buffer, offset..offset + count as u64 * 4);
    floats(&bytes.expect("a readable buffer"))
}
