//! `.npy` input for the CLI, through the `npyz` crate.
//!
//! Whole files are read into memory first ([`read_input`] and the others), or given as bytes
//! ([`parse_input`] and the others, which the readers call and which are fuzzed). Before npyz
//! parses a header, the magic string, the version and the header's length are checked against
//! the bytes that are really there; headers longer than 4096 bytes or with brackets nested more
//! than 4 deep are refused (npyz's parser takes time exponential in the nesting), as is a shape
//! whose dimensions multiply past 2^64. The data's claimed size is checked against the bytes
//! present before anything is allocated from it. Malformed bytes of any kind are a one-line
//! [`Error::Npy`], never a panic. Big-endian data is read, as native values. Float64 values are
//! converted to float32, which is what xent computes in; float16 input is kept as it is.

use std::path::Path;

use half::{bf16, f16};
use npyz::{DType, NpyFile, NpyHeader, Order, TypeChar};

use crate::error::{Error, Result};
use crate::request::{Input, Target};

/// Float values as the input of a loss.
#[derive(Clone, Debug, PartialEq)]
pub enum Floats {
    /// float32, or float64 converted to float32.
    F32(Vec<f32>),
    /// float16.
    F16(Vec<f16>),
    /// bfloat16, which `.npy` has no dtype for: from a `.safetensors` file
    /// ([`crate::tensors`]).
    Bf16(Vec<bf16>),
}

impl Floats {
    /// The values as a loss input.
    pub fn as_input(&self) -> Input<'_> {
        match self {
            Floats::F32(v) => Input::F32(v),
            Floats::F16(v) => Input::F16(v),
            Floats::Bf16(v) => Input::Bf16(v),
        }
    }

    /// The values converted to float32 (exactly: every float16 and bfloat16 is a float32).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Floats::F32(v) => v.clone(),
            Floats::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Floats::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// The dtype's name.
    pub fn dtype(&self) -> &'static str {
        match self {
            Floats::F32(_) => "float32",
            Floats::F16(_) => "float16",
            Floats::Bf16(_) => "bfloat16",
        }
    }
}

/// A target file: class indices, or float values of any shape.
#[derive(Clone, Debug, PartialEq)]
pub enum TargetData {
    /// int32 class indices, 1-D.
    ClassesI32(Vec<i32>),
    /// int64 class indices, 1-D.
    ClassesI64(Vec<i64>),
    /// Float values (float16 and float64 converted to float32), with their shape.
    Dense(Vec<f32>, Vec<usize>),
}

impl TargetData {
    /// The values as a loss target.
    pub fn as_target(&self) -> Target<'_> {
        match self {
            TargetData::ClassesI32(t) => Target::ClassesI32(t),
            TargetData::ClassesI64(t) => Target::ClassesI64(t),
            TargetData::Dense(t, _) => Target::Dense(t),
        }
    }
}

