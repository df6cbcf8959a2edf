//! Files through `xent::io::Source`: a mapped file and the same bytes read from a FIFO give the
//! same values and the same loss and gradient bits, for every `.npy` version, byte order and
//! float dtype and every `.safetensors` float dtype; aligned little-endian values are used in
//! place, with nothing of their size allocated; `xent loss` reads a pipe; a file truncated while
//! mapped is a one-line error and exit code 1, not a crash; and a failed `--grad-out` leaves
//! nothing behind.

mod common;
#[path = "common/counting.rs"]
mod counting;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{in_pool, logits, rng, round_to, run_cli, safetensors_file, targets};
use counting::peak_during;
use half::f16;
use xent::io::{Floats, Source, npy, safetensors};
use xent::{Dtype, Engine, Input, Request};

/// A folder of its own for `test`, emptied first.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xent-mapped-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `.npy` file of format `version`: the header padded with spaces so that the data start at
/// `align` bytes past a multiple of 64 (numpy's files: 0), then `data`.
fn npy(version: u8, descr: &str, shape: &str, data: &[u8], align: usize) -> Vec<u8> {
    let mut text = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let before = if version == 1 { 10 } else { 12 };
    while (before + text.len() + 1) % 64 != align {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    match version {
        1 => out.extend((text.len() as u16).to_le_bytes()),
        _ => out.extend((text.len() as u32).to_le_bytes()),
    }
    out.extend(text.as_bytes());
    out.extend(data);
    out
}

/// `values` stored as `descr` says (`<` or `>`, then f2, f4 or f8).
fn stored(values: &[f32], descr: &str) -> Vec<u8> {
    let big = descr.starts_with('>');
    let bytes = |b: &[u8]| -> Vec<u8> {
        if big {
            b.iter().rev().copied().collect()
        } else {
            b.to_vec()
        }
    };
    values
        .iter()
        .flat_map(|&v| match &descr[1..] {
            "f2" => bytes(&f16::from_f32(v).to_le_bytes()),
            "f4" => bytes(&v.to_le_bytes()),
            "f8" => bytes(&f64::from(v).to_le_bytes()),
            other => panic!("no dtype {other}"),
        })
        .collect()
}

/// `bytes` behind a FIFO at `path`, written by a thread of its own.
fn fifo(path: &Path, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let path = path.to_path_buf();
    std::thread::spawn(move || std::fs::write(path, bytes).unwrap())
}

/// The loss and gradient bits of cross-entropy on `input` on the fast CPU path.
fn bits(input: Input<'_>, shape: [usize; 2], target: &[i64]) -> (u32, Vec<u32>) {
    let mut grad = vec![0.0_f32; shape[0] * shape[1]];
    let out = Engine::cpu()
        .compute_into(&Request::cross_entropy(input, shape, target), &mut grad)
        .unwrap();
    let loss = out.loss.scalar().unwrap().to_bits();
    (loss, grad.iter().map(|g| g.to_bits()).collect())
}

#[test]
fn mapped_and_read_files_give_the_same_bits() {
    let mut rng = rng("mapped_and_read_files_give_the_same_bits");
    let dir = folder("same-bits");
    let shape = [37, 301];
    let values = logits(&mut rng, shape[0] * shape[1], 4.0);
    let target = targets(&mut rng, shape[0], shape[1], 0.1);
    let mut files: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for version in [1, 2, 3] {
        for descr in ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8"] {
            for align in [0, 1, 2] {
                let data = stored(&values, descr);
                let size: usize = descr[2..].parse().unwrap();
                let in_place = descr.starts_with('<') && size < 8 && align % size == 0;
                let name = format!("v{version}{}{align}.npy", &descr[1..]).replace('>', "be");
                let name = if descr.starts_with('>') {
                    format!("be-{name}")
                } else {
                    name
                };
                files.push((
                    name,
                    npy(version, descr, "(37, 301)", &data, align),
                    in_place,
                ));
            }
        }
    }
    for dtype in [Dtype::Bf16, Dtype::F16, Dtype::F32] {
        let x = round_to(dtype, &values);
        let name = format!("{}.safetensors", dtype.name());
        files.push((name, safetensors_file(&[("x", &x, &shape)]), true));
    }
    for (name, bytes, in_place) in files {
        let read = |file: &Source| {
            let (values, shape) = if name.ends_with(".safetensors") {
                safetensors::read_input(file, None).unwrap()
            } else {
                npy::read_input(file).unwrap()
            };
            (values.into_owned(), shape)
        };
        let mapped_path = dir.join(&name);
        std::fs::write(&mapped_path, &bytes).unwrap();
        let mapped = Source::open(&mapped_path).unwrap();
        assert!(mapped.is_mapped(), "{name}");
        let (from_map, map_shape) = if name.ends_with(".safetensors") {
            safetensors::read_input(&mapped, None).unwrap()
        } else {
            npy::read_input(&mapped).unwrap()
        };
        assert_eq!(from_map.in_place(), in_place, "{name}");
        assert_eq!(read(&mapped).0, from_map, "{name}");
        let fifo_path = dir.join(format!("fifo-{name}"));
        let writer = fifo(&fifo_path, bytes);
        let piped = Source::open(&fifo_path).unwrap();
        writer.join().unwrap();
        assert!(!piped.is_mapped(), "{name}");
        let (from_pipe, pipe_shape) = read(&piped);
        assert_eq!((map_shape, pipe_shape), (shape, shape), "{name}");
        assert_eq!(
            bits(from_map.as_input(), shape, &target),
            bits(from_pipe.as_input(), shape, &target),
            "{name}"
        );
        let exact = from_map.to_f32();
        let want = round_to(from_map.as_input().dtype(), &values).to_f32();
        let to_bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(to_bits(&exact), to_bits(&want), "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_aligned_little_endian_file_is_computed_on_without_a_copy() {
    let mut rng = rng("an_aligned_little_endian_file_is_computed_on_without_a_copy");
    let dir = folder("no-copy");
    let shape = [256, 4099];
    let values = logits(&mut rng, shape[0] * shape[1], 3.0);
    let target = targets(&mut rng, shape[0], shape[1], 0.0);
    let input_path = dir.join("x.npy");
    npy::write(&input_path, &values, &shape).unwrap();
    let input_bytes = std::fs::metadata(&input_path).unwrap().len() as usize;
    let grad_path = dir.join("g.npy");
    // One thread, so that every allocation of the call is on the counted thread.
    let (loss, peak) = in_pool(1, || {
        peak_during(|| {
            let file = Source::open(&input_path).unwrap();
            let (input, shape) = npy::read_input(&file).unwrap();
            assert!(input.in_place());
            let request = Request::cross_entropy(input.as_input(), shape, &target[..]);
            let mut grad = npy::Writer::create(&grad_path, &shape).unwrap();
            let out = Engine::cpu()
                .compute_into(&request, grad.values_mut())
                .unwrap();
            grad.finish().unwrap();
            out.loss.scalar().unwrap()
        })
    });
    assert!(
        peak < input_bytes / 8,
        "{peak} bytes allocated for a file of {input_bytes}"
    );
    let request = Request::cross_entropy(&values[..], shape, &target[..]).with_grad(true);
    let want = Engine::cpu().compute(&request).unwrap();
    assert_eq!(loss.to_bits(), want.loss.scalar().unwrap().to_bits());
    let (grad, _) = common::read_input(&grad_path).unwrap();
    assert_eq!(grad, Floats::F32(want.grad.unwrap().into()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn xent_loss_reads_a_pipe() {
    let mut rng = rng("xent_loss_reads_a_pipe");
    let dir = folder("pipe");
    let values = logits(&mut rng, 9 * 70, 2.0);
    let input = dir.join("x.npy");
    let target = dir.join("t.npy");
    npy::write(&input, &values, &[9, 70]).unwrap();
    common::write_npy(&target, &[9], &targets(&mut rng, 9, 70, 0.2));
    let args = |from: &str, grad: &Path| {
        let mut a = vec!["loss", "--device", "cpu", "--json", "--input", from];
        a.extend(["--target", target.to_str().unwrap()]);
        a.extend(["--grad-out", grad.to_str().unwrap()]);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let (code, from_file, err) = run_cli(&args(input.to_str().unwrap(), &dir.join("g1.npy")), &[]);
    assert_eq!(code, 0, "{err}");
    let piped = Command::new(env!("CARGO_BIN_EXE_xent"))
        .args(args("/dev/stdin", &dir.join("g2.npy")))
        .stdin(Stdio::from(std::fs::File::open(&input).unwrap()))
        .output()
        .unwrap();
    // A file on stdin is mapped like any file; through a pipe it is read.
    let mut cat = Command::new("cat")
        .arg(&input)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let through_pipe = Command::new(env!("CARGO_BIN_EXE_xent"))
        .args(args("/dev/stdin", &dir.join("g3.npy")))
        .stdin(Stdio::from(cat.stdout.take().unwrap()))
        .output()
        .unwrap();
    assert!(cat.wait().unwrap().success());
    for out in [&piped, &through_pipe] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), from_file);
    }
    let g1 = std::fs::read(dir.join("g1.npy")).unwrap();
    assert_eq!(g1, std::fs::read(dir.join("g2.npy")).unwrap());
    assert_eq!(g1, std::fs::read(dir.join("g3.npy")).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Run as a child of `a_file_truncated_while_mapped_is_one_line_not_a_crash`: maps the file,
/// checks its header, truncates it, then computes on it.
#[test]
fn truncated_child() {
    let Some(path) = std::env::var_os("XENT_TRUNCATE_CHILD") else {
        return;
    };
    xent::io::exit_on_shrunk_file();
    let path = PathBuf::from(path);
    let file = Source::open(&path).unwrap();
    let (input, shape) = npy::read_input(&file).unwrap();
    assert!(input.in_place());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(128)
        .unwrap();
    let target = vec![0_i64; shape[0]];
    let out = Engine::cpu().compute(&Request::cross_entropy(
        input.as_input(),
        shape,
        &target[..],
    ));
    panic!("computed on a truncated file: {out:?}");
}

#[test]
fn a_file_truncated_while_mapped_is_one_line_not_a_crash() {
    let mut rng = rng("a_file_truncated_while_mapped_is_one_line_not_a_crash");
    let dir = folder("truncated");
    let path = dir.join("x.npy");
    npy::write(&path, &logits(&mut rng, 512 * 1024, 1.0), &[512, 1024]).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "truncated_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("XENT_TRUNCATE_CHILD", &path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = format!(
        "xent: error: {}: the file shrank while it was being read (another process truncated it)\n",
        path.display()
    );
    assert!(stderr.ends_with(&line), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_grad_out_leaves_nothing_behind() {
    let mut rng = rng("a_failed_grad_out_leaves_nothing_behind");
    let dir = folder("grad-out");
    let input = dir.join("x.npy");
    let target = dir.join("t.npy");
    npy::write(&input, &logits(&mut rng, 3 * 5, 1.0), &[3, 5]).unwrap();
    common::write_npy(&target, &[3], &[0_i64, 4, 2]);
    let run = |grad: &Path, target: &Path| {
        run_cli(
            &[
                "loss",
                "--device",
                "cpu",
                "--input",
                input.to_str().unwrap(),
                "--target",
                target.to_str().unwrap(),
                "--grad-out",
                grad.to_str().unwrap(),
            ],
            &[],
        )
    };
    // A directory that does not exist, one that is a file, and one without write permission
    // (which root may write anyway: then it is skipped).
    let locked = dir.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let root_writes = std::fs::write(locked.join("probe"), b"").is_ok();
    let _ = std::fs::remove_file(locked.join("probe"));
    let mut unwritable = vec![dir.join("missing/g.npy"), input.join("g.npy")];
    if !root_writes {
        unwritable.push(locked.join("g.npy"));
    }
    for grad in &unwritable {
        let (code, stdout, stderr) = run(grad, &target);
        assert_eq!(code, 1, "{stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("xent: error: --grad-out {}: ", grad.display())),
            "{stderr}"
        );
    }
    // A run that fails after the file is created leaves what was under the name as it was.
    let grad = dir.join("g.npy");
    std::fs::write(&grad, b"before").unwrap();
    let bad_target = dir.join("bad.npy");
    common::write_npy(&bad_target, &[3], &[0_i64, 9, 2]);
    let (code, _, stderr) = run(&grad, &bad_target);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(std::fs::read(&grad).unwrap(), b"before");
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["bad.npy", "g.npy", "locked", "t.npy", "x.npy"]);
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
