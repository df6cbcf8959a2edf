//! Malformed files, built by hand byte by byte: each is a one-line `Error::Npy` naming the
//! problem, never a panic or an allocation that trusts the header.

use std::path::Path;

use half::f16;
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::io::npy::{parse_input, parse_target, parse_vector};
use crate::io::{Floats, TargetData};
use crate::{Error, Result};

const NAME: &str = "bad.npy";

/// A `.npy` file: magic, version, the header length (u16 for 1.0, u32 after), the header
/// padded with spaces to a multiple of 64 bytes and ending in a newline, then `data`.
fn npy(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let pre = if major == 1 { 10 } else { 12 };
    let mut text = header.to_string();
    while !(pre + text.len() + 1).is_multiple_of(64) {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([major, 0]);
    if major == 1 {
        out.extend((text.len() as u16).to_le_bytes());
    } else {
        out.extend((text.len() as u32).to_le_bytes());
    }
    out.extend(text.as_bytes());
    out.extend(data);
    out
}

/// A header's dict, as numpy writes it.
pub(super) fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let order = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}")
}

/// A version 1.0 file of a plain dtype in C order.
fn plain(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    npy(1, &dict(descr, false, shape), data)
}

fn le_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The reason of the `Error::Npy` that `result` must be: it names the file, and is one line.
fn reason<T: std::fmt::Debug>(result: Result<T>) -> String {
    match result {
        Err(Error::Npy { path, reason }) => {
            assert_eq!(path, NAME);
            assert!(!reason.contains('\n') && !reason.is_empty(), "{reason:?}");
            reason
        }
        other => panic!("expected Error::Npy, got {other:?}"),
    }
}

/// The reasons all three parsers give for `bytes`.
fn reasons(bytes: &[u8]) -> [String; 3] {
    let name = Path::new(NAME);
    [
        reason(parse_input(name, bytes)),
        reason(parse_target(name, bytes)),
        reason(parse_vector(name, bytes)),
    ]
}

/// All three parsers refuse `bytes` with a reason containing every one of `words`.
fn refused(bytes: &[u8], words: &[&str]) {
    for reason in reasons(bytes) {
        for word in words {
            assert!(reason.contains(word), "{word:?} not in {reason:?}");
        }
    }
}

fn input(bytes: &[u8]) -> Result<(Floats<'_>, [usize; 2])> {
    parse_input(Path::new(NAME), bytes)
}

fn target(bytes: &[u8]) -> Result<TargetData<'_>> {
    parse_target(Path::new(NAME), bytes)
}

fn vector(bytes: &[u8]) -> Result<Vec<f32>> {
    parse_vector(Path::new(NAME), bytes).map(|v| v.into_owned())
}

#[test]
fn well_formed_hand_built_files_parse() {
    let values = [0.5_f32, -1.25, 3.0, 7.5, -0.125, 2.0];
    let v1 = plain("<f4", "(2, 3)", &le_f32(&values));
    assert_eq!(
        input(&v1).unwrap(),
        (Floats::F32(values.to_vec().into()), [2, 3])
    );
    for major in [2, 3] {
        let file = npy(major, &dict("<f4", false, "(3, 2)"), &le_f32(&values));
        assert_eq!(
            input(&file).unwrap(),
            (Floats::F32(values.to_vec().into()), [3, 2])
        );
    }
    let empty = plain("<f4", "(3, 0)", &[]);
    assert_eq!(input(&empty).unwrap(), (Floats::F32(vec![].into()), [3, 0]));
    let list_shape = plain("<f4", "[6]", &le_f32(&values));
    assert_eq!(vector(&list_shape).unwrap(), values.to_vec());
}

