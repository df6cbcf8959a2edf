//! Writing `.npy` files: a float32 array created under a temporary name beside its final one,
//! mapped so that its values are written in place (an engine writes a gradient straight into
//! them), then flushed and renamed into place.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapMut, MmapOptions};

use crate::{Error, Result};

/// The alignment numpy gives the data after a header, which [`header`] keeps.
const HEADER_ALIGN: usize = 64;

/// The longest header a version 1.0 file holds (its length field has 2 bytes).
const MAX_V1_HEADER: usize = u16::MAX as usize;

/// Temporary files made by this process so far, so that each gets its own name.
static MADE: AtomicU64 = AtomicU64::new(0);

/// A float32 `.npy` file being written: [`Writer::values_mut`] are its values, zero until
/// written, and [`Writer::finish`] makes it the file at its path. A writer dropped unfinished
/// leaves no file behind, nor anything under the final name.
///
/// A path that is a regular file or does not exist yet is written as a new file in the same
/// directory, mapped, and renamed over the path when finished, so that a failure midway never
/// leaves a half-written file under that name. A path that exists and is not a regular file (a
/// FIFO, `/dev/stdout`) is written as a stream when finished, from values kept in memory.
///
/// ```no_run
/// use std::path::Path;
/// use xent::io::npy::Writer;
/// let mut out = Writer::create(Path::new("grad.npy"), &[2, 3])?;
/// out.values_mut().copy_from_slice(&[0.5, -1.0, 0.5, 0.25, 0.25, -0.5]);
/// out.finish()?;
/// # Ok::<(), xent::Error>(())
/// ```
pub struct Writer {
    path: PathBuf,
    to: Sink,
}

enum Sink {
    /// A new file under a temporary name, its data at `offset` of the mapping.
    Mapped {
        temp: PathBuf,
        map: MmapMut,
        offset: usize,
    },
    /// A stream, with its header and the values to write to it.
    Stream {
        file: File,
        header: Vec<u8>,
        values: Vec<f32>,
    },
    Finished,
}

impl Writer {
    /// Starts the float32 `.npy` file at `path` of row-major `shape`. A file that cannot be
    /// created, sized or mapped is an [`Error::Io`] naming `path`, and leaves nothing behind.
    pub fn create(path: &Path, shape: &[usize]) -> Result<Writer> {
        let fail = |reason: String| io_error(path, reason);
        let header = header(shape);
        let count = shape.iter().try_fold(1_usize, |n, &d| n.checked_mul(d));
        let data = count.and_then(|n| n.checked_mul(4));
        let Some(total) = data.and_then(|d| d.checked_add(header.len())) else {
            return Err(fail(format!("an array of shape {shape:?} is too large")));
        };
        if let Ok(meta) = std::fs::metadata(path)
            && !meta.is_file()
        {
            let file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| fail(e.to_string()))?;
            let values = vec![0.0; count.unwrap_or(0)];
            return Ok(Writer {
                path: path.to_path_buf(),
                to: Sink::Stream {
                    file,
                    header,
                    values,
                },
            });
        }
        let temp = temp_beside(path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| fail(e.to_string()))?;
        let mut cleanup = Cleanup(Some(temp));
        file.write_all(&header).map_err(|e| fail(e.to_string()))?;
        file.set_len(total as u64)
            .map_err(|e| fail(e.to_string()))?;
        reserve(&file, total).map_err(|e| fail(e.to_string()))?;
        // SAFETY: the file was created by this writer under a name of its own, and nothing else
        // writes or shrinks it while it is mapped.
        let map = unsafe { MmapOptions::new().len(total).map_mut(&file) }
            .map_err(|e| fail(e.to_string()))?;
        Ok(Writer {
            path: path.to_path_buf(),
            to: Sink::Mapped {
                temp: cleanup.disarm(),
                map,
                offset: header.len(),
            },
        })
    }

    /// The path the file will have.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The array's values, row-major, to be written.
    pub fn values_mut(&mut self) -> &mut [f32] {
        match &mut self.to {
            Sink::Mapped { map, offset, .. } => bytemuck::cast_slice_mut(&mut map[*offset..]),
            Sink::Stream { values, .. } => values,
            Sink::Finished => &mut [],
        }
    }

    /// Flushes the values to the file and gives it its path. An error is an [`Error::Io`]
    /// naming the path, and leaves nothing under it.
    pub fn finish(mut self) -> Result<()> {
        let fail = |reason: String| io_error(&self.path, reason);
        match std::mem::replace(&mut self.to, Sink::Finished) {
            Sink::Mapped { temp, map, .. } => {
                let mut cleanup = Cleanup(Some(temp));
                map.flush().map_err(|e| fail(e.to_string()))?;
                drop(map);
                let temp = cleanup.disarm();
                std::fs::rename(&temp, &self.path).map_err(|e| {
                    let _ = std::fs::remove_file(&temp);
                    fail(e.to_string())
                })
            }
            Sink::Stream {
                mut file,
                header,
                values,
            } => file
                .write_all(&header)
                .and_then(|()| file.write_all(bytemuck::cast_slice(&values)))
                .and_then(|()| file.flush())
                .map_err(|e| fail(e.to_string())),
            Sink::Finished => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Sink::Mapped { temp, .. } = &self.to {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Reserves the disk space of the file's `len` bytes where the file system can, so that a full
/// disk is this error now rather than a SIGBUS when a page of the mapping is first written.
fn reserve(file: &File, len: usize) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid open file descriptor and a length that the file already has.
        let done = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
        let error = std::io::Error::last_os_error();
        if done != 0 && error.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(error);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, len);
    Ok(())
}

/// Removes a temporary file when dropped, unless disarmed.
struct Cleanup(Option<PathBuf>);

impl Cleanup {
    /// The file's path, no longer removed on drop.
    fn disarm(&mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes a row-major float32 array of the given shape, through a [`Writer`].
pub fn write(path: &Path, data: &[f32], shape: &[usize]) -> Result<()> {
    let mut out = Writer::create(path, shape)?;
    let values = out.values_mut();
    if values.len() != data.len() {
        return Err(io_error(
            path,
            format!(
                "{} values do not fill an array of shape {shape:?}",
                data.len()
            ),
        ));
    }
    values.copy_from_slice(data);
    out.finish()
}

fn io_error(path: &Path, reason: String) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason,
    }
}

/// A name in `path`'s directory that no other file has: `.NAME.PID-K.tmp`.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy());
    let k = MADE.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{k}.tmp", std::process::id()))
}

