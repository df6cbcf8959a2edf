//! Arbitrary bytes as a `.npy` file, through each of xent's three parsers: each must return `Ok`
//! or a one-line `Error::Npy`, never panic, and never allocate more than the bytes justify.

#![no_main]

#[path = "common.rs"]
mod common;

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xent::Error;
use xent::io::npy::{parse_input, parse_target, parse_vector};

fn npy_reason(e: &Error) -> Option<(&str, &str)> {
    match e {
        Error::Npy { path, reason } => Some((path, reason)),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.bin");
    common::check("parse_input", data, || parse_input(name, data), npy_reason);
    common::check(
        "parse_target",
        data,
        || parse_target(name, data),
        npy_reason,
    );
    common::check(
        "parse_vector",
        data,
        || parse_vector(name, data),
        npy_reason,
    );
});