#[test]
fn truncated_files_name_where_they_end() {
    let whole = plain("<f4", "(2, 2)", &le_f32(&[1.0, -2.0, 3.5, 4.25]));
    let header_len = u16::from_le_bytes([whole[8], whole[9]]) as usize;
    assert_eq!(whole.len(), 10 + header_len + 16);
    refused(&whole[..3], &["truncated", "after 3 bytes", "magic string"]);
    refused(&whole[..7], &["truncated", "after 7 bytes"]);
    refused(&whole[..9], &["truncated", "header length"]);
    for cut in [10, 11, 40, 9 + header_len] {
        refused(
            &whole[..cut],
            &[
                "truncated",
                &format!("header length field says {header_len} bytes"),
                &format!("only {} bytes follow", cut - 10),
            ],
        );
    }
    // The whole header, and part of the data.
    for cut in [10 + header_len, 11 + header_len, 10 + header_len + 15] {
        refused(
            &whole[..cut],
            &[
                "truncated",
                "claims shape [2, 2] of <f4, 16 bytes",
                &format!("only {} bytes of data", cut - 10 - header_len),
            ],
        );
    }
    assert!(input(&whole).is_ok());
}

#[test]
fn a_wrong_magic_string_is_not_a_npy_file() {
    let good = plain("<f4", "(1, 1)", &le_f32(&[1.0]));
    for bad in [
        [b"\x93NUMPZ".as_slice(), &good[6..]].concat(),
        [b"NUMPY\x93".as_slice(), &good[6..]].concat(),
        b"PK\x03\x04 an npz is a zip".to_vec(),
        b"x".to_vec(),
    ] {
        refused(&bad, &["not a valid .npy file", r"magic string \x93NUMPY"]);
    }
}

#[test]
fn unknown_versions_are_refused() {
    let mut file = plain("<f4", "(1, 1)", &le_f32(&[1.0]));
    file[6] = 4;
    refused(&file, &["unsupported .npy format version 4.0"]);
    file[6] = 1;
    file[7] = 1;
    refused(&file, &["version 1.1"]);
}

#[test]
fn fortran_order_is_refused() {
    let file = npy(
        1,
        &dict("<f4", true, "(2, 2)"),
        &le_f32(&[1.0, 2.0, 3.0, 4.0]),
    );
    refused(&file, &["Fortran-order", "C order"]);
}

#[test]
fn big_endian_data_is_read_as_native_values() {
    let f32s = [1.5_f32, -2.25, 3.0e-3, 65504.0, f32::MIN_POSITIVE, -0.0];
    let be: Vec<u8> = f32s.iter().flat_map(|v| v.to_be_bytes()).collect();
    let file = plain(">f4", "(2, 3)", &be);
    let (floats, shape) = input(&file).unwrap();
    assert_eq!(shape, [2, 3]);
    let Floats::F32(got) = floats else {
        panic!("float32")
    };
    assert_eq!(
        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        f32s.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );

    let f64s = [0.1_f64, -1e-3, 12345.678, 2.5];
    let be: Vec<u8> = f64s.iter().flat_map(|v| v.to_be_bytes()).collect();
    let want: Vec<f32> = f64s.iter().map(|&v| v as f32).collect();
    assert_eq!(
        input(&plain(">f8", "(2, 2)", &be)).unwrap(),
        (Floats::F32(want.clone().into()), [2, 2])
    );
    assert_eq!(vector(&plain(">f8", "(4,)", &be)).unwrap(), want);
    assert_eq!(
        target(&plain(">f8", "(1, 4)", &be)).unwrap(),
        TargetData::Dense(want.into(), vec![1, 4])
    );

    let halves = [f16::from_f32(1.5), f16::from_f32(-0.25)];
    let be: Vec<u8> = halves.iter().flat_map(|v| v.to_be_bytes()).collect();
    assert_eq!(
        input(&plain(">f2", "(1, 2)", &be)).unwrap(),
        (Floats::F16(halves.to_vec().into()), [1, 2])
    );

    let i64s = [3_i64, -100, 1 << 40, i64::MIN];
    let be: Vec<u8> = i64s.iter().flat_map(|v| v.to_be_bytes()).collect();
    assert_eq!(
        target(&plain(">i8", "(4,)", &be)).unwrap(),
        TargetData::ClassesI64(i64s.to_vec().into())
    );
    let i32s = [7_i32, -1, 65536];
    let be: Vec<u8> = i32s.iter().flat_map(|v| v.to_be_bytes()).collect();
    assert_eq!(
        target(&plain(">i4", "(3,)", &be)).unwrap(),
        TargetData::ClassesI32(i32s.to_vec().into())
    );
}