/// The header of a little-endian float32 C-order array of `shape`: version 1.0 where its length
/// fits in 2 bytes and 2.0 where not, padded with spaces so that the data start at a multiple
/// of [`HEADER_ALIGN`] bytes.
fn header(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let dims = match &dims[..] {
        [one] => format!("({one},)"),
        _ => format!("({})", dims.join(", ")),
    };
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    let (version, field) = if dict.len() + 1 + 10 <= MAX_V1_HEADER {
        (1, 2)
    } else {
        (2, 4)
    };
    let before = 8 + field;
    let len = (before + dict.len() + 1).next_multiple_of(HEADER_ALIGN) - before;
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    out.extend(&(len as u32).to_le_bytes()[..field]);
    out.extend(dict.as_bytes());
    out.resize(before + len - 1, b' ');
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Floats;
    use crate::io::npy::parse_input;

    #[test]
    fn written_arrays_read_back_and_failures_leave_nothing() {
        let dir = std::env::temp_dir().join(format!("xent-npy-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.npy");
        super::write(&path, &[1.5_f32, -2.0, 0.25, 8.0, 3.0, -1.0], &[2, 3]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let (values, shape) = parse_input(&path, &bytes).unwrap();
        assert!(values.in_place());
        assert_eq!(
            (values, shape),
            (
                Floats::F32(vec![1.5, -2.0, 0.25, 8.0, 3.0, -1.0].into()),
                [2, 3]
            )
        );
        let dropped = Writer::create(&dir.join("unfinished.npy"), &[4, 4]).unwrap();
        drop(dropped);
        let short = super::write(&dir.join("short.npy"), &[1.0], &[2, 2]).unwrap_err();
        assert!(short.to_string().contains("do not fill"), "{short}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        let err = super::write(Path::new("/nonexistent/dir/g.npy"), &[1.0], &[1, 1]).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/dir/g.npy: "),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn headers_are_padded_to_64_bytes_in_both_versions() {
        for shape in [
            vec![],
            vec![7],
            vec![3, 5],
            vec![usize::MAX; 2],
            vec![9; 4000],
        ] {
            let h = header(&shape);
            assert_eq!(h.len() % HEADER_ALIGN, 0, "{shape:?}");
            assert_eq!(*h.last().unwrap(), b'\n');
            assert_eq!(h[6], if h.len() > MAX_V1_HEADER { 2 } else { 1 });
        }
    }
}
