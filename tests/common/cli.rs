//! Running the `xent` binary as a script would, on each device it can be pointed at.

use super::engines::gpus;

/// Runs the `xent` binary with `args` and extra environment; returns (exit code, stdout, stderr).
pub fn run_cli<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    // As on a machine with no desktop session, where Mesa's Vulkan device-select layer would
    // print to stderr if xent let it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xent"))
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .envs(env.iter().copied())
        .output()
        .expect("the xent binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

/// What `xent --device` is run with in CLI tests: the reference, the fast CPU path, and `gpu` once
/// per backend that has an adapter here, selected through `WGPU_BACKEND`.
pub fn cli_devices() -> Vec<(&'static str, Option<String>)> {
    [("reference", None), ("cpu", None)]
        .into_iter()
        .chain(
            gpus()
                .iter()
                .map(|e| ("gpu", Some(e.device().backend.to_lowercase()))),
        )
        .collect()
}
