//! Arbitrary bytes as a `.safetensors` file, through `xent::io::safetensors::parse_input`, with
//! and without a tensor name: each must return `Ok` or a one-line `Error::Safetensors`, never
//! panic, and never allocate more than the bytes justify.

#![no_main]

#[path = "common.rs"]
mod common;

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xent::Error;
use xent::io::safetensors::parse_input;

fn safetensors_reason(e: &Error) -> Option<(&str, &str)> {
    match e {
        Error::Safetensors { path, reason } => Some((path, reason)),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.bin");
    common::check(
        "parse_input",
        data,
        || parse_input(name, data, None),
        safetensors_reason,
    );
    common::check(
        "parse_input, named",
        data,
        || parse_input(name, data, Some("logits")),
        safetensors_reason,
    );
});
