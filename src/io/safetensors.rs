//! `.safetensors` input for the CLI, through the `safetensors` crate: how bfloat16 logits reach
//! `xent loss`, `.npy` having no bfloat16 dtype.
//!
//! A file is read from a [`Source`] ([`read_input`]), or given as bytes ([`parse_input`]). Before anything is
//! parsed, its 8-byte header length is checked against the bytes that follow it; the crate then
//! parses the JSON header (in the file, so no longer than it) and checks, with overflow checked,
//! that each tensor's offsets match its dtype and shape and that the tensors cover the rest of
//! the file exactly. Nothing is allocated from a shape or offset before that. The tensor read is
//! the one named, or the file's only one; it must be a [batch, classes] BF16, F16 or F32 array,
//! and its values are kept in their dtype, borrowed from the bytes where aligned. Malformed bytes of any kind are a one-line
//! [`Error::Safetensors`](crate::Error::Safetensors), never a panic.

use std::path::Path;

use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::Result;
use crate::io::decode::{ByteOrder, values};
use crate::io::error::{quote, safetensors_error};
use crate::io::floats::Floats;
use crate::io::source::Source;

/// The bytes of the header-length field every `.safetensors` file begins with.
const LENGTH_FIELD: usize = 8;

/// The most tensor names an error lists.
const MAX_NAMES: usize = 8;

/// The most characters of a tensor name an error shows.
const MAX_NAME_CHARS: usize = 100;

/// Reads a 2-D BF16, F16 or F32 tensor of a file, with its shape, as [`parse_input`] does: the
/// one named `tensor`, or else the file's only one.
pub fn read_input<'a>(file: &'a Source, tensor: Option<&str>) -> Result<(Floats<'a>, [usize; 2])> {
    parse_input(file.path(), file.bytes(), tensor)
}

/// Parses the bytes of a `.safetensors` file: the 2-D BF16, F16 or F32 tensor named `tensor`, or
/// else the file's only one, with its shape; `name` names the file in errors. Values that are
/// aligned in `bytes` are borrowed from them (the format is little-endian); others are copied
/// once.
///
/// Any bytes give `Ok` or an [`Error::Safetensors`](crate::Error::Safetensors), never a panic,
/// and nothing is allocated from what the header claims until the bytes are checked to be there.
pub fn parse_input<'a>(
    name: &Path,
    bytes: &'a [u8],
    tensor: Option<&str>,
) -> Result<(Floats<'a>, [usize; 2])> {
    let fail = |reason: String| Err(safetensors_error(name, reason));
    let Some((field, rest)) = bytes.split_first_chunk::<LENGTH_FIELD>() else {
        return fail(format!(
            "truncated .safetensors file: it has {} bytes, fewer than the {LENGTH_FIELD}-byte \
             header length",
            bytes.len()
        ));
    };
    let header_len = u64::from_le_bytes(*field);
    if header_len > rest.len() as u64 {
        return fail(format!(
            "truncated .safetensors file or a header that lies about its size: the header length \
             field says {header_len} bytes, but only {} bytes follow it",
            rest.len()
        ));
    }
    let data_len = rest.len() as u64 - header_len;
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| safetensors_error(name, reason(&e, data_len)))?;
    let (tensor_name, view) = match tensor {
        Some(wanted) => match file.tensor(wanted) {
            Ok(view) => (wanted.to_string(), view),
            Err(_) => {
                return fail(format!(
                    "no tensor named {}; the file holds {}",
                    show(wanted),
                    names(&file)
                ));
            }
        },
        None => {
            let mut all = file.tensors();
            match all.len() {
                1 => all.remove(0),
                0 => return fail("the file holds no tensor".into()),
                n => {
                    return fail(format!(
                        "the file holds {n} tensors ({}); name one with --tensor",
                        names(&file)
                    ));
                }
            }
        }
    };
    let shape = view.shape();
    let [rows, columns] = shape[..] else {
        return fail(format!(
            "tensor {} has shape {shape:?}, expected [batch, classes]",
            show(&tensor_name)
        ));
    };
    let data = view.data();
    let floats = match view.dtype() {
        Dtype::BF16 => Floats::Bf16(values(data, ByteOrder::Little)),
        Dtype::F16 => Floats::F16(values(data, ByteOrder::Little)),
        Dtype::F32 => Floats::F32(values(data, ByteOrder::Little)),
        other => {
            return fail(format!(
                "tensor {} has dtype {other}, expected BF16, F16 or F32",
                show(&tensor_name)
            ));
        }
    };
    Ok((floats, [rows, columns]))
}

