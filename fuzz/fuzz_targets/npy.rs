//! Arbitrary bytes as a `.npy` file, through each of xent's three parsers: each must return `Ok`
//! or a one-line `Error::Npy`, never panic, and never allocate more than the bytes justify.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use libfuzzer_sys::fuzz_target;
use xent::Error;
use xent::npy::{parse_input, parse_target, parse_vector};

/// Counts the bytes live, and their peak since the last reset (the parsers run on this thread
/// alone).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    let live = LIVE.fetch_add(delta, Relaxed) + delta;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's layout is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: as in `dealloc`; the caller guarantees `new_size` is valid.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most a parse may allocate for `len` bytes: the values, widened from float16 to float32
/// at worst (twice the data), the vector's growth (twice again), and the header's parse, which
/// is at most 4096 bytes long.
fn allowed(len: usize) -> isize {
    (4 * len + (1 << 20)) as isize
}

/// Runs `parse`, and checks its error and what it allocated.
fn check<T>(what: &str, data: &[u8], parse: impl FnOnce() -> xent::Result<T>) {
    let start = LIVE.load(Relaxed);
    PEAK.store(start, Relaxed);
    let result = parse();
    let peak = PEAK.load(Relaxed) - start;
    if std::env::var_os("XENT_FUZZ_PEAK").is_some() {
        eprintln!("peak {what} {} {peak}", data.len());
    }
    assert!(
        peak <= allowed(data.len()),
        "{what}: {peak} bytes allocated for {} bytes",
        data.len()
    );
    match result {
        Ok(_) => {}
        Err(Error::Npy { path, reason }) => {
            assert_eq!(path, "fuzz.npy");
            assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
        }
        Err(other) => panic!("{what}: not an Error::Npy: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.npy");
    check("parse_input", data, || parse_input(name, data));
    check("parse_target", data, || parse_target(name, data));
    check("parse_vector", data, || parse_vector(name, data));
});
