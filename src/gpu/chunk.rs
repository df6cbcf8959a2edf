//! Splitting a batch into row chunks that each fit one storage binding: from the host, through
//! staging buffers of a bounded size; on the device, where the caller's buffers can be bound.

use std::ops::Range;

use crate::error::{Error, Result};

/// Bytes of the kernels' word, a `vec4` of four f32 or eight 16-bit values: a kernel reads its
/// input, dense targets and gradient as whole words, so each such binding is a whole number of
/// them.
pub(crate) const WORD_BYTES: u64 = 16;

/// The largest chunk uploaded at once. Smaller than lavapipe's 128 MiB binding limit so that the
/// upload of one chunk overlaps the kernel on the previous one, and host-side staging stays small.
const CHUNK_CAP_BYTES: u64 = 32 << 20;

/// The bytes of one chunk on a device with these limits: what one storage binding and one buffer
/// hold, and at most `CHUNK_CAP_BYTES`.
pub(crate) fn chunk_cap(limits: &wgpu::Limits) -> u64 {
    limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
        .min(CHUNK_CAP_BYTES)
}

/// Row ranges covering `0..batch`, each at most `max_bytes` of f32 logits once rounded up to the
/// 16-byte vec4 word the kernels read.
pub(crate) fn row_chunks(
    batch: usize,
    classes: usize,
    max_bytes: u64,
) -> Result<Vec<Range<usize>>> {
    let max_bytes = max_bytes / WORD_BYTES * WORD_BYTES;
    let row_bytes = classes as u64 * 4;
    let rows_per_chunk = max_bytes / row_bytes;
    // Chunks of a whole number of quads keep every row's first element at the same place in its
    // quad as in one unchunked pass, so the kernels sum each row in the same order, and the bits
    // do not depend on the chunk size (a device's binding limit).
    let whole_quads = 4 / gcd(classes as u64, 4);
    let rows_per_chunk = if rows_per_chunk >= whole_quads {
        rows_per_chunk / whole_quads * whole_quads
    } else {
        rows_per_chunk
    };
    if rows_per_chunk == 0 {
        return Err(Error::TooLarge {
            what: "logits",
            reason: format!(
                "one row of {classes} classes takes {row_bytes} bytes, over the {max_bytes}-byte storage binding"
            ),
        });
    }
    let step = usize::try_from(rows_per_chunk).unwrap_or(usize::MAX);
    Ok((0..batch)
        .step_by(step)
        .map(|start| start..batch.min(start.saturating_add(step)))
        .collect())
}

/// Row chunks of a device input, each within one storage binding, starting at offsets the device
/// can bind: a multiple of `align` bytes of the widest per-element array (f32 values and
/// gradients).
pub(crate) fn device_chunks(
    [batch, classes]: [usize; 2],
    max_binding: u64,
    align: u64,
) -> Result<Vec<Range<usize>>> {
    let row_bytes = classes as u64 * 4;
    // The whole batch in one binding, wherever it starts.
    if (batch as u64).saturating_mul(row_bytes) <= max_binding.saturating_sub(WORD_BYTES) {
        return Ok(std::iter::once(0..batch).collect());
    }
    // The fewest rows whose bytes, in every dtype (2 or 4 per element), are a multiple of align.
    let step = {
        let half_row = classes as u64 * 2;
        align / gcd(half_row, align)
    };
    let fit = max_binding.saturating_sub(WORD_BYTES) / row_bytes / step * step;
    if fit == 0 {
        return Err(Error::TooLarge {
            what: "logits",
            reason: format!(
                "{step} rows of {classes} classes take {} bytes, over the {max_binding}-byte storage binding",
                step * row_bytes
            ),
        });
    }
    let fit = usize::try_from(fit).unwrap_or(usize::MAX);
    Ok((0..batch)
        .step_by(fit)
        .map(|start| start..batch.min(start.saturating_add(fit)))
        .collect())
}

/// Row chunks of a linear head's logits, `rows` rows each (its byte budget's) within one
/// storage binding of `max_binding` bytes. With `aligned` (a dense target in a buffer, bound at
/// each chunk's rows) chunks start at multiples of `align` bytes of f32 rows, at the cost of
/// more rows than the budget's where fewer cannot be aligned.
pub(crate) fn linear_chunks(
    [batch, classes]: [usize; 2],
    rows: usize,
    max_binding: u64,
    (aligned, align): (bool, u64),
) -> Result<Vec<Range<usize>>> {
    let row_bytes = classes as u64 * 4;
    let budget = (rows as u64 * row_bytes).next_multiple_of(WORD_BYTES);
    if !aligned {
        return row_chunks(batch, classes, budget.min(max_binding));
    }
    let step = align / gcd(classes as u64 * 2, align);
    let bytes = budget.max(step * row_bytes + WORD_BYTES);
    device_chunks([batch, classes], bytes.min(max_binding), align)
}

/// The greatest common divisor.
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_batch_exactly_and_fit() {
        for &(batch, classes, max) in &[
            (1, 1, 16),
            (70_000, 10, 1 << 20),
            (1100, 32_000, 128 << 20),
            (1000, 1001, 1 << 20),
            (7, 3, 40),
            (0, 5, 64),
        ] {
            let chunks = row_chunks(batch, classes, max).unwrap();
            let covered: usize = chunks.iter().map(|c| c.len()).sum();
            assert_eq!(covered, batch);
            for pair in chunks.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
            }
            for c in &chunks {
                assert!((c.len() as u64 * classes as u64 * 4).next_multiple_of(WORD_BYTES) <= max);
            }
            // Where four rows fit, every chunk starts on a whole quad of the batch.
            if max / WORD_BYTES * WORD_BYTES >= 4 * classes as u64 * 4 {
                assert!(chunks.iter().all(|c| c.start * classes % 4 == 0));
            }
        }
    }

    #[test]
    fn a_row_over_the_binding_is_an_error() {
        let err = row_chunks(2, 100, 256).unwrap_err();
        assert!(
            matches!(err, Error::TooLarge { what: "logits", .. }),
            "{err}"
        );
    }
}