#[test]
fn unsupported_dtypes_are_named() {
    for (descr, size) in [
        ("<c8", 8),
        ("<c16", 16),
        ("|b1", 1),
        ("|u1", 1),
        ("<u4", 4),
        ("<i2", 2),
        ("<f16", 16),
        ("<U5", 20),
        ("|S3", 3),
        ("|V4", 4),
        ("<M8[ns]", 8),
    ] {
        let file = plain(descr, "(2, 2)", &vec![1; 4 * size]);
        let [i, t, v] = reasons(&file);
        assert_eq!(
            i,
            format!("dtype is '{descr}', expected float16, float32 or float64")
        );
        assert!(t.contains(&format!("dtype is '{descr}'")), "{t}");
        assert!(t.contains("expected int32/int64 class indices or float values"));
        assert!(v.contains("shape is [2, 2], expected [classes]"), "{v}");
        let file = plain(descr, "(4,)", &vec![1; 4 * size]);
        assert_eq!(
            reason(vector(&file)),
            format!("dtype is '{descr}', expected float values")
        );
    }
    let structured = npy(
        1,
        "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (2,), }",
        &[0; 16],
    );
    refused(&structured, &["structured dtypes are not supported"]);
    let sub_array = npy(
        1,
        "{'descr': [('a', '<f4', (2,))], 'fortran_order': False, 'shape': (2,), }",
        &[0; 16],
    );
    refused(&sub_array, &["structured dtypes are not supported"]);
    let object = plain("|O", "(2, 2)", &[0; 16]);
    assert!(reason(input(&object)).starts_with("dtype is '|O'"));
    assert!(reason(target(&object)).starts_with("dtype is '|O'"));
}

