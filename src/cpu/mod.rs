//! CPU backends: the fast f32 path, the float64 reference, and vocabulary shards in float64.

pub(crate) mod fast;
pub(crate) mod gemm;
mod gradient;
pub(crate) mod linear;
pub(crate) mod linear_shard;
pub(crate) mod reference;
pub(crate) mod shard;