/// The file's tensor names, sorted and quoted, at most [`MAX_NAMES`] of them.
fn names(file: &SafeTensors<'_>) -> String {
    let mut names = file.names();
    if names.is_empty() {
        return "no tensor".into();
    }
    names.sort_unstable();
    let mut list: Vec<String> = names.iter().take(MAX_NAMES).map(|n| show(n)).collect();
    if names.len() > MAX_NAMES {
        list.push(format!("and {} more", names.len() - MAX_NAMES));
    }
    list.join(", ")
}

/// A tensor name as a quoted string literal, its quotes and control characters escaped, cut
/// after [`MAX_NAME_CHARS`] characters.
fn show(name: &str) -> String {
    let cut: String = name.chars().take(MAX_NAME_CHARS).collect();
    if cut.len() < name.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// The one-line reason for the crate's error; `data_len` is the bytes after the header.
fn reason(e: &SafeTensorError, data_len: u64) -> String {
    match e {
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "truncated .safetensors file or a header that lies about its size: the tensors it \
             describes do not cover the {data_len} bytes of data exactly"
        ),
        SafeTensorError::ValidationOverflow => {
            "a tensor's shape is too large: its size in bytes overflows".into()
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's data offsets do not match its dtype and shape".into()
        }
        other => format!(
            "not a valid .safetensors file: {}",
            quote(&other.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    //! Files built by hand byte by byte, well-formed and not: each malformed one is a one-line
    //! `Error::Safetensors` naming the problem, never a panic.

    use super::*;
    use crate::Error;
    use half::{bf16, f16};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    const NAME: &str = "bad.safetensors";

    /// A file: the header's length, the header, then `data`.
    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    fn entry(name: &str, dtype: &str, shape: &str, start: usize, end: usize) -> String {
        format!(r#""{name}":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[{start},{end}]}}"#)
    }

    /// A file of one tensor named "x".
    fn one(dtype: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        file(
            &format!("{{{}}}", entry("x", dtype, shape, 0, data.len())),
            data,
        )
    }

    fn parse<'a>(bytes: &'a [u8], tensor: Option<&str>) -> Result<(Floats<'a>, [usize; 2])> {
        parse_input(Path::new(NAME), bytes, tensor)
    }

    /// The reason of the `Error::Safetensors` that parsing `bytes` must be: it names the file,
    /// is one line, and contains every one of `words`.
    fn refused(bytes: &[u8], tensor: Option<&str>, words: &[&str]) -> String {
        match parse(bytes, tensor) {
            Err(Error::Safetensors { path, reason }) => {
                assert_eq!(path, NAME);
                assert!(!reason.is_empty(), "{reason:?}");
                assert!(!reason.chars().any(char::is_control), "{reason:?}");
                for word in words {
                    assert!(reason.contains(word), "{word:?} not in {reason:?}");
                }
                reason
            }
            other => panic!("expected Error::Safetensors, got {other:?}"),
        }
    }

    fn le_bf16(values: &[f32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect()
    }

    #[test]
    fn each_dtype_is_read_in_its_own_type() {
        let values = [0.5_f32, -1.25, 3.0, 7.5, -0.125, 2.0];
        let bf: Vec<bf16> = values.iter().map(|&v| bf16::from_f32(v)).collect();
        assert_eq!(
            parse(&one("BF16", "[2,3]", &le_bf16(&values)), None).unwrap(),
            (Floats::Bf16(bf.into()), [2, 3])
        );
        let h: Vec<f16> = values.iter().map(|&v| f16::from_f32(v)).collect();
        let bytes: Vec<u8> = h.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            parse(&one("F16", "[3,2]", &bytes), None).unwrap(),
            (Floats::F16(h.into()), [3, 2])
        );
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            parse(&one("F32", "[1,6]", &bytes), None).unwrap(),
            (Floats::F32(values.to_vec().into()), [1, 6])
        );
        assert_eq!(
            parse(&one("BF16", "[4,0]", &[]), None).unwrap(),
            (Floats::Bf16(vec![].into()), [4, 0])
        );
    }

    #[test]
    fn a_tensor_is_chosen_by_name_or_as_the_only_one() {
        let a = le_bf16(&[1.0, 2.0]);
        let b = le_bf16(&[3.0, 4.0, 5.0, 6.0]);
        let header = format!(
            r#"{{"__metadata__":{{"format":"pt"}},{},{}}}"#,
            entry("a", "BF16", "[1,2]", 0, 4),
            entry("b", "BF16", "[2,2]", 4, 12)
        );
        let two = file(&header, &[a, b].concat());
        let (floats, shape) = parse(&two, Some("b")).unwrap();
        assert_eq!(shape, [2, 2]);
        assert_eq!(floats.to_f32(), [3.0, 4.0, 5.0, 6.0]);
        assert_eq!(parse(&two, Some("a")).unwrap().1, [1, 2]);
        refused(
            &two,
            None,
            &["holds 2 tensors (\"a\", \"b\")", "name one with --tensor"],
        );
        refused(
            &two,
            Some("c"),
            &["no tensor named \"c\"", "holds \"a\", \"b\""],
        );
        let (_, shape) = parse(&one("F32", "[2,1]", &[0; 8]), Some("x")).unwrap();
        assert_eq!(shape, [2, 1]);
        refused(&file("{}", &[]), None, &["holds no tensor"]);
        refused(
            &file("{}", &[]),
            Some("x"),
            &["no tensor named \"x\"", "holds no tensor"],
        );
        let many: Vec<String> = (0..10)
            .map(|i| entry(&format!("t{i}"), "F32", "[1,1]", 4 * i, 4 * i + 4))
            .collect();
        let many = file(&format!("{{{}}}", many.join(",")), &[0; 40]);
        refused(&many, None, &["holds 10 tensors", "\"t7\", and 2 more"]);
    }

    #[test]
    fn truncated_files_and_lying_lengths() {
        let whole = one("BF16", "[2,2]", &le_bf16(&[1.0, -2.0, 3.5, 4.25]));
        let header_len = whole.len() - 8 - 8;
        assert!(parse(&whole, None).is_ok());
        for cut in [0, 1, 7] {
            refused(
                &whole[..cut],
                None,
                &[&format!("truncated .safetensors file: it has {cut} bytes")],
            );
        }
        for cut in [8, 9, 20, 7 + header_len] {
            refused(
                &whole[..cut],
                None,
                &[
                    "truncated",
                    &format!("header length field says {header_len} bytes"),
                    &format!("only {} bytes follow", cut - 8),
                ],
            );
        }
        for cut in [8 + header_len, 9 + header_len, whole.len() - 1] {
            refused(
                &whole[..cut],
                None,
                &[
                    "truncated",
                    &format!("do not cover the {} bytes of data", cut - 8 - header_len),
                ],
            );
        }
        // Bytes past the last tensor.
        refused(
            &[whole.as_slice(), &[0, 0]].concat(),
            None,
            &["do not cover the 10 bytes of data exactly"],
        );
        // Length fields far past the file, up to u64::MAX.
        for len in [u64::from(u32::MAX), 1 << 40, u64::MAX] {
            let mut lying = whole.clone();
            lying[..8].copy_from_slice(&len.to_le_bytes());
            refused(&lying, None, &[&format!("says {len} bytes")]);
        }
        // Shorter than the header: it ends within the JSON.
        let mut short = whole.clone();
        short[..8].copy_from_slice(&10_u64.to_le_bytes());
        refused(&short, None, &["not a valid .safetensors file", "JSON"]);
    }

    #[test]
    fn shapes_that_do_not_match_the_data_or_overflow() {
        let data = le_bf16(&[1.0, 2.0, 3.0, 4.0]);
        // The shape claims more (or fewer) values than the offsets hold.
        for shape in [
            "[2,3]",
            "[1,2]",
            "[100000,25000]",
            "[0,4294967296,4294967296,4294967296]",
        ] {
            refused(
                &file(&format!("{{{}}}", entry("x", "BF16", shape, 0, 8)), &data),
                None,
                &["data offsets do not match its dtype and shape"],
            );
        }
        // Offsets that claim 10 GB in a file of 8 bytes of data.
        refused(
            &file(
                &format!(
                    "{{{}}}",
                    entry("x", "BF16", "[100000,50000]", 0, 10_000_000_000)
                ),
                &data,
            ),
            None,
            &["do not cover the 8 bytes of data"],
        );
        for shape in [
            "[4294967296,4294967296]",
            "[18446744073709551615,2]",
            "[2,4294967296,4294967296,0]",
        ] {
            refused(
                &file(&format!("{{{}}}", entry("x", "F32", shape, 0, 8)), &data),
                None,
                &["shape is too large", "overflows"],
            );
        }
        refused(
            &file(
                &format!(
                    "{{{}}}",
                    entry("x", "F32", "[18446744073709551616,1]", 0, 8)
                ),
                &data,
            ),
            None,
            &["not a valid .safetensors file"],
        );
        // Offsets out of order, or ending before they start.
        refused(
            &file(&format!("{{{}}}", entry("x", "BF16", "[2,2]", 8, 0)), &data),
            None,
            &["invalid offset"],
        );
    }

    #[test]
    fn other_ranks_and_dtypes_are_named() {
        let data = le_bf16(&[1.0, 2.0, 3.0, 4.0]);
        for (shape, shown) in [
            ("[]", "[]"),
            ("[4]", "[4]"),
            ("[2,1,2]", "[2, 1, 2]"),
            ("[1,2,1,2]", "[1, 2, 1, 2]"),
        ] {
            let bytes = if shape == "[]" {
                one("F32", shape, &[0; 4])
            } else {
                one("BF16", shape, &data)
            };
            refused(
                &bytes,
                None,
                &[&format!(
                    "tensor \"x\" has shape {shown}, expected [batch, classes]"
                )],
            );
        }
        for (dtype, size) in [
            ("F64", 8),
            ("I64", 8),
            ("I32", 4),
            ("U8", 1),
            ("BOOL", 1),
            ("F8_E4M3", 1),
            ("I16", 2),
        ] {
            refused(
                &one(dtype, "[2,2]", &vec![0; 4 * size]),
                None,
                &[&format!(
                    "tensor \"x\" has dtype {dtype}, expected BF16, F16 or F32"
                )],
            );
        }
        refused(
            &one("Q4", "[2,2]", &data),
            None,
            &["not a valid .safetensors file", "unknown variant `Q4`"],
        );
    }

    #[test]
    fn bad_headers_are_one_clean_line() {
        let data = le_bf16(&[1.0, 2.0]);
        for header in [
            "not json",
            "[1, 2]",
            "{\"x\": {\"dtype\": \"BF16\"}}",
            "{\"x\":{\"dtype\":\"BF\\n\\u001b[31m16\",\"shape\":[1,2],\"data_offsets\":[0,4]}}",
            &format!("{{\"x\":{}}}", "[".repeat(1000)),
        ] {
            refused(
                &file(header, &data),
                None,
                &["not a valid .safetensors file"],
            );
        }
        let mut not_utf8 = one("BF16", "[1,2]", &data);
        not_utf8[10] = 0xff;
        refused(&not_utf8, None, &["not a valid .safetensors file", "UTF-8"]);
        let odd_name = format!("{{{}}}", entry("a\\nb\\u0007", "BF16", "[1,2]", 0, 4));
        refused(
            &file(&odd_name, &data),
            Some("c"),
            &["holds \"a\\nb\\u{7}\""],
        );
        refused(
            &file(&odd_name, &data),
            Some("c\u{1b}"),
            &["named \"c\\u{1b}\""],
        );
        let long = "n".repeat(1000);
        let reason = refused(&one("BF16", "[1,2]", &data), Some(&long), &["\"…;"]);
        assert!(reason.len() < 300, "{reason}");
    }

    /// Random bytes, and a good file with a few random bytes changed: `Ok` with as many values
    /// as the shape says, or a one-line `Error::Safetensors`.
    #[test]
    fn random_bytes_and_mutations_never_panic() {
        let seed = rand::rng().random();
        eprintln!("seed {seed}");
        let mut rng = StdRng::seed_from_u64(seed);
        let good = one("BF16", "[3,5]", &le_bf16(&[1.5; 15]));
        let check = |bytes: &[u8]| match parse(bytes, None) {
            Ok((floats, [b, c])) => assert_eq!(floats.to_f32().len(), b * c),
            Err(Error::Safetensors { reason, .. }) => {
                assert!(!reason.chars().any(char::is_control), "{reason:?}");
            }
            Err(other) => panic!("{other:?}"),
        };
        for len in [0, 1, 7, 8, 9, 16, 64, 200] {
            for _ in 0..200 {
                let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                check(&noise);
                let mut mutated = good.clone();
                for _ in 0..=len % 5 {
                    let at = rng.random_range(0..mutated.len());
                    mutated[at] = rng.random();
                }
                check(&mutated);
            }
        }
    }
}
