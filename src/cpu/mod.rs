//! CPU backends: the fast f32 path, the float64 reference, and vocabulary shards in float64.

pub(crate) mod fast;
mod gradient;
pub(crate) mod reference;
pub(crate) mod shard;
