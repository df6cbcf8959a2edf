//! The `xent` command-line tool. See `xent --help`.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    quiet_vulkan_device_select();
    xent::io::exit_on_shrunk_file();
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xent: error: {}", usage_error_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xent: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// clap's usage errors span several lines; scripts get one, naming the argument and what it takes.
fn usage_error_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:")
        })
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Mesa's `device_select` Vulkan layer looks for a Wayland compositor when a Vulkan instance is
/// made, and without a desktop session (no `XDG_RUNTIME_DIR`, or not an absolute path) libwayland
/// prints "error: XDG_RUNTIME_DIR is invalid or not set in the environment." to stderr, which
/// would break the one-line errors that scripts read. The layer only reorders devices, and xent
/// ranks every adapter itself, so without a session it is turned off (`NODEVICE_SELECT=1`),
/// unless the user set that variable or one of the layer's own (`MESA_VK_DEVICE_SELECT*`).
fn quiet_vulkan_device_select() {
    let no_session = std::env::var_os("XDG_RUNTIME_DIR")
        .is_none_or(|dir| !dir.as_encoded_bytes().starts_with(b"/"));
    let user_chose = std::env::vars_os().any(|(name, _)| {
        name == "NODEVICE_SELECT"
            || name
                .as_encoded_bytes()
                .starts_with(b"MESA_VK_DEVICE_SELECT")
    });
    if no_session && !user_chose {
        // SAFETY: this runs first in `main`, before any other thread exists, so nothing reads the
        // environment while it changes.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}
