//! What the file-parser targets share: the tests' counting allocator (`tests/common/counting.rs`),
//! and the check that a parse returned `Ok` or a one-line error naming the file, within its
//! allocation bound.

#[path = "../../tests/common/counting.rs"]
mod counting;

/// The most a parse may allocate for `len` bytes: the values, widened from 16 to 32 bits at worst
/// (twice the data), the vector's growth (twice again), and the header's parse (1 MiB).
fn allowed(len: usize) -> isize {
    (4 * len + (1 << 20)) as isize
}

/// Runs `parse`, and checks what it allocated and its error: `Ok`, or the one-line error that
/// `reason` finds (the file's name and the reason, for the error kind this parser gives).
pub fn check<T>(
    what: &str,
    data: &[u8],
    parse: impl FnOnce() -> xent::Result<T>,
    reason: impl Fn(&xent::Error) -> Option<(&str, &str)>,
) {
    let (result, peak) = counting::peak_during(parse);
    let peak = peak as isize;
    if std::env::var_os("XENT_FUZZ_PEAK").is_some() {
        eprintln!("peak {what} {} {peak}", data.len());
    }
    assert!(
        peak <= allowed(data.len()),
        "{what}: {peak} bytes allocated for {} bytes",
        data.len()
    );
    if let Err(e) = result {
        let Some((path, reason)) = reason(&e) else {
            panic!("{what}: not the parser's error kind: {e:?}");
        };
        assert_eq!(path, "fuzz.bin");
        assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
    }
}