fn npy_error(path: &Path, reason: impl Into<String>) -> Error {
    Error::Npy {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The magic string every `.npy` file begins with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header read. A plain array's header is about 120 bytes, and one of 64 dimensions
/// of 20 digits each under 1500; numpy itself refuses headers over 10 000 bytes by default.
const MAX_HEADER_LEN: usize = 4096;

/// The deepest nesting of brackets read in a header. A plain array's header needs 2 (the dict and
/// the shape's tuple), a structured one 3, or 4 with sub-arrays (refused later, by name). npyz's
/// parser of Python literals takes time exponential in the nesting: the slowest 4 KiB header
/// found takes 0.09 s to refuse at depth 3, 0.4 s at 4, 0.8 s at 5 and 1.7 s at 6.
const MAX_NESTING: usize = 4;

/// The longest message of npyz's that is quoted in an error.
const MAX_QUOTED: usize = 200;

/// Checks what npyz would trust before it parses a header: the magic string and version, a header
/// length that the file really holds (npyz allocates it first), a header short and shallow enough
/// to parse quickly, and a shape whose size cannot overflow (npyz multiplies the dimensions out,
/// which panics on overflow where overflow checks are on).
fn check_header(path: &Path, bytes: &[u8]) -> Result<()> {
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

/// One line of at most [`MAX_QUOTED`] characters, control characters escaped: npyz's parse errors
/// span lines and quote the header, which may hold anything (as may a `.safetensors` header).
pub(crate) fn quote(message: &str) -> String {
    let line = message
        .lines()
        .filter(|l| !l.chars().all(|c| " |^-=".contains(c)))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = String::new();
    for (n, c) in line.chars().enumerate() {
        if n == MAX_QUOTED {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A file's header facts and its data bytes, checked to hold what the header claims.
struct Npy<'a> {
    file: NpyFile<&'a [u8]>,
    kind: TypeChar,
    item: usize,
    shape: Vec<usize>,
}

fn open<'a>(path: &Path, bytes: &'a [u8]) -> Result<Npy<'a>> {
    check_header(path, bytes)?;
    let mut data = bytes;
    let header = NpyHeader::from_reader(&mut data).map_err(|e| {
        npy_error(
            path,
            format!("not a valid .npy header: {}", quote(&e.to_string())),
        )
    })?;
    let file = NpyFile::with_header(header, data);
    if file.order() == Order::Fortran {
        return Err(npy_error(
            path,
            "Fortran-order arrays are not supported; save in C order",
        ));
    }
    let DType::Plain(ty) = file.dtype() else {
        return Err(npy_error(
            path,
            "structured dtypes are not supported; save a plain float or integer array",
        ));
    };
    // 0 for the dtypes without a fixed size (objects), which no reader below accepts.
    let item = ty.num_bytes().unwrap_or(0);
    let need = file
        .shape()
        .iter()
        .try_fold(item as u64, |acc, &d| acc.checked_mul(d));
    let shape: Option<Vec<usize>> = file
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect();
    match (need, shape) {
        (Some(need), Some(shape)) if need <= data.len() as u64 => Ok(Npy {
            shape,
            kind: ty.type_char(),
            item,
            file,
        }),
        (need, _) => Err(npy_error(
            path,
            format!(
                "truncated .npy file or a header that lies about its size: the header claims \
                 shape {:?} of {ty}, {}, but the file has only {} bytes of data",
                file.shape(),
                need.map_or("more than 2^64 bytes".into(), |n| format!("{n} bytes")),
                data.len()
            ),
        )),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| npy_error(path, e.to_string()))
}

impl Npy<'_> {
    fn descr(&self) -> String {
        self.file.dtype().descr()
    }

    /// Float values as float32, or None when the dtype is not a float.
    fn floats(self, path: &Path) -> Result<Option<Floats>> {
        let bad = |e: std::io::Error| npy_error(path, e.to_string());
        Ok(match (self.kind, self.item) {
            (TypeChar::Float, 2) => Some(Floats::F16(self.file.into_vec().map_err(bad)?)),
            (TypeChar::Float, 4) => Some(Floats::F32(self.file.into_vec().map_err(bad)?)),
            (TypeChar::Float, 8) => Some(Floats::F32(
                self.file
                    .into_vec::<f64>()
                    .map_err(bad)?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
            )),
            _ => None,
        })
    }
}

fn to_f32(floats: Floats) -> Vec<f32> {
    match floats {
        Floats::F32(v) => v,
        other => other.to_f32(),
    }
}

/// Reads a 2-D float16, float32 or float64 input, with its shape.
pub fn read_input(path: &Path) -> Result<(Floats, [usize; 2])> {
    parse_input(path, &read(path)?)
}

/// Parses the bytes of a 2-D float16, float32 or float64 `.npy` input, with its shape, as
/// [`read_input`] does; `name` names the file in errors.
///
/// Any bytes give `Ok` or an [`Error::Npy`], never a panic, and nothing is allocated from what
/// the header claims until the bytes are checked to be there.
pub fn parse_input(name: &Path, bytes: &[u8]) -> Result<(Floats, [usize; 2])> {
    let npy = open(name, bytes)?;
    let [rows, columns] = npy.shape[..] else {
        return Err(npy_error(
            name,
            format!("shape is {:?}, expected [batch, classes]", npy.shape),
        ));
    };
    let descr = npy.descr();
    match npy.floats(name)? {
        Some(floats) => Ok((floats, [rows, columns])),
        None => Err(npy_error(
            name,
            format!("dtype is {descr}, expected float16, float32 or float64"),
        )),
    }
}

/// Reads a target: 1-D int32 or int64 class indices, or float values of any shape.
pub fn read_target(path: &Path) -> Result<TargetData> {
    parse_target(path, &read(path)?)
}

/// Parses the bytes of a `.npy` target, as [`read_target`] does: 1-D int32 or int64 class
/// indices, or float values of any shape; `name` names the file in errors. Malformed bytes are
/// an [`Error::Npy`], as in [`parse_input`].
pub fn parse_target(name: &Path, bytes: &[u8]) -> Result<TargetData> {
    let npy = open(name, bytes)?;
    let shape = npy.shape.clone();
    let descr = npy.descr();
    let bad = |e: std::io::Error| npy_error(name, e.to_string());
    match (npy.kind, npy.item) {
        (TypeChar::Int, 4 | 8) if shape.len() != 1 => Err(npy_error(
            name,
            format!("class indices have shape {shape:?}, expected [batch]"),
        )),
        (TypeChar::Int, 4) => Ok(TargetData::ClassesI32(npy.file.into_vec().map_err(bad)?)),
        (TypeChar::Int, 8) => Ok(TargetData::ClassesI64(npy.file.into_vec().map_err(bad)?)),
        _ => match npy.floats(name)? {
            Some(floats) => Ok(TargetData::Dense(to_f32(floats), shape)),
            None => Err(npy_error(
                name,
                format!("dtype is {descr}, expected int32/int64 class indices or float values"),
            )),
        },
    }
}

/// Reads a 1-D float vector (class weights), as float32.
pub fn read_vector(path: &Path) -> Result<Vec<f32>> {
    parse_vector(path, &read(path)?)
}

/// Parses the bytes of a 1-D float `.npy` vector (class weights), as float32, as [`read_vector`]
/// does; `name` names the file in errors. Malformed bytes are an [`Error::Npy`], as in
/// [`parse_input`].
pub fn parse_vector(name: &Path, bytes: &[u8]) -> Result<Vec<f32>> {
    let npy = open(name, bytes)?;
    if npy.shape.len() != 1 {
        return Err(npy_error(
            name,
            format!("shape is {:?}, expected [classes]", npy.shape),
        ));
    }
    let descr = npy.descr();
    match npy.floats(name)? {
        Some(floats) => Ok(to_f32(floats)),
        None => Err(npy_error(
            name,
            format!("dtype is {descr}, expected float values"),
        )),
    }
}

/// Writes a row-major array of the given shape, in `T`'s own dtype (float32 for the gradients
/// the CLI writes).
pub fn write<T: npyz::AutoSerialize + Copy>(
    path: &Path,
    data: &[T],
    shape: &[usize],
) -> Result<()> {
    use npyz::WriterBuilder;
    let fail = |e: std::io::Error| npy_error(path, e.to_string());
    let file = std::fs::File::create(path).map_err(fail)?;
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(fail)?;
    writer.extend(data.iter().copied()).map_err(fail)?;
    writer.finish().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder;

    fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("xent-npy-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn npy_bytes<T: npyz::AutoSerialize + Copy>(shape: &[u64], data: &[T]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        w.extend(data.iter().copied()).unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn reads_inputs_of_every_float_dtype_and_targets() {
        let m = write(
            "m.npy",
            &npy_bytes(&[2, 3], &[0.5_f32, -1.0, 2.0, 3.0, 4.0, 5.5]),
        );
        assert_eq!(
            read_input(&m).unwrap(),
            (Floats::F32(vec![0.5, -1.0, 2.0, 3.0, 4.0, 5.5]), [2, 3])
        );
        let d = write("d.npy", &npy_bytes(&[1, 2], &[0.25_f64, -3.0]));
        assert_eq!(
            read_input(&d).unwrap(),
            (Floats::F32(vec![0.25, -3.0]), [1, 2])
        );
        let h = [f16::from_f32(1.5), f16::from_f32(-2.0)];
        let h = write("h.npy", &npy_bytes(&[2, 1], &h));
        assert!(
            matches!(read_input(&h).unwrap(), (Floats::F16(v), [2, 1]) if v[0].to_f32() == 1.5)
        );
        let t = write("t.npy", &npy_bytes(&[2], &[1_i32, 2]));
        assert_eq!(read_target(&t).unwrap(), TargetData::ClassesI32(vec![1, 2]));
        let soft = write("s.npy", &npy_bytes(&[1, 2], &[0.25_f64, 0.75]));
        assert_eq!(
            read_target(&soft).unwrap(),
            TargetData::Dense(vec![0.25, 0.75], vec![1, 2])
        );
        let w = write("w.npy", &npy_bytes(&[2], &[0.5_f32, 2.0]));
        assert_eq!(read_vector(&w).unwrap(), vec![0.5, 2.0]);
    }

    #[test]
    fn written_arrays_read_back() {
        let path =
            std::env::temp_dir().join(format!("xent-npy-{}-written.npy", std::process::id()));
        super::write(&path, &[1.5_f32, -2.0, 0.25, 8.0, 3.0, -1.0], &[2, 3]).unwrap();
        assert_eq!(
            read_input(&path).unwrap(),
            (Floats::F32(vec![1.5, -2.0, 0.25, 8.0, 3.0, -1.0]), [2, 3])
        );
        let err =
            super::write(Path::new("/nonexistent/dir/g.npy"), &[1.0_f32], &[1, 1]).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/dir/g.npy: "),
            "{err}"
        );
    }

    #[test]
    fn rejects_wrong_dtype_rank_and_lying_headers() {
        let ints = write("i.npy", &npy_bytes(&[2, 2], &[1_i64, 2, 3, 4]));
        let err = read_input(&ints).unwrap_err().to_string();
        assert!(
            err.contains("expected float16, float32 or float64"),
            "{err}"
        );
        let flat = write("f.npy", &npy_bytes(&[4], &[1.0_f32, 2.0, 3.0, 4.0]));
        assert!(
            read_input(&flat)
                .unwrap_err()
                .to_string()
                .contains("expected [batch, classes]")
        );
        let classes_2d = write("c.npy", &npy_bytes(&[2, 2], &[1_i64, 2, 3, 4]));
        assert!(
            read_target(&classes_2d)
                .unwrap_err()
                .to_string()
                .contains("expected [batch]")
        );
        let mut truncated = npy_bytes(&[4, 4], &[1.0_f32; 16]);
        truncated.truncate(truncated.len() - 8);
        let t = write("truncated.npy", &truncated);
        assert!(
            read_input(&t)
                .unwrap_err()
                .to_string()
                .contains("claims shape")
        );
        let junk = write("j.npy", b"not an npy file at all");
        assert!(
            read_input(&junk)
                .unwrap_err()
                .to_string()
                .contains("not a valid .npy")
        );
    }
}

#[cfg(test)]
mod malformed {
    //! Malformed files, built by hand byte by byte: each is a one-line `Error::Npy` naming the
    //! problem, never a panic or an allocation that trusts the header.

    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

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

    fn dict(descr: &str, fortran: bool, shape: &str) -> String {
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

    fn input(bytes: &[u8]) -> Result<(Floats, [usize; 2])> {
        parse_input(Path::new(NAME), bytes)
    }

    fn target(bytes: &[u8]) -> Result<TargetData> {
        parse_target(Path::new(NAME), bytes)
    }

    fn vector(bytes: &[u8]) -> Result<Vec<f32>> {
        parse_vector(Path::new(NAME), bytes)
    }

    #[test]
    fn well_formed_hand_built_files_parse() {
        let values = [0.5_f32, -1.25, 3.0, 7.5, -0.125, 2.0];
        let v1 = plain("<f4", "(2, 3)", &le_f32(&values));
        assert_eq!(input(&v1).unwrap(), (Floats::F32(values.to_vec()), [2, 3]));
        for major in [2, 3] {
            let file = npy(major, &dict("<f4", false, "(3, 2)"), &le_f32(&values));
            assert_eq!(
                input(&file).unwrap(),
                (Floats::F32(values.to_vec()), [3, 2])
            );
        }
        let empty = plain("<f4", "(3, 0)", &[]);
        assert_eq!(input(&empty).unwrap(), (Floats::F32(vec![]), [3, 0]));
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
        let (floats, shape) = input(&plain(">f4", "(2, 3)", &be)).unwrap();
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
            (Floats::F32(want.clone()), [2, 2])
        );
        assert_eq!(vector(&plain(">f8", "(4,)", &be)).unwrap(), want);
        assert_eq!(
            target(&plain(">f8", "(1, 4)", &be)).unwrap(),
            TargetData::Dense(want, vec![1, 4])
        );

        let halves = [f16::from_f32(1.5), f16::from_f32(-0.25)];
        let be: Vec<u8> = halves.iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            input(&plain(">f2", "(1, 2)", &be)).unwrap(),
            (Floats::F16(halves.to_vec()), [1, 2])
        );

        let i64s = [3_i64, -100, 1 << 40, i64::MIN];
        let be: Vec<u8> = i64s.iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            target(&plain(">i8", "(4,)", &be)).unwrap(),
            TargetData::ClassesI64(i64s.to_vec())
        );
        let i32s = [7_i32, -1, 65536];
        let be: Vec<u8> = i32s.iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            target(&plain(">i4", "(3,)", &be)).unwrap(),
            TargetData::ClassesI32(i32s.to_vec())
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
