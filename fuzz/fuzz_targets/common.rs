//! What the file-parser targets share: a global allocator that counts the bytes live, and the
//! check that a parse returned `Ok` or a one-line error naming the file, within its allocation
//! bound.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

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
    if let Err(e) = result {
        let Some((path, reason)) = reason(&e) else {
            panic!("{what}: not the parser's error kind: {e:?}");
        };
        assert_eq!(path, "fuzz.bin");
        assert!(!reason.is_empty() && !reason.contains('\n'), "{reason:?}");
    }
}
