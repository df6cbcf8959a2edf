//! The benchmark harness: `xent bench` end to end on every device here, its outputs and its
//! errors, and the library calls it is built on (kernel times, probes, uploads).

mod common;

use common::{gpus, logits, rng, run_cli, targets};
use serde_json::Value;
use xent::{Clock, Engine, Request};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xent-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir.join(name)
}

#[test]
fn every_device_gets_its_rows_and_every_output_is_written() {
    let (json, csv, svg) = (temp("rows.json"), temp("rows.csv"), temp("plot.svg"));
    let (code, stdout, stderr) = run_cli(
        &[
            "bench",
            "--shape",
            "33x257",
            "--shape",
            "3x5",
            "--runs",
            "2",
            "--warmup",
            "1",
            "--json",
            json.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("33x257") && stdout.contains("GB/s"),
        "{stdout}"
    );
    let rows: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = rows.as_array().expect("an array of rows");
    let count = |measure: &str, shape: &str| {
        rows.iter()
            .filter(|r| r["measure"] == measure && r["shape"] == shape)
            .count()
    };
    for shape in ["33x257", "3x5"] {
        // Per GPU: a probe, an upload, and kernel and end-to-end rows for fwd and fwd+bwd; on
        // the CPU a probe, and call rows for the fast path and the reference.
        assert_eq!(count("probe", shape), gpus().len() + 1, "{shape}");
        assert_eq!(count("upload", shape), gpus().len(), "{shape}");
        assert_eq!(count("kernel", shape), 2 * gpus().len(), "{shape}");
        assert_eq!(count("end-to-end", shape), 2 * gpus().len(), "{shape}");
        assert_eq!(count("call", shape), 4, "{shape}");
    }
    for row in rows {
        let median = row["median_s"].as_f64().unwrap();
        assert!(median > 0.0 && median.is_finite(), "{row}");
        assert!(row["min_s"].as_f64().unwrap() <= median, "{row}");
        assert!(row["max_s"].as_f64().unwrap() >= median, "{row}");
        assert_eq!(row["runs"], 2, "{row}");
        // The logits read, and for fwd+bwd the f32 gradient written.
        let per_element = if row["pass"] == "fwd+bwd" { 8 } else { 4 };
        let bytes = row["batch"].as_u64().unwrap() * row["classes"].as_u64().unwrap() * per_element;
        assert_eq!(row["bytes"], bytes, "{row}");
        let gbs = bytes as f64 / median / 1e9;
        assert!(
            (row["gb_per_s"].as_f64().unwrap() - gbs).abs() <= 1e-9 * gbs,
            "{row}"
        );
        if row["measure"] != "probe" {
            assert!(row["of_probe"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv.lines().count(), rows.len() + 1);
    assert!(csv.starts_with("shape,batch,classes,pass,path,measure"));
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("bytes per row") && svg.contains("probe"));
}

#[test]
fn baselines_join_the_table_and_bad_ones_are_one_line_errors() {
    let good = temp("candle.jsonl");
    std::fs::write(
        &good,
        r#"{"impl":"candle","version":"0.11.1","shape":"16x100","pass":"fwd","threads":2,"runs":5,"median_s":0.5,"min_s":0.4,"max_s":0.6}"#,
    )
    .unwrap();
    let args = |baseline: &str| {
        [
            "bench",
            "--shape",
            "16x100",
            "--device",
            "cpu",
            "--pass",
            "fwd",
            "--runs",
            "1",
            "--baseline",
            baseline,
        ]
        .map(String::from)
    };
    let (code, stdout, stderr) = run_cli(&args(good.to_str().unwrap()), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("candle 0.11.1 (cpu, 2 threads)"),
        "{stdout}"
    );

    let bad = temp("bad.jsonl");
    std::fs::write(&bad, r#"{"impl":"candle","shape":"16x100"}"#).unwrap();
    for path in [bad.to_str().unwrap(), "/no/such/file.jsonl"] {
        let (code, _, stderr) = run_cli(&args(path), &[]);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("xent: error: "), "{stderr}");
    }
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["bench", "--shape", "0x10"][..],
        &["bench", "--shape", "10"],
        &["bench", "--runs", "0"],
        &["bench", "--device", "tpu"],
    ] {
        let (code, _, stderr) = run_cli(args, &[]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn kernel_times_probes_and_uploads_are_measured_on_every_engine() {
    let mut rng = rng("bench timings");
    let (batch, classes) = (40, 3000);
    let x = logits(&mut rng, batch * classes, 3.0);
    let t = targets(&mut rng, batch, classes, 0.0);
    let request = Request::cross_entropy(&x[..], [batch, classes], &t[..]);
    let want = Engine::reference().compute(&request).unwrap();
    for engine in gpus().iter().chain([&Engine::cpu()]) {
        let mut grad = vec![0.0_f32; batch * classes];
        let (out, kernel) = engine.compute_timed(&request, Some(&mut grad)).unwrap();
        common::assert_scalar(
            &engine.device().to_string(),
            out.loss.scalar().unwrap(),
            want.loss.scalar().unwrap(),
            1e-5,
        );
        assert!(grad.iter().any(|&g| g != 0.0), "{}", engine.device());
        assert!(kernel.seconds > 0.0, "{}: {kernel:?}", engine.device());
        let probe = engine.bandwidth_probe(&x).unwrap();
        assert!(probe.seconds > 0.0, "{}", engine.device());
        let upload = engine.upload_time(&x).unwrap();
        match engine.device().kind {
            xent::DeviceKind::Gpu => {
                assert_ne!(kernel.clock, Clock::Host);
                assert!(upload.is_some_and(|s| s > 0.0), "{}", engine.device());
            }
            xent::DeviceKind::Cpu => {
                assert_eq!(kernel.clock, Clock::Host);
                assert_eq!(upload, None);
            }
        }
    }
}

#[test]
fn the_autotune_runs_before_the_timed_calls_and_is_reported() {
    let (code, stdout, stderr) = run_cli(
        &[
            "bench",
            "--shape",
            "16x300",
            "--device",
            "gpu",
            "--pass",
            "fwd",
            "--runs",
            "1",
            "--autotune",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.matches("autotune on ").count(),
        gpus().len(),
        "{stdout}"
    );
    // Every class was chosen before the timed calls, none left trying.
    assert!(!stdout.contains("trying"), "{stdout}");
    assert_eq!(
        stdout
            .matches("cross-entropy f32, B ≤ 2^4, C ≤ 2^9: a ")
            .count(),
        gpus().len(),
        "{stdout}"
    );
}

/// Other losses and 16-bit input: the bytes a call reads are the input's (2 per f16 or bf16
/// value) plus a dense target's (4 per value), and fwd+bwd also writes an f32 gradient.
#[test]
fn other_losses_and_16_bit_dtypes_count_the_bytes_they_read() {
    for dtype in ["f16", "bf16"] {
        for (loss, per_element) in [("kl-div", 6), ("binary-cross-entropy", 6), ("entropy", 2)] {
            let json = temp(&format!("{loss}-{dtype}.json"));
            let (code, stdout, stderr) = run_cli(
                &[
                    "bench",
                    "--shape",
                    "8x100",
                    "--loss",
                    loss,
                    "--dtype",
                    dtype,
                    "--runs",
                    "1",
                    "--device",
                    "cpu",
                    "--json",
                    json.to_str().unwrap(),
                ],
                &[],
            );
            assert_eq!(code, 0, "{loss} {dtype}: {stderr}");
            assert!(
                stdout.starts_with(&format!("xent bench: {loss} loss, {dtype} input,")),
                "{stdout}"
            );
            let rows: Value =
                serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
            let rows = rows.as_array().unwrap();
            assert_eq!(rows.len(), 3, "{loss} {dtype}: probe and two calls");
            for row in rows {
                let written = if row["pass"] == "fwd+bwd" { 4 } else { 0 };
                assert_eq!(
                    row["bytes"],
                    8 * 100 * (per_element + written),
                    "{loss} {dtype}: {row}"
                );
            }
        }
    }
}

#[test]
fn the_in_place_pass_times_the_fast_path_and_needs_f32() {
    let args = |dtype: &str| {
        [
            "bench",
            "--shape",
            "16x100",
            "--device",
            "cpu",
            "--device",
            "reference",
            "--pass",
            "in-place",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--dtype",
            dtype,
        ]
        .map(String::from)
    };
    let (code, stdout, stderr) = run_cli(&args("f32"), &[]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("16x100")).collect();
    // The fast path's probe and its in-place call; the reference has no in-place row.
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        rows.iter()
            .any(|r| r.contains("fwd+bwd in place [cpu/cpu fast") && r.contains("call")),
        "{stdout}"
    );
    let (code, _, stderr) = run_cli(&args("f16"), &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("f32"), "{stderr}");
}

/// `--linear-shape` alone runs no logits shape: on every device but the reference, the GEMM
/// probe of each pass; the calls of the fast path and the reference, and on each adapter its
/// calls end to end and their kernels; in GFLOP/s with their peak memory, and each adapter's
/// GEMM probe against the fast CPU path's.
#[test]
fn linear_shapes_get_gflops_probes_and_peak_memory() {
    let (json, csv) = (temp("linear.json"), temp("linear.csv"));
    let (code, stdout, stderr) = run_cli(
        &[
            "bench",
            "--linear-shape",
            "64x32x1000",
            "--runs",
            "2",
            "--warmup",
            "1",
            "--json",
            json.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("GFLOP/s") && stdout.contains("peak MiB") && stdout.contains("/cpu"),
        "{stdout}"
    );
    assert!(!stderr.contains("no linear rows on"), "{stderr}");
    let rows: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = rows.as_array().expect("an array of rows");
    // On the CPU: probes fwd and fwd+bwd, and fwd and fwd+bwd calls on the fast path and the
    // reference (64·32·1000 multiply-adds are within --reference-max-elements); on each
    // adapter, probes fwd and fwd+bwd, and for each pass an end-to-end and a kernel row.
    let adapters = gpus().len();
    assert_eq!(rows.len(), 6 + 6 * adapters, "{rows:?}");
    let count = |f: &dyn Fn(&Value) -> bool| rows.iter().filter(|r| f(r)).count();
    let path = |r: &Value| r["path"].as_str().unwrap().to_string();
    assert_eq!(count(&|r| path(r) == "cpu gemm probe"), 2);
    assert_eq!(count(&|r| path(r).contains("cpu fast")), 2);
    assert_eq!(count(&|r| path(r).contains("reference")), 2);
    assert_eq!(count(&|r| r["measure"] == "probe"), 2 + 2 * adapters);
    assert_eq!(count(&|r| r["measure"] == "end-to-end"), 2 * adapters);
    assert_eq!(count(&|r| r["measure"] == "kernel"), 2 * adapters);
    for engine in gpus() {
        let name = engine.device().to_string();
        assert_eq!(count(&|r| path(r) == format!("{name} gemm probe")), 2);
        assert_eq!(count(&|r| path(r) == name), 4);
    }
    for row in rows {
        assert_eq!(row["shape"], "64x32x1000", "{row}");
        assert_eq!(
            (&row["batch"], &row["dim"], &row["classes"]),
            (&Value::from(64), &Value::from(32), &Value::from(1000))
        );
        assert!(
            row.get("bytes").is_none() && row.get("gb_per_s").is_none(),
            "{row}"
        );
        let gemms = if row["pass"] == "fwd+bwd" { 3 } else { 1 };
        assert_eq!(row["flops"], 2 * 64 * 32 * 1000 * gemms, "{row}");
        let median = row["median_s"].as_f64().unwrap();
        let gflops = row["gflop_per_s"].as_f64().unwrap();
        assert!(gflops > 0.0, "{row}");
        let want = row["flops"].as_f64().unwrap() / median / 1e9;
        assert!((gflops - want).abs() <= 1e-9 * want, "{row}");
        assert!(row["of_probe"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row.get("peak_bytes").is_some(), "{row}");
        let measure = row["measure"].as_str().unwrap();
        if matches!(measure, "call" | "end-to-end") && cfg!(target_os = "linux") {
            assert!(row["peak_bytes"].is_u64(), "{row}");
        }
        assert_eq!(
            row["clock"] == "host",
            measure != "kernel" && (measure != "probe" || row["device"] == "cpu"),
            "{row}"
        );
        // An adapter's GEMM probe stands against the fast CPU path's; no other row does.
        let adapter_probe = measure == "probe" && row["device"] != "cpu";
        let of_cpu = &row["of_cpu_probe"];
        assert_eq!(
            of_cpu.as_f64().is_some_and(|r| r > 0.0),
            adapter_probe,
            "{row}"
        );
        if adapter_probe {
            let cpu = rows
                .iter()
                .find(|p| p["path"] == "cpu gemm probe" && p["pass"] == row["pass"])
                .unwrap();
            let want = gflops / cpu["gflop_per_s"].as_f64().unwrap();
            assert!(
                (of_cpu.as_f64().unwrap() - want).abs() <= 1e-9 * want,
                "{row}"
            );
        }
    }
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv.lines().count(), rows.len() + 1);
    let header = csv.lines().next().unwrap();
    for field in [
        "shape",
        "dim",
        "flops",
        "gflop_per_s",
        "of_probe",
        "peak_bytes",
        "of_cpu_probe",
    ] {
        assert!(header.split(',').any(|h| h == field), "{header}");
    }
    assert!(csv.lines().skip(1).all(|l| l.starts_with("64x32x1000,")));
}

/// On a GPU, a linear call's kernel time (`Engine::compute_linear_timed`) is that of its passes
/// alone, with the call's own results; on the CPU paths, the whole call on the host clock.
#[test]
fn linear_kernel_times_come_with_the_call_on_every_engine() {
    let mut rng = rng("linear kernel times");
    let [n, d, v] = [24, 40, 300];
    let hidden = logits(&mut rng, n * d, 1.0);
    let weight = logits(&mut rng, v * d, 0.3);
    let t = targets(&mut rng, n, v, 0.1);
    let request = Request::linear_cross_entropy(&hidden[..], [n, d], &weight[..], [v, d], &t[..]);
    let want = Engine::cpu().compute(&request.with_grad(true)).unwrap();
    for engine in gpus().iter().chain([&Engine::cpu()]) {
        let mut d_weight = vec![0.0_f32; v * d];
        let grads = xent::LinearGradsMut {
            weight: Some(&mut d_weight),
            ..Default::default()
        };
        let (out, kernel) = engine.compute_linear_timed(&request, grads).unwrap();
        let name = engine.device().to_string();
        common::assert_scalar(
            &name,
            out.loss.scalar().unwrap(),
            want.loss.scalar().unwrap(),
            1e-5,
        );
        let want_weight = &want.linear_grads.as_ref().unwrap().weight;
        assert!(
            common::relative_norm_error(&d_weight, want_weight) < 1e-5,
            "{name}"
        );
        assert!(kernel.seconds > 0.0, "{name}: {kernel:?}");
        let gpu = engine.device().kind == xent::DeviceKind::Gpu;
        assert_eq!(kernel.clock == Clock::Host, !gpu, "{name}: {kernel:?}");
        // A gradient slice of the wrong length is refused before anything runs.
        let mut short = vec![0.0_f32; 3];
        let grads = xent::LinearGradsMut {
            hidden: Some(&mut short),
            ..Default::default()
        };
        assert!(
            engine.compute_linear_timed(&request, grads).is_err(),
            "{name}"
        );
    }
}

/// With both flags both kinds run, each in its own section of the table; the plot draws the
/// logits' rows.
#[test]
fn logits_and_linear_shapes_run_together() {
    let (json, svg) = (temp("both.json"), temp("both.svg"));
    let (code, stdout, stderr) = run_cli(
        &[
            "bench",
            "--shape",
            "16x100",
            "--linear-shape",
            "8x4x50",
            "--device",
            "cpu",
            "--pass",
            "fwd",
            "--runs",
            "1",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("xent bench: cross-entropy loss"),
        "{stdout}"
    );
    assert!(stdout.contains("\nxent bench: linear heads"), "{stdout}");
    let rows: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let shapes: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["shape"].as_str().unwrap())
        .collect();
    // A bandwidth probe and a call on logits; a GEMM probe and a call on the head.
    assert_eq!(shapes, ["16x100", "16x100", "8x4x50", "8x4x50"]);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn bad_linear_shapes_and_options_are_one_line_errors() {
    for (args, want) in [
        (&["bench", "--linear-shape", "0x4x4"][..], 2),
        (&["bench", "--linear-shape", "4x4"], 2),
        (&["bench", "--linear-shape", "4x4x4", "--dtype", "f16"], 1),
        (
            &["bench", "--linear-shape", "4x4x4", "--loss", "entropy"],
            1,
        ),
    ] {
        let (code, _, stderr) = run_cli(args, &[]);
        assert_eq!(code, want, "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("linear-shape"), "{args:?}: {stderr}");
    }
}
