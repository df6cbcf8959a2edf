//! Arbitrary bytes as a `.npy` file, through each of xent's three parsers, at each of the 8 shifts
//! from an 8-byte boundary: each parse must return `Ok` or a one-line `Error::Npy`, never panic,
//! and never allocate more than the bytes justify (nothing of the values' size where it borrows
//! them); every shift must give the same values, bit for bit, or the same error; and the values
//! must be borrowed at every shift that aligns them, or at none.

#![no_main]

#[path = "common.rs"]
mod common;
#[path = "parsed.rs"]
mod parsed;

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xent::Error;
use xent::io::npy::{parse_input, parse_target, parse_vector};

use common::{Across, SHIFTS, Shifted, check};

fn npy_reason(e: &Error) -> Option<(&str, &str)> {
    match e {
        Error::Npy { path, reason } => Some((path, reason)),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.bin");
    let mut across = [
        Across::new("parse_input"),
        Across::new("parse_target"),
        Across::new("parse_vector"),
    ];
    for shift in 0..SHIFTS {
        let copy = Shifted::new(data, shift);
        let bytes = copy.bytes();
        let (r, in_place) = check(
            "parse_input",
            bytes,
            || parse_input(name, bytes),
            npy_reason,
            |(f, _)| parsed::borrowed_floats(f, bytes),
        );
        across[0].add(shift, parsed::input(&r), in_place);
        let (r, in_place) = check(
            "parse_target",
            bytes,
            || parse_target(name, bytes),
            npy_reason,
            |t| parsed::borrowed_target(t, bytes),
        );
        across[1].add(shift, parsed::target(&r), in_place);
        let (r, in_place) = check(
            "parse_vector",
            bytes,
            || parse_vector(name, bytes),
            npy_reason,
            |v| parsed::borrowed(v, bytes),
        );
        across[2].add(shift, parsed::vector(&r), in_place);
    }
    common::finish(&across);
});
