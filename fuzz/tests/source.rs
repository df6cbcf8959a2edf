//! The fuzz corpora through a real `Source`: up to 200 files of each corpus (chosen at random,
//! the seed printed; `XENT_FUZZ_SEED` repeats a choice and `XENT_FUZZ_FILES` sets how many),
//! written to a temporary directory and read through `Source::open`, both mapped and from a pipe
//! (through `cat`), must give what the `parse_*` functions give on the same bytes, bit for bit,
//! and must borrow their values exactly where a parse of the bytes at an 8-byte boundary does.
//!
//! ```sh
//! cargo test --manifest-path fuzz/Cargo.toml --test source -- --nocapture
//! ```
//!
//! The corpora are `fuzz/corpus/{npy,safetensors}` (made by fuzzing), or `XENT_FUZZ_CORPUS`'s
//! `npy` and `safetensors` folders; a corpus that is absent is skipped, with the seeds read
//! instead.

#[path = "../fuzz_targets/parsed.rs"]
mod parsed;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use parsed::Parsed;
use xent::io::{Source, npy, safetensors};

/// How many files of each corpus are read, unless `XENT_FUZZ_FILES` says.
const FILES: usize = 200;

/// The files of the corpus `kind`, or of its seeds where there is no corpus.
fn corpus(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("XENT_FUZZ_CORPUS")
        .map_or_else(|| root.join("corpus"), PathBuf::from)
        .join(kind);
    let dir = if dir.is_dir() {
        dir
    } else {
        eprintln!("{} is absent: reading the seeds", dir.display());
        root.join("seeds").join(kind)
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Up to `n` of `files`, chosen by a xorshift generator from `seed`.
fn choose(mut files: Vec<PathBuf>, n: usize, seed: u64) -> Vec<PathBuf> {
    let mut state = seed | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..files.len().min(n) {
        let j = i + (next() % (files.len() - i) as u64) as usize;
        files.swap(i, j);
    }
    files.truncate(n);
    files
}

fn seed() -> u64 {
    let seed = std::env::var("XENT_FUZZ_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        },
        |s| s.parse().unwrap(),
    );
    eprintln!("XENT_FUZZ_SEED={seed}");
    seed
}

/// `bytes` at an 8-byte boundary, as the fuzz targets parse them at shift 0 (and as a mapping
/// or a `Source` read from a pipe begins).
fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0_u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    words
}

/// Each way the file at `path` is read, what it gave and whether its values were borrowed.
type Reads = Vec<(&'static str, Parsed, Option<(usize, usize)>)>;

fn npy_reads(path: &Path, bytes: &[u8], source: Option<&Source>) -> Reads {
    let (input, target, vector) = match source {
        Some(s) => (npy::read_input(s), npy::read_target(s), npy::read_vector(s)),
        None => (
            npy::parse_input(path, bytes),
            npy::parse_target(path, bytes),
            npy::parse_vector(path, bytes),
        ),
    };
    let bytes = source.map_or(bytes, Source::bytes);
    vec![
        (
            "input",
            parsed::input(&input),
            input
                .as_ref()
                .ok()
                .and_then(|(f, _)| parsed::borrowed_floats(f, bytes)),
        ),
        (
            "target",
            parsed::target(&target),
            target
                .as_ref()
                .ok()
                .and_then(|t| parsed::borrowed_target(t, bytes)),
        ),
        (
            "vector",
            parsed::vector(&vector),
            vector
                .as_ref()
                .ok()
                .and_then(|v| parsed::borrowed(v, bytes)),
        ),
    ]
}

fn safetensors_reads(path: &Path, bytes: &[u8], source: Option<&Source>) -> Reads {
    [(None, "input"), (Some("logits"), "input, named")]
        .into_iter()
        .map(|(tensor, what)| {
            let r = match source {
                Some(s) => safetensors::read_input(s, tensor),
                None => safetensors::parse_input(path, bytes, tensor),
            };
            let bytes = source.map_or(bytes, Source::bytes);
            let in_place = r
                .as_ref()
                .ok()
                .and_then(|(f, _)| parsed::borrowed_floats(f, bytes));
            (what, parsed::input(&r), in_place)
        })
        .collect()
}

/// Reads `files` through a `Source`, mapped and from a pipe, and compares with `reads` of the
/// bytes; returns how many reads were `Ok`, and how many of those in place.
fn compare(
    files: &[PathBuf],
    dir: &Path,
    reads: fn(&Path, &[u8], Option<&Source>) -> Reads,
) -> (usize, usize, usize) {
    let (mut all, mut ok, mut in_place) = (0, 0, 0);
    for (n, file) in files.iter().enumerate() {
        let bytes = std::fs::read(file).unwrap();
        let path = dir.join(format!("{n}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        let words = aligned(&bytes);
        let expected = reads(&path, &bytemuck::cast_slice(&words)[..bytes.len()], None);
        let mapped = Source::open(&path).unwrap();
        assert!(mapped.is_mapped());
        let got = reads(&path, &[], Some(&mapped));
        for ((what, e, e_in_place), (_, g, g_in_place)) in expected.iter().zip(&got) {
            assert_eq!(e, g, "{} ({what}), mapped", file.display());
            assert_eq!(
                e_in_place,
                g_in_place,
                "{} ({what}), mapped, in place",
                file.display()
            );
            all += 1;
            ok += usize::from(!matches!(e, Parsed::Error(_)));
            in_place += usize::from(g_in_place.is_some());
        }
        // The same file from a pipe: read once into an aligned buffer. Its errors name the pipe.
        let mut cat = Command::new("cat")
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let fd = cat.stdout.take().unwrap();
        let pipe = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ));
        let piped = Source::open(&pipe).unwrap();
        assert!(!piped.is_mapped());
        cat.wait().unwrap();
        let expected = reads(&pipe, &bytemuck::cast_slice(&words)[..bytes.len()], None);
        let got = reads(&pipe, &[], Some(&piped));
        for ((what, e, e_in_place), (_, g, g_in_place)) in expected.iter().zip(&got) {
            assert_eq!(e, g, "{} ({what}), piped", file.display());
            assert_eq!(
                e_in_place,
                g_in_place,
                "{} ({what}), piped, in place",
                file.display()
            );
        }
        drop(fd);
    }
    (all, ok, in_place)
}

#[test]
fn a_source_reads_what_the_parsers_parse() {
    let seed = seed();
    let dir = std::env::temp_dir().join(format!("xent-fuzz-source-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (kind, reads) in [
        (
            "npy",
            npy_reads as fn(&Path, &[u8], Option<&Source>) -> Reads,
        ),
        ("safetensors", safetensors_reads),
    ] {
        let n = std::env::var("XENT_FUZZ_FILES").map_or(FILES, |n| n.parse().unwrap());
        let files = choose(corpus(kind), n, seed);
        let (all, ok, in_place) = compare(&files, &dir, reads);
        eprintln!(
            "{kind}: {} files, {all} reads each way (mapped, piped): {ok} Ok, {in_place} of them \
             in place when mapped",
            files.len()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
