//! The output head of a fused linear cross-entropy, whose logits H·Wᵀ + b are computed a chunk
//! of rows at a time and never held whole; a request holds it in place of its input.

use super::values::Input;

/// The most logits' bytes a chunk of rows holds unless a request says otherwise
/// ([`Request::linear_chunk_bytes`](crate::Request::linear_chunk_bytes)): at a vocabulary of
/// 32 000, 524 rows. A chunk also holds at most a tenth of the whole logits' bytes (or 1 MiB, if
/// that is more), so that a linear request never needs more than a small part of what its
/// logits would take. The GEMMs run faster on more rows: on 2 Zen 4 cores at 2048×1024×32000, a
/// forward and backward took 3.6 s in chunks of 4 MiB, 1.87 s in chunks of 26 MB and 1.80 s in
/// chunks of 64 MiB.
pub const DEFAULT_CHUNK_BYTES: usize = 64 << 20;

/// The most of the whole logits' bytes a default chunk holds: one part in this many.
const DEFAULT_LOGITS_PARTS: usize = 10;

/// The least a chunk holds by default, however small the logits (one row, at least, always).
const MIN_DEFAULT_CHUNK_BYTES: usize = 1 << 20;

/// The output head of a fused linear cross-entropy: logits = hidden · weightᵀ + bias.
#[derive(Clone, Copy, Debug)]
pub struct Linear<'a> {
    /// The hidden states H, [N, D] row-major.
    pub hidden: Input<'a>,
    /// The head's weight W, [V, D] row-major: one row per class.
    pub weight: Input<'a>,
    /// The head's bias b, `[V]`, when it has one.
    pub bias: Option<&'a [f32]>,
    /// D, the columns of both.
    pub dim: usize,
    /// D as the weight's shape gives it, checked against `dim`.
    pub weight_dim: usize,
    /// The most bytes of logits a chunk of rows holds, when the request sets it (see
    /// [`DEFAULT_CHUNK_BYTES`] for what it is otherwise).
    pub chunk_bytes: Option<usize>,
}

/// How many of `rows` rows of `classes` logits a chunk takes: as many as fit `chunk_bytes`, or
/// the default's budget (see [`DEFAULT_CHUNK_BYTES`]), at least one.
pub(crate) fn chunk_rows([rows, classes]: [usize; 2], chunk_bytes: Option<usize>) -> usize {
    let row_bytes = classes.max(1) * 4;
    let logits_bytes = row_bytes.saturating_mul(rows);
    let budget = chunk_bytes.unwrap_or(
        DEFAULT_CHUNK_BYTES.min((logits_bytes / DEFAULT_LOGITS_PARTS).max(MIN_DEFAULT_CHUNK_BYTES)),
    );
    (budget / row_bytes).clamp(1, rows.max(1))
}
