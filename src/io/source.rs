//! A file's bytes as the readers take them: mapped where the file can be mapped, or else read
//! once into one buffer (a pipe, a FIFO, `/dev/stdin`, a character device).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use crate::io::guard::{self, Named};
use crate::{Error, Result};

/// The bytes of one file, opened once: a read-only mapping of a regular file, or the whole
/// stream read into a buffer aligned to 8 bytes where the file is not one (so that the values
/// after a header padded to a multiple of 8 can be used in place in both cases).
///
/// A mapping is checked against the file's length after it is made: a file that shrank in
/// between is an error. What is trusted is that no other process shrinks the file while the
/// `Source` lives, as with any mapped file; a read past a file shrunk under the mapping is a
/// SIGBUS, which [`exit_on_shrunk_file`](crate::io::exit_on_shrunk_file) turns into a one-line
/// error naming the file (the CLI calls it; see `SECURITY.md`). Contents changed in
/// place change the values read, never their bounds: every length and offset is checked
/// against [`Source::bytes`] itself, once, before values are read.
///
/// ```no_run
/// use std::path::Path;
/// use xent::io::{Source, npy};
/// use xent::{Engine, Request};
///
/// let logits = Source::open(Path::new("logits.npy"))?;
/// let targets = Source::open(Path::new("targets.npy"))?;
/// let (input, shape) = npy::read_input(&logits)?; // in place when little-endian f32 or f16
/// let target = npy::read_target(&targets)?;
/// let request = Request::cross_entropy(input.as_input(), shape, target.as_target());
/// let loss = Engine::cpu().compute(&request)?.loss;
/// # Ok::<(), xent::Error>(())
/// ```
pub struct Source {
    path: PathBuf,
    /// Dropped before `bytes` (fields drop in order): a mapping is unnamed before it is unmapped.
    _named: Named,
    bytes: Bytes,
}

enum Bytes {
    Mapped(Mmap),
    /// The stream's bytes at the start of 8-byte words, and how many there are.
    Read(Vec<u64>, usize),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .field("mapped", &self.is_mapped())
            .field("len", &self.bytes().len())
            .finish()
    }
}

impl Source {
    /// Opens the file at `path`: maps it when it is a regular file, or else reads it to its end.
    /// A file that cannot be opened, mapped or read is an [`Error::Io`] naming it.
    pub fn open(path: &Path) -> Result<Source> {
        let fail = |reason: String| Error::Io {
            path: path.display().to_string(),
            reason,
        };
        let mut file = File::open(path).map_err(|e| fail(e.to_string()))?;
        let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
        let bytes = if meta.is_file() {
            let len = usize::try_from(meta.len())
                .map_err(|_| fail(format!("{} bytes do not fit in memory", meta.len())))?;
            Bytes::Mapped(map(&file, len).map_err(|e| fail(e.to_string()))?)
        } else {
            read_aligned(&mut file).map_err(|e| fail(e.to_string()))?
        };
        if let Bytes::Mapped(map) = &bytes {
            let now = file.metadata().map_err(|e| fail(e.to_string()))?.len();
            if now < map.len() as u64 {
                return Err(fail(format!(
                    "the file shrank from {} to {now} bytes while it was being opened",
                    map.len()
                )));
            }
        }
        let named = match &bytes {
            Bytes::Mapped(map) => guard::name(map, path),
            Bytes::Read(..) => Named::none(),
        };
        Ok(Source {
            path: path.to_path_buf(),
            _named: named,
            bytes,
        })
    }

    /// The path the file was opened by, which errors name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(map) => map,
            Bytes::Read(words, len) => &bytemuck::cast_slice(words)[..*len],
        }
    }

    /// Whether the bytes are a mapping of the file rather than a copy read from it.
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped(_))
    }
}

/// A read-only mapping of the first `len` bytes of `file`, its pages read ahead: the readers go
/// through it once, front to back.
fn map(file: &File, len: usize) -> std::io::Result<Mmap> {
    // SAFETY: the mapping is read-only and private to this process; that no other process
    // shrinks the file while it is mapped is the contract stated on `Source`, and every length
    // read from it is checked against the mapping's own length.
    let map = unsafe { MmapOptions::new().len(len).populate().map(file)? };
    #[cfg(unix)]
    map.advise(memmap2::Advice::Sequential)?;
    Ok(map)
}

/// Reads a stream to its end into 8-byte words, so that its bytes start 8-byte aligned.
fn read_aligned(file: &mut File) -> std::io::Result<Bytes> {
    let mut words: Vec<u64> = Vec::new();
    let mut len = 0;
    loop {
        if len == words.len() * 8 {
            words.resize((words.len() * 2).max(1 << 13), 0);
        }
        let free = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[len..];
        match file.read(free) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    words.truncate(len.div_ceil(8));
    words.shrink_to_fit();
    Ok(Bytes::Read(words, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_regular_files_and_reads_streams_once() {
        let path = std::env::temp_dir().join(format!("xent-source-{}", std::process::id()));
        let data: Vec<u8> = (0..100_000).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mapped = Source::open(&path).unwrap();
        assert!(mapped.is_mapped());
        assert_eq!(mapped.bytes(), &data[..]);
        let mut stream = std::process::Command::new("cat")
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let fd = stream.stdout.take().unwrap();
        let pipe = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ));
        let read = Source::open(&pipe).unwrap();
        assert!(!read.is_mapped());
        assert_eq!(read.bytes(), &data[..]);
        assert_eq!(read.bytes().as_ptr() as usize % 8, 0);
        stream.wait().unwrap();
        let empty = Source::open(Path::new("/dev/null")).unwrap();
        assert!(!empty.is_mapped());
        assert!(empty.bytes().is_empty());
        let err = Source::open(Path::new("/nonexistent/x.npy")).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/x.npy: "), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
