//! CPU backends.

#[cfg(target_arch = "x86_64")]
mod avx2;
pub(crate) mod fast;
pub(crate) mod pool;
pub(crate) mod reference;
pub(crate) mod shard;
