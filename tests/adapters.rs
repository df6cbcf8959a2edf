//! The adapters the GPU tests run on, and the CLI commands that list and demo them.

mod common;

/// CI sets `XENT_EXPECT_BACKENDS=vulkan,gl`, so that a run where one of the two software
/// adapters went missing fails rather than passing on the other alone.
#[test]
fn every_expected_backend_has_an_engine() {
    let Ok(expected) = std::env::var("XENT_EXPECT_BACKENDS") else {
        eprintln!(
            "XENT_EXPECT_BACKENDS unset; found {} adapter(s)",
            common::gpus().len()
        );
        return;
    };
    let found: Vec<String> = common::gpus()
        .iter()
        .map(|e| e.device().backend.to_lowercase())
        .collect();
    for backend in expected.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        assert!(
            found.iter().any(|f| f == backend),
            "no {backend} adapter; found {found:?}"
        );
    }
}

#[test]
fn adapters_are_ranked_best_first() {
    let summaries = xent::gpu::adapters();
    let engines = common::gpus();
    assert_eq!(summaries.len(), engines.len());
    for (s, e) in summaries.iter().zip(engines) {
        assert_eq!(s.name, e.device().adapter);
        assert_eq!(s.backend, e.device().backend);
    }
    if let Some(first) = engines.first() {
        assert_eq!(xent::Engine::gpu().unwrap().device(), first.device());
    }
    // `new()` takes a hardware GPU, and never a software one over the fast CPU path.
    let auto = xent::Engine::new();
    match engines.iter().find(|e| e.device().device_type != "Cpu") {
        Some(hardware) => assert_eq!(auto.device(), hardware.device()),
        None => assert_eq!(auto.device(), xent::Engine::cpu().device()),
    }
}

/// Runs a `xent` command that must keep stderr clean (nothing from the drivers either).
fn xent(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let (code, stdout, stderr) = common::run_cli(args, env);
    assert!(stderr.is_empty(), "xent {args:?} wrote to stderr: {stderr}");
    (code == 0, stdout)
}

#[test]
fn cli_adapters_lists_each_with_backend_limits_and_features() {
    let (ok, out) = xent(&["adapters"], &[]);
    assert!(ok);
    for a in xent::gpu::adapters() {
        assert!(out.contains(&a.name), "{out}");
        assert!(out.contains(&format!("backend {}", a.backend)), "{out}");
    }
    if !common::gpus().is_empty() {
        assert!(out.contains("max_storage_buffer_binding_size = "), "{out}");
        assert!(out.contains("features: "), "{out}");
    }
}

/// Without a desktop session (no `XDG_RUNTIME_DIR`, or an empty or relative one) the drivers
/// print nothing through the CLI (checked inside `xent`).
#[test]
fn cli_stderr_stays_clean_without_a_session() {
    for dir in ["", "relative/dir"] {
        let (ok, _) = xent(&["adapters"], &[("XDG_RUNTIME_DIR", dir)]);
        assert!(ok);
    }
}

#[test]
fn adapter_name_filter_is_honoured() {
    let (ok, out) = xent(
        &["adapters"],
        &[(xent::gpu::ADAPTER_NAME_VAR, "no such adapter anywhere")],
    );
    assert!(ok);
    assert!(out.contains("wgpu found no adapter"), "{out}");
}

#[test]
fn demo_is_the_default_and_prints_a_row_per_device() {
    let (ok, out) = xent(&[], &[]);
    assert!(ok, "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with('[')).collect();
    // The reference, every adapter, and the fast CPU path.
    assert_eq!(rows.len(), 2 + common::gpus().len(), "{out}");
    let loss = |row: &str| {
        row.split_whitespace()
            .rev()
            .nth(2)
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    let reference = loss(rows[0]);
    for row in &rows[1..] {
        let diff = (loss(row) - reference).abs();
        assert!(diff <= 1e-5 * reference, "{row} vs reference {reference}");
    }
}

#[test]
fn verify_checks_every_engine_on_every_case_and_passes() {
    let (code, out, err) = common::run_cli(&["verify"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let engines: Vec<String> = common::under_test()
        .iter()
        .map(|e| e.device().to_string())
        .collect();
    let rows: Vec<&str> = out.lines().filter(|l| l.ends_with(" ok")).collect();
    // Eleven cases and two linear heads, each on every adapter and the fast CPU path; on each
    // adapter a device-resident call and the vocabulary sharded on device buffers, and a linear
    // head on device buffers, whole and sharded; and logits and a linear head each sharded over
    // every engine.
    let adapters = common::gpus().len();
    assert_eq!(rows.len(), 13 * engines.len() + 4 * adapters + 2, "{out}");
    for engine in &engines {
        let device_resident = 4 * usize::from(!engine.contains("cpu"));
        assert_eq!(
            rows.iter().filter(|r| r.contains(engine.as_str())).count(),
            13 + device_resident,
            "{out}"
        );
    }
    assert_eq!(
        rows.iter().filter(|r| r.starts_with("linear head")).count(),
        2 * engines.len() + 2 * adapters + 1,
        "{out}"
    );
    let shards = format!("{} engines, a shard each", engines.len());
    assert!(
        rows.iter()
            .any(|r| r.starts_with("linear head, W in shards") && r.contains(&shards)),
        "{out}"
    );
    assert!(
        rows.iter()
            .any(|r| r.contains("vocabulary shards") && r.contains(&shards)),
        "{out}"
    );
    assert!(!out.contains("FAILED"), "{out}");
    let summary = format!("{n} of {n} checks passed", n = rows.len());
    assert!(out.contains(&summary), "{out}");
    let (code, _, err) = common::run_cli(&["verify", "--seed", "x"], &[]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
}
