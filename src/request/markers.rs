//! The encoded class targets' markers, as the kernels read them.

/// The encoded target of an ignored row, as the kernels see it.
pub(crate) const IGNORED: u32 = u32::MAX;
/// The encoded target of a row of a vocabulary shard whose class is in another shard (below the
/// kernels' `BAD`, u32::MAX − 1, which marks a device target out of range).
pub(crate) const ELSEWHERE: u32 = u32::MAX - 2;
