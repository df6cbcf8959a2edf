//! Arbitrary bytes as a `.safetensors` file, through `xent::io::safetensors::parse_input`, with
//! and without a tensor name, at each of the 8 shifts from an 8-byte boundary: each parse must
//! return `Ok` or a one-line `Error::Safetensors`, never panic, and never allocate more than the
//! bytes justify (nothing of the values' size where it borrows them); every shift must give the
//! same values, bit for bit, or the same error; and the values must be borrowed at every shift
//! that aligns them, or at none.

#![no_main]

#[path = "common.rs"]
mod common;
#[path = "parsed.rs"]
mod parsed;

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xent::Error;
use xent::io::safetensors::parse_input;

use common::{Across, SHIFTS, Shifted, check};

fn safetensors_reason(e: &Error) -> Option<(&str, &str)> {
    match e {
        Error::Safetensors { path, reason } => Some((path, reason)),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.bin");
    let mut across = [
        Across::new("parse_input"),
        Across::new("parse_input, named"),
    ];
    for shift in 0..SHIFTS {
        let copy = Shifted::new(data, shift);
        let bytes = copy.bytes();
        for (n, tensor) in [None, Some("logits")].into_iter().enumerate() {
            let (r, in_place) = check(
                across[n].what(),
                bytes,
                || parse_input(name, bytes, tensor),
                safetensors_reason,
                |(f, _)| parsed::borrowed_floats(f, bytes),
            );
            across[n].add(shift, parsed::input(&r), in_place);
        }
    }
    common::finish(&across);
});
