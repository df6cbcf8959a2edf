//! FNV-1a 64 over the bits of what an engine returns.
//!
//! Floats are fed as their bits, with every NaN as one canonical NaN: neither Rust nor WGSL
//! promises a NaN's sign or payload, so those may change with the code around an operation while
//! the value (a NaN) does not. Zeros keep their sign. Each field is fed after a label, and each
//! array after its length, so that two different results cannot run into the same stream.

use half::{bf16, f16};
use xent::{Dtype, Loss, Output, Result, ShardStats, ShardedLoss};

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The canonical NaN of each width: quiet, positive, no payload.
const NAN_F32: u32 = 0x7fc0_0000;
const NAN_F16: u16 = 0x7e00;
const NAN_BF16: u16 = 0x7fc0;

/// A running FNV-1a 64 hash.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(OFFSET)
    }
}

impl Fnv {
    pub fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }

    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// A label or a text, after its length.
    pub fn tag(&mut self, text: &str) {
        self.u64(text.len() as u64);
        self.bytes(text.as_bytes());
    }

    pub fn f32(&mut self, v: f32) {
        let bits = if v.is_nan() { NAN_F32 } else { v.to_bits() };
        self.bytes(&bits.to_le_bytes());
    }

    pub fn f32s(&mut self, values: &[f32]) {
        self.u64(values.len() as u64);
        values.iter().for_each(|&v| self.f32(v));
    }

    /// Little-endian values of `dtype`, as a device buffer holds them, each NaN made canonical.
    pub fn values(&mut self, dtype: Dtype, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        match dtype {
            Dtype::F32 => bytes.chunks_exact(4).for_each(|b| {
                self.f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            }),
            Dtype::F16 => bytes.chunks_exact(2).for_each(|b| {
                let v = f16::from_le_bytes([b[0], b[1]]);
                let bits = if v.is_nan() { NAN_F16 } else { v.to_bits() };
                self.bytes(&bits.to_le_bytes());
            }),
            Dtype::Bf16 => bytes.chunks_exact(2).for_each(|b| {
                let v = bf16::from_le_bytes([b[0], b[1]]);
                let bits = if v.is_nan() { NAN_BF16 } else { v.to_bits() };
                self.bytes(&bits.to_le_bytes());
            }),
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }

    /// A result: the value as `feed` hashes it, or the error's `Display` text.
    pub fn result<T>(&mut self, result: &Result<T>, feed: impl FnOnce(&mut Self, &T)) {
        match result {
            Ok(value) => {
                self.tag("ok");
                feed(self, value);
            }
            Err(e) => {
                self.tag("error");
                self.tag(&e.to_string());
            }
        }
    }

    /// The reduced loss: the scalar, or the unreduced values and their shape.
    pub fn loss(&mut self, loss: &Loss) {
        match loss {
            Loss::Scalar(v) => {
                self.tag("scalar");
                self.f32(*v);
            }
            Loss::Unreduced { values, shape } => {
                self.tag("unreduced");
                self.u64(shape.len() as u64);
                shape.iter().for_each(|&d| self.u64(d as u64));
                self.f32s(values);
            }
        }
    }

    /// Every field of an output.
    pub fn output(&mut self, out: &Output) {
        self.loss(&out.loss);
        self.tag("valid_rows");
        self.u64(out.valid_rows as u64);
        self.optional("lse", out.lse.as_deref());
        self.optional("grad", out.grad.as_deref());
    }

    /// A field that may be absent.
    pub fn optional(&mut self, label: &str, values: Option<&[f32]>) {
        self.tag(label);
        match values {
            Some(v) => {
                self.tag("some");
                self.f32s(v);
            }
            None => self.tag("none"),
        }
    }

    /// A shard's statistics, every field.
    pub fn shard_stats(&mut self, stats: &ShardStats) {
        self.tag("shard");
        self.u64(stats.shard.first_class as u64);
        self.u64(stats.shard.total_classes as u64);
        self.u64(stats.classes as u64);
        self.f32s(&stats.max);
        self.f32s(&stats.sum_exp);
        self.u64(stats.target_logit.len() as u64);
        for t in &stats.target_logit {
            match t {
                Some(v) => {
                    self.tag("here");
                    self.f32(*v);
                }
                None => self.tag("elsewhere"),
            }
        }
        self.f32s(&stats.smoothing_sum);
    }

    /// The public fields of a merge of shards.
    pub fn merged(&mut self, merged: &ShardedLoss) {
        self.loss(&merged.loss);
        self.f32s(&merged.lse);
        self.tag("valid_rows");
        self.u64(merged.valid_rows as u64);
    }
}
