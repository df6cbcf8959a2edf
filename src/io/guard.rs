//! What a read of a mapped file that another process shrank does. By default the process dies of
//! SIGBUS, as any program that maps files does. After [`exit_on_shrunk_file`] it exits with code 1
//! and one line on stderr that names the file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

/// How many mappings can be named at once. Any more are still mapped, and a fault in one of
/// them keeps SIGBUS's default action.
const SLOTS: usize = 32;

/// The longest line a fault writes, in bytes.
const LINE: usize = 512;

/// One mapping's address range and the line a fault in it writes. A slot is claimed through
/// `claimed`, and published by a nonzero `end` once `line` is written.
struct Slot {
    claimed: AtomicBool,
    start: AtomicUsize,
    end: AtomicUsize,
    len: AtomicUsize,
    line: [AtomicU8; LINE],
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        claimed: AtomicBool::new(false),
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        line: [const { AtomicU8::new(0) }; LINE],
    }
}; SLOTS];

/// Whether [`exit_on_shrunk_file`] has installed its handler.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Makes a read of a [`Source`](crate::io::Source) whose file another process shrank while it
/// was mapped end the process with exit code 1 and one line on stderr naming the file
/// (`xent: error: PATH: the file shrank while it was being read ...`), instead of dying of
/// SIGBUS. A program calls it once, before it opens files (the CLI does, first thing); a
/// library leaves the process's signals to its caller and does not call it. A SIGBUS that is
/// not a mapped file's keeps its default action. Does nothing where there are no signals.
pub fn exit_on_shrunk_file() {
    #[cfg(unix)]
    if !INSTALLED.swap(true, Ordering::SeqCst) {
        // SAFETY: `on_sigbus` only calls async-signal-safe functions (write, _exit, signal) and
        // reads atomics.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
    }
}

/// A named mapping, unnamed again when dropped.
pub(super) struct Named(Option<usize>);

impl Named {
    /// Bytes that are not a mapping, and need no name.
    pub(super) fn none() -> Named {
        Named(None)
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        if let Some(k) = self.0 {
            TABLE[k].end.store(0, Ordering::SeqCst);
            TABLE[k].claimed.store(false, Ordering::SeqCst);
        }
    }
}

/// Names `bytes`, a mapping of the file at `path`, for the line a fault in it writes, when
/// [`exit_on_shrunk_file`] has been called and a slot is free.
pub(super) fn name(bytes: &[u8], path: &Path) -> Named {
    if !INSTALLED.load(Ordering::SeqCst) || bytes.is_empty() {
        return Named(None);
    }
    let Some(k) = TABLE
        .iter()
        .position(|s| !s.claimed.swap(true, Ordering::SeqCst))
    else {
        return Named(None);
    };
    let slot = &TABLE[k];
    let mut text = format!(
        "xent: error: {}: the file shrank while it was being read (another process truncated \
         it)",
        path.display()
    );
    let mut cut = text.len().min(LINE - 1);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push('\n');
    for (to, &b) in slot.line.iter().zip(text.as_bytes()) {
        to.store(b, Ordering::Relaxed);
    }
    slot.len.store(text.len(), Ordering::SeqCst);
    slot.start.store(bytes.as_ptr() as usize, Ordering::SeqCst);
    slot.end
        .store(bytes.as_ptr() as usize + bytes.len(), Ordering::SeqCst);
    Named(Some(k))
}

#[cfg(unix)]
extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let at = unsafe { (*info).si_addr() } as usize;
    let slot = TABLE.iter().find(|s| {
        let end = s.end.load(Ordering::SeqCst);
        end != 0 && (s.start.load(Ordering::SeqCst)..end).contains(&at)
    });
    let Some(slot) = slot else {
        // Not a named mapping's fault: the default action, once this handler returns and the
        // faulting access runs again.
        // SAFETY: signal is async-signal-safe.
        unsafe { libc::signal(libc::SIGBUS, libc::SIG_DFL) };
        return;
    };
    let mut line = [0_u8; LINE];
    let len = slot.len.load(Ordering::SeqCst).min(LINE);
    for (to, from) in line.iter_mut().zip(&slot.line[..len]) {
        *to = from.load(Ordering::Relaxed);
    }
    // SAFETY: write and _exit are async-signal-safe.
    unsafe {
        libc::write(2, line.as_ptr().cast(), len);
        libc::_exit(1);
    }
}
