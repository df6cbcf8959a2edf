//! CPU backends.

pub(crate) mod reference;
