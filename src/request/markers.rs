//! The encoded class targets' markers, as the kernels read them (every WGSL module is given them
//! as constants of the same names, from these).

/// The encoded target of an ignored row, as the kernels see it.
pub(crate) const IGNORED: u32 = u32::MAX;
/// The encoded target of a class target that is out of range, which only the kernels' own check
/// of device targets (`encode_targets`) writes: the row's loss and gradient are NaN.
pub(crate) const BAD: u32 = u32::MAX - 1;
/// The encoded target of a row of a vocabulary shard whose class is in another shard.
pub(crate) const ELSEWHERE: u32 = u32::MAX - 2;