#[test]
fn headers_that_lie_about_their_size() {
    let data = le_f32(&[1.0, 2.0, 3.0, 4.0]);
    // The header length field says more than the whole file.
    let mut v1 = plain("<f4", "(2, 2)", &data);
    v1[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    refused(
        &v1,
        &[
            "header length field says 65535 bytes",
            &format!("only {} bytes follow", v1.len() - 10),
        ],
    );
    let mut v2 = npy(2, &dict("<f4", false, "(2, 2)"), &data);
    v2[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    refused(
        &v2,
        &[
            "header length field says 4294967295 bytes",
            "lies about its size",
        ],
    );
    // Shorter than it is: the header ends within the dict.
    let mut short = plain("<f4", "(2, 2)", &data);
    short[8..10].copy_from_slice(&20_u16.to_le_bytes());
    refused(&short, &["not a valid .npy header", "could not parse"]);
    // The data is shorter than the shape.
    refused(
        &plain("<f4", "(2, 3)", &data),
        &[
            "claims shape [2, 3] of <f4, 24 bytes",
            "only 16 bytes of data",
        ],
    );
    refused(
        &plain("<f8", "(2, 2)", &data),
        &[
            "claims shape [2, 2] of <f8, 32 bytes",
            "only 16 bytes of data",
        ],
    );
}

#[test]
fn huge_claimed_shapes_are_refused_before_any_allocation() {
    let tiny = le_f32(&[1.0, 2.0]);
    // 10 GB of float32 in a file of a hundred bytes.
    refused(
        &plain("<f4", "(100000, 25000)", &tiny),
        &[
            "claims shape [100000, 25000] of <f4, 10000000000 bytes",
            "only 8 bytes of data",
        ],
    );
    // Bytes past 2^64: the elements fit in u64, the bytes do not.
    refused(
        &plain("<f8", "(4294967296, 1073741824)", &tiny),
        &["more than 2^64 bytes", "only 8 bytes of data"],
    );
    // Dimensions whose product overflows u64, however they are written (npyz multiplies them
    // out, which would panic with overflow checks on).
    for shape in [
        "(4294967296, 4294967296)",
        "(18446744073709551615, 2)",
        "(0, 4294967296, 4294967296)",
        "(4294967296, 0, 4294967296)",
        "(0x100000000, 0o40000000000)",
        "(4_294_967_296, 4294967296)",
        "(4294967295+1, 4294967296)",
        "(-1+4294967297, 4294967296, 0)",
        "(1000000000000000000000000000000,)",
        "(65536, 65536, 65536, 65536)",
    ] {
        refused(
            &plain("<f4", shape, &tiny),
            &["shape is too large", "more than 2^64"],
        );
    }
    // Dimensions past u64 in a header with other numbers: npyz's own error.
    refused(
        &plain("<f4", "(-3, 2)", &tiny),
        &["not a valid .npy header", "negative"],
    );
}

#[test]
fn arrays_of_the_wrong_rank() {
    let scalar = plain("<f4", "()", &le_f32(&[2.5]));
    assert_eq!(
        reason(input(&scalar)),
        "shape is [], expected [batch, classes]"
    );
    assert_eq!(reason(vector(&scalar)), "shape is [], expected [classes]");
    let cube = plain("<f4", "(2, 1, 2)", &le_f32(&[1.0, 2.0, 3.0, 4.0]));
    assert_eq!(
        reason(input(&cube)),
        "shape is [2, 1, 2], expected [batch, classes]"
    );
    assert_eq!(
        reason(vector(&cube)),
        "shape is [2, 1, 2], expected [classes]"
    );
    let classes = plain("<i8", "(2, 1)", &[1; 16]);
    assert_eq!(
        reason(target(&classes)),
        "class indices have shape [2, 1], expected [batch]"
    );
    let scalar_class = plain("<i8", "()", &[1; 8]);
    assert_eq!(
        reason(target(&scalar_class)),
        "class indices have shape [], expected [batch]"
    );
}

#[test]
fn empty_and_random_files() {
    refused(&[], &["the file is empty"]);
    let mut rng = StdRng::seed_from_u64(0x006e_7079);
    for len in [1, 5, 9, 10, 12, 64, 100, 1000, 5000] {
        for _ in 0..50 {
            let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            reasons(&noise);
            // Noise after a valid magic string and version, and after a whole preamble.
            let v1 = [b"\x93NUMPY\x01\x00".as_slice(), &noise].concat();
            reasons(&v1);
            let header = [&npy(1, "", &[])[..10], &noise].concat();
            reasons(&header);
        }
    }
}

#[test]
fn headers_too_long_or_too_deep_are_refused() {
    let long = npy(
        1,
        &dict("<f4", false, &format!("(1,{} 1)", " ".repeat(5000))),
        &[0; 4],
    );
    refused(&long, &["header is 5110 bytes long", "at most 4096"]);
    let deep = npy(
        1,
        &format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': {}1{}, }}",
            "[".repeat(40),
            "]".repeat(40)
        ),
        &[0; 4],
    );
    let start = std::time::Instant::now();
    refused(&deep, &["nested more than 4 deep"]);
    assert!(start.elapsed().as_secs_f64() < 1.0);
}

#[test]
fn parse_errors_are_one_clean_line() {
    let garbage = npy(
        1,
        "{'descr': '<f4', 'fortran_order': False,\n\x1b[31m 'shape': (2, 2) oops }",
        &[0; 16],
    );
    for reason in reasons(&garbage) {
        assert!(reason.starts_with("not a valid .npy header: "), "{reason}");
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
    }
    let missing = npy(1, "{'descr': '<f4', 'shape': (2, 2), }", &[0; 16]);
    refused(&missing, &["not a valid .npy header", "fortran_order"]);
    let not_utf8 = npy(1, "{'descr': '<f4\u{ff}'}", &[0; 16]);
    let mut not_utf8 = not_utf8;
    let at = not_utf8.iter().position(|&b| b == 0xc3).unwrap();
    not_utf8[at] = 0xff;
    refused(&not_utf8, &["not a valid .npy header"]);
}
