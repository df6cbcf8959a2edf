//! The guard before npyz reads a `.npy` header: every field of the preamble that npyz would
//! trust, checked against the bytes that are really there.

use std::path::Path;

use crate::Result;
use crate::io::error::npy_error;

/// The magic string every `.npy` file begins with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header read. A plain array's header is about 120 bytes, and one of 64 dimensions
/// of 20 digits each under 1500; numpy itself refuses headers over 10 000 bytes by default.
const MAX_HEADER_LEN: usize = 4096;

/// The deepest nesting of brackets read in a header. A plain array's header needs 2 (the dict and
/// the shape's tuple), a structured one 3, or 4 with sub-arrays (refused later, by name). npyz's
/// parser of Python literals takes time exponential in the nesting, so a deeper header is refused
/// before it is parsed: with the nesting and the length ([`MAX_HEADER_LEN`]) bounded, so is the
/// time a header takes to parse (measured in `docs/performance.md`, "Measurements behind the
/// design").
const MAX_NESTING: usize = 4;

/// Checks what npyz would trust before it parses a header: the magic string and version, a header
/// length that the file really holds (npyz allocates it first), a header short and shallow enough
/// to parse quickly, and a shape whose size cannot overflow (npyz multiplies the dimensions out,
/// which panics on overflow where overflow checks are on).
pub(super) fn check_header(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |reason: String| Err(npy_error(path, reason));
    if bytes.is_empty() {
        return fail("the file is empty, not a .npy file".into());
    }
    let magic = &bytes[..bytes.len().min(MAGIC.len())];
    if magic != &MAGIC[..magic.len()] {
        return fail(
            r"not a valid .npy file: it does not begin with the magic string \x93NUMPY".into(),
        );
    }
    let (major, minor) = match bytes {
        [_, _, _, _, _, _, major, minor, ..] => (*major, *minor),
        _ => {
            return fail(format!(
                "truncated .npy file: it ends after {} bytes, within the magic string and version",
                bytes.len()
            ));
        }
    };
    let (len_field, pre) = match (major, minor) {
        (1, 0) => (2, 10),
        (2 | 3, 0) => (4, 12),
        _ => {
            return fail(format!(
                "unsupported .npy format version {major}.{minor}; xent reads 1.0, 2.0 and 3.0"
            ));
        }
    };
    let Some(field) = bytes.get(8..pre) else {
        return fail(format!(
            "truncated .npy file: it ends after {} bytes, within the {len_field}-byte header length",
            bytes.len()
        ));
    };
    let header_len = field
        .iter()
        .rev()
        .fold(0_usize, |acc, &b| (acc << 8) | usize::from(b));
    let rest = bytes.len() - pre;
    if header_len > rest {
        return fail(format!(
            "truncated .npy file or a header that lies about its size: the header length field \
             says {header_len} bytes, but only {rest} bytes follow it"
        ));
    }
    if header_len > MAX_HEADER_LEN {
        return fail(format!(
            "the .npy header is {header_len} bytes long; xent reads headers of at most \
             {MAX_HEADER_LEN} bytes"
        ));
    }
    let text = &bytes[pre..pre + header_len];
    if nesting(text) > MAX_NESTING {
        return fail(format!(
            "not a valid .npy header: brackets nested more than {MAX_NESTING} deep"
        ));
    }
    if size_bound(text).is_none() {
        return fail(
            "the header's shape is too large: its dimensions multiply to more than 2^64".into(),
        );
    }
    Ok(())
}

/// The deepest nesting of brackets in `text`, counting those in strings too.
fn nesting(text: &[u8]) -> usize {
    let mut depth = 0_usize;
    let mut deepest = 0;
    for &b in text {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// An upper bound on the product of the nonzero dimensions a header can hold, or `None` past
/// 2^64. A dimension is a Python integer expression, literals joined by `+` and `-`: it is at
/// most the sum of its literals, and two dimensions are separated by a comma. So the product,
/// over every run of integer literals joined only by signs and spaces, of the run's sum (or 1) is
/// such a bound. It is the exact product for a header as numpy writes it, and it holds for any
/// text, whatever else (strings, other keys) the header has.
fn size_bound(text: &[u8]) -> Option<u64> {
    fn word(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b == b'_'
    }
    let mut product = 1_u64;
    let mut run = 0_u128;
    let mut end_run = |run: &mut u128| -> Option<()> {
        let factor = u64::try_from((*run).max(1)).ok()?;
        *run = 0;
        product = product.checked_mul(factor)?;
        Some(())
    };
    let mut i = 0;
    while i < text.len() {
        if word(text[i]) {
            let start = i;
            while i < text.len() && word(text[i]) {
                i += 1;
            }
            let token = &text[start..i];
            if token[0].is_ascii_digit() {
                run = run.saturating_add(int_literal(token));
            } else {
                end_run(&mut run)?;
            }
            continue;
        }
        if !matches!(text[i], b' ' | b'\t' | b'\x0c' | b'+' | b'-') {
            end_run(&mut run)?;
        }
        i += 1;
    }
    end_run(&mut run)?;
    Some(product)
}

/// The value of a Python integer literal (decimal, `0x`, `0o` or `0b`, with `_` between digits),
/// saturating; 0 for a token that is not one (a float or imaginary literal, never a dimension).
fn int_literal(token: &[u8]) -> u128 {
    let (radix, digits) = match token {
        [b'0', b'x' | b'X', rest @ ..] => (16, rest),
        [b'0', b'o' | b'O', rest @ ..] => (8, rest),
        [b'0', b'b' | b'B', rest @ ..] => (2, rest),
        _ => (10, token),
    };
    let mut value = 0_u128;
    for &b in digits.iter().filter(|&&b| b != b'_') {
        let Some(digit) = char::from(b).to_digit(radix) else {
            return 0;
        };
        value = value
            .saturating_mul(u128::from(radix))
            .saturating_add(u128::from(digit));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::npy::malformed_tests::dict;

    #[test]
    fn size_bound_is_exact_for_numpy_headers_and_an_upper_bound_otherwise() {
        let bound = |s: &str| size_bound(s.as_bytes());
        assert_eq!(
            bound(&dict("<f4", false, "(100000, 25000)")),
            Some(2_500_000_000)
        );
        assert_eq!(bound(&dict("<f8", false, "(3, 0, 7)")), Some(21));
        assert_eq!(bound(&dict("<U10", false, "()")), Some(1));
        assert_eq!(bound("(2+3, 0x10 - 1, 1_0)"), Some(5 * 17 * 10));
        assert_eq!(bound("(1.5e3, 7j)"), Some(1));
        assert_eq!(bound("(4294967296, 4294967296)"), None);
        assert_eq!(int_literal(b"0b101"), 5);
        assert_eq!(int_literal(b"0O17"), 15);
        assert_eq!(int_literal(b"1e5"), 0);
        assert_eq!(int_literal(&[b'9'; 60]), u128::MAX);
    }
}
