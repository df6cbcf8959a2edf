//! What the file-parser targets share: the tests' counting allocator (`tests/common/counting.rs`);
//! the fuzz input copied at each alignment; the check that a parse returned `Ok` or a one-line
//! error naming the file, within its allocation bound; and the check that the parses at every
//! alignment agree, and borrow their values wherever the alignment allows it.

#[path = "../../tests/common/counting.rs"]
mod counting;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::parsed::Parsed;

/// The shifts from an 8-byte boundary at which every input is parsed: all of them, so that each
/// value size (2, 4 and 8 bytes) is aligned at some shifts and not at the others, wherever its
/// data begins in the file.
pub const SHIFTS: usize = 8;

/// The fuzz input's bytes `shift` bytes after the start of a buffer aligned to 8.
pub struct Shifted {
    words: Vec<u64>,
    shift: usize,
    len: usize,
}

impl Shifted {
    pub fn new(data: &[u8], shift: usize) -> Shifted {
        let mut words = vec![0_u64; (shift + data.len()).div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[shift..shift + data.len()]
            .copy_from_slice(data);
        Shifted {
            words,
            shift,
            len: data.len(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[self.shift..self.shift + self.len]
    }
}

/// The most a parse may allocate for `len` bytes of which `in_place` are values it borrows: four
/// times the rest (values widened from 16 to 32 bits are twice their bytes, and a float16 target
/// out of place is copied as float16 before it is widened) and the header's parse (1 MiB).
/// Values used in place count for nothing.
fn allowed(len: usize, in_place: usize) -> isize {
    (4 * (len - in_place) + (1 << 20)) as isize
}

/// Runs `parse` on `bytes`, and checks what it allocated and its error: `Ok`, or the one-line
/// error that `reason` finds (the file's name and the reason, for the error kind this parser
/// gives). `in_place` says, of an `Ok` result, the size of a value and the bytes of values that
/// it borrows from `bytes`, if it does: those must not be allocated. Returns the result and that.
pub fn check<T>(
    what: &str,
    bytes: &[u8],
    parse: impl FnOnce() -> xent::Result<T>,
    reason: impl Fn(&xent::Error) -> Option<(&str, &str)>,
    in_place: impl FnOnce(&T) -> Option<(usize, usize)>,
) -> (xent::Result<T>, Option<(usize, usize)>) {
    let (result, peak) = counting::peak_during(parse);
    let peak = peak as isize;
    let borrowed = result.as_ref().ok().and_then(in_place);
    if std::env::var_os("XENT_FUZZ_PEAK").is_some() {
        let borrowed_bytes = borrowed.map_or(0, |(_, n)| n);
        eprintln!("peak {what} {} {peak} {borrowed_bytes}", bytes.len());
    }
    assert!(
        peak <= allowed(bytes.len(), borrowed.map_or(0, |(_, n)| n)),
        "{what}: {peak} bytes allocated for {} bytes ({borrowed:?} in place)",
        bytes.len()
    );
    if let Err(e) = &result {
        let Some((path, reason)) = reason(e) else {
            panic!("{what}: not the parser's error kind: {e:?}");
        };
        assert_eq!(path, "fuzz.bin");
        assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
    }
    (result, borrowed)
}

/// One parser's results at every shift of one input.
pub struct Across {
    what: &'static str,
    first: Option<Parsed>,
    /// At each shift, the size of a value where the values were borrowed.
    in_place: [Option<usize>; SHIFTS],
}

impl Across {
    pub fn new(what: &'static str) -> Across {
        Across {
            what,
            first: None,
            in_place: [None; SHIFTS],
        }
    }

    #[allow(dead_code, reason = "not every target names its parsers from here")]
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The parse at `shift`: it must give the same as at every other shift, bit for bit.
    pub fn add(&mut self, shift: usize, parsed: Parsed, in_place: Option<(usize, usize)>) {
        match &self.first {
            None => self.first = Some(parsed),
            Some(first) => assert_eq!(
                first, &parsed,
                "{}: shift {shift} parses otherwise than shift 0",
                self.what
            ),
        }
        self.in_place[shift] = in_place.map(|(size, _)| size);
    }

    /// Checks that the values were borrowed at the shifts where they could be, or at none: at
    /// every shift that puts them on a multiple of their size (whose alignment is their size),
    /// and at no other. Returns the outcome, to be counted.
    fn finish(&self) -> Outcome {
        let shifts: Vec<usize> = (0..SHIFTS)
            .filter(|&s| self.in_place[s].is_some())
            .collect();
        match (&self.first, shifts.first()) {
            (Some(Parsed::Error(_)) | None, _) => Outcome::Error,
            (_, None) => Outcome::Converted,
            (_, Some(&first)) => {
                let size = self.in_place[first].expect("in place");
                let expected: Vec<usize> = (first..SHIFTS).step_by(size).collect();
                assert!(
                    first < size && shifts == expected,
                    "{}: values of {size} bytes in place at shifts {shifts:?}, expected {expected:?}",
                    self.what
                );
                Outcome::Both
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    /// `Ok`, the values in place at some shifts and converted at the others.
    Both,
    /// `Ok`, the values converted at every shift.
    Converted,
    /// The same error at every shift.
    Error,
}

/// Per parser (up to 3), how many inputs had each [`Outcome`].
static COUNTS: [[AtomicU64; 3]; 3] = [const { [const { AtomicU64::new(0) }; 3] }; 3];
static INPUTS: AtomicU64 = AtomicU64::new(0);

/// Checks and counts each parser's results on one input; with `XENT_FUZZ_STATS` set, prints the
/// counts after every power of two of inputs.
pub fn finish(all: &[Across]) {
    for (n, across) in all.iter().enumerate() {
        COUNTS[n][across.finish() as usize].fetch_add(1, Relaxed);
    }
    let inputs = INPUTS.fetch_add(1, Relaxed) + 1;
    if inputs.is_power_of_two() && std::env::var_os("XENT_FUZZ_STATS").is_some() {
        let counts: Vec<String> = all
            .iter()
            .enumerate()
            .map(|(n, a)| {
                let [both, converted, error] = COUNTS[n].each_ref().map(|c| c.load(Relaxed));
                format!(
                    "{}: {both} in place and converted, {converted} converted only, {error} errors",
                    a.what
                )
            })
            .collect();
        eprintln!("stats after {inputs} inputs: {}", counts.join("; "));
    }
}
