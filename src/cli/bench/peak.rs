//! The peak memory of one linear call, measured in a process of its own, as
//! `benches/compare_torch.py` measures PyTorch's: the child (`xent bench-linear-child`, hidden)
//! draws its inputs and writes its gradient buffers, makes the call once unmeasured (so that
//! one-time set-up, such as thread pools, or the modules PyTorch's chunked path imports on its
//! first call, about 160 MiB, is not counted as a call's memory), hands the freed heap back to the
//! system (`malloc_trim`, on glibc), resets the kernel's high-water mark of its resident memory,
//! reads its resident memory (`VmRSS` in `/proc/self/status`), makes the call again and reads the
//! high-water mark (`VmHWM`). The difference is the call's peak memory above its inputs and
//! gradients. Where the system has no `/proc`, there is no figure.
//!
//! A GPU engine keeps buffers from one call for the next (`Engine::pooled_bytes`: the logits
//! chunk, staging): resident before the second call, they are not in the difference, and are
//! added to it. On a CPU adapter (lavapipe, llvmpipe) the device's buffers are the process's own
//! memory, so the figure is the whole call's, as on the CPU paths, but for one thing: wgpu's
//! Vulkan backend keeps the memory of freed buffers in its allocator's blocks, which the second
//! call reuses, so there its figure leaves out the call's device buffers (its copies of H, W and
//! b, the gradients before their readback) and is a lower bound; GL frees them, and its figure
//! is whole. On a hardware GPU the figure is the host's memory and the engine's pooled buffers,
//! without the device buffers a call makes.

use std::process::Command;

use clap::Args;
use serde_json::{Value, json};
use xent::{Engine, Error, Result};

use super::devices::Device;
use super::inputs::LinearInputs;
use super::linear_call::LinearCall;
use super::report::Pass;

/// The hidden subcommand that measures one call.
const CHILD: &str = "bench-linear-child";

/// The arguments of `xent bench-linear-child`: one linear call of `xent bench`, whose peak
/// memory it prints as a JSON line.
#[derive(Args, Debug)]
pub struct LinearChildArgs {
    /// N, the hidden states.
    n: usize,
    /// D, the values of each.
    d: usize,
    /// V, the classes.
    v: usize,
    /// fwd or fwd+bwd.
    #[arg(value_parser = Pass::parse_call)]
    pass: Pass,
    /// On the float64 reference, not the fast CPU path.
    #[arg(long)]
    reference: bool,
    /// On this GPU adapter, by its index among those wgpu finds (`Engine::all_gpus`).
    #[arg(long, conflicts_with = "reference")]
    adapter: Option<usize>,
}

/// A figure of `/proc/self/status` (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// Hands the heap's free pages back to the system, so that a call that needs them again counts
/// them in its resident memory.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's arenas; it touches nothing live.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The engine `args` names: an adapter, the reference, or the fast CPU path.
fn child_engine(args: &LinearChildArgs) -> Result<Engine> {
    match args.adapter {
        Some(k) => Engine::all_gpus().into_iter().nth(k).unwrap_or_else(|| {
            Err(Error::NoAdapter(format!(
                "wgpu finds no adapter of index {k} in this process"
            )))
        }),
        None if args.reference => Ok(Engine::reference()),
        None => Ok(Engine::cpu()),
    }
}

/// Runs the call `args` names twice, and prints the second's peak memory above its inputs and
/// gradients, with what the engine keeps pooled after the first:
/// `{"rss_before_bytes": .., "hwm_bytes": .., "pooled_bytes": .., "peak_bytes": ..}` (null where
/// unknown).
pub fn run_child(args: &LinearChildArgs) -> Result<()> {
    let (n, d, v) = (args.n, args.d, args.v);
    let inputs = LinearInputs::draw([n, d, v], 1, 0x5eed);
    let request = inputs.request(0);
    let engine = child_engine(args)?;
    let mut call = LinearCall::new([n, d, v], args.pass, 1.0);
    let mut call = || call.run(&engine, &request, false).map(drop);
    call()?;
    let pooled = engine.pooled_bytes();
    release_free_heap();
    // The high-water mark starts again from what is resident now ("5": Linux 4.0 and later);
    // without it, it may hold an earlier peak, and the figure is an upper bound.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_bytes("VmRSS");
    call()?;
    let hwm = status_bytes("VmHWM");
    let peak = before.zip(hwm).map(|(b, h)| h.saturating_sub(b) + pooled);
    println!(
        "{}",
        json!({"rss_before_bytes": before, "hwm_bytes": hwm, "pooled_bytes": pooled, "peak_bytes": peak})
    );
    Ok(())
}

/// The peak memory of one call of `pass` on N × D × V on `device`, above its inputs and
/// gradients, from a child process of this executable: `None` where the system gives no figure.
pub fn linear(shape: [usize; 3], pass: Pass, device: &Device) -> Result<Option<u64>> {
    let exe = std::env::current_exe().map_err(|e| Error::Io {
        path: "the xent executable".into(),
        reason: e.to_string(),
    })?;
    let failed = |reason: String| Error::Io {
        path: format!("{} {CHILD}", exe.display()),
        reason,
    };
    let mut cmd = Command::new(&exe);
    cmd.arg(CHILD)
        .args(shape.map(|n| n.to_string()))
        .arg(pass.name());
    if device.reference {
        cmd.arg("--reference");
    }
    if let Some(k) = device.adapter {
        cmd.args(["--adapter", &k.to_string()]);
    }
    let out = cmd.output().map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("");
        return Err(failed(format!("exited with {}: {last}", out.status)));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| failed("printed no JSON line".into()))?;
    Ok(line.get("peak_bytes").and_then(Value::as_u64))
}
