//! CPU backends.

pub(crate) mod fast;
pub(crate) mod pool;
pub(crate) mod reference;
pub(crate) mod shard;
