//! `xent loss --linear-weight`: a PyTorch fixture's loss and its three gradients through the
//! command line, the head read from a `.safetensors` file by tensor name, and bad input as one
//! line naming the flag, with no gradient file left behind.

mod common;

use std::path::{Path, PathBuf};

use common::{read_input, read_vector, relative_norm_error, run_cli, safetensors_file};
use serde_json::Value;
use xent::io::Floats;

const CASE: &str = "lce_large_bias_weight_ignore_64x32x1000";

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/linear_cross_entropy")
        .join(CASE)
        .join(file)
}

/// A folder of its own for `test`, emptied first.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xent-linear-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A float64 `.npy` fixture as float32.
fn expected(file: &str) -> Vec<f32> {
    let (values, _) = read_input(&fixture(file))
        .map(|(v, s)| (v.to_f32(), s))
        .or_else(|_| read_vector(&fixture(file)).map(|v| (v, [0, 0])))
        .unwrap();
    values
}

/// The arguments of the fixture's linear loss with the head in `weight`, its bias, target and
/// class weights but where `more` gives those flags, and `more` after.
fn args(weight: &[String], more: &[String]) -> Vec<String> {
    let mut a: Vec<String> = ["loss", "--device", "auto", "--json", "--input"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push(path(&fixture("hidden.npy")));
    a.extend(weight.iter().cloned());
    for (flag, file) in [
        ("--linear-bias", "bias.npy"),
        ("--target", "target.npy"),
        ("--weight", "class_weight.npy"),
    ] {
        if !more.iter().any(|m| m == flag) {
            a.extend([flag.to_string(), path(&fixture(file))]);
        }
    }
    a.extend(more.iter().cloned());
    a
}

#[test]
fn the_loss_and_three_gradients_match_pytorch() {
    let case: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("case.json")).unwrap()).unwrap();
    let dir = folder("pytorch");
    let outs = ["gh.npy", "gw.npy", "gb.npy"].map(|f| dir.join(f));
    let grads: Vec<String> = [
        "--grad-out",
        "--linear-weight-grad-out",
        "--linear-bias-grad-out",
    ]
    .iter()
    .zip(&outs)
    .flat_map(|(flag, out)| [flag.to_string(), path(out)])
    .collect();
    let weight = ["--linear-weight".to_string(), path(&fixture("weight.npy"))];
    let (code, stdout, stderr) = run_cli(&args(&weight, &grads), &[]);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        doc["device"], "cpu",
        "auto takes the fast CPU path for a linear head"
    );
    assert_eq!(doc["valid_rows"], case["valid_rows"]);
    let (loss, want) = (
        doc["loss"].as_f64().unwrap(),
        case["expected"]["mean"].as_f64().unwrap(),
    );
    assert!(
        (loss - want).abs() <= 1e-5 * want.abs(),
        "{loss} against {want}"
    );
    for (out, file) in outs.iter().zip([
        "grad_hidden_mean.npy",
        "grad_weight_mean.npy",
        "grad_bias_mean.npy",
    ]) {
        let got = match read_input(out) {
            Ok((Floats::F32(v), _)) => v.into_owned(),
            _ => read_vector(out).unwrap(),
        };
        let err = relative_norm_error(&got, &expected(file));
        assert!(err <= 1e-5, "{file}: relative norm error {err:e}");
    }
    // The head read by name out of a model's file of several tensors gives the same loss.
    let (w, shape) = read_input(&fixture("weight.npy")).unwrap();
    let model = dir.join("model.safetensors");
    let other = Floats::F32(vec![1.0; 6].into());
    let bytes = safetensors_file(&[("lm_head.weight", &w, &shape), ("wte", &other, &[2, 3])]);
    std::fs::write(&model, bytes).unwrap();
    let weight = [
        "--linear-weight".to_string(),
        path(&model),
        "--linear-weight-tensor".to_string(),
        "lm_head.weight".to_string(),
    ];
    let (code, stdout, stderr) = run_cli(&args(&weight, &[]), &[]);
    assert_eq!(code, 0, "{stderr}");
    let named: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(named["loss"], doc["loss"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_one_line_naming_the_flag_and_leaves_no_gradient() {
    let dir = folder("bad");
    let gh = dir.join("gh.npy");
    let short_bias = dir.join("short_bias.npy");
    common::write_npy(&short_bias, &[3], &[0.5_f32, 1.0, 2.0]);
    let far_target = dir.join("far.npy");
    common::write_npy(&far_target, &[64], &[1000_i64; 64]);
    let narrow = dir.join("narrow.npy");
    common::write_npy(&narrow, &[1000, 31], &vec![0.5_f32; 31_000]);
    let weight = |w: &Path| ["--linear-weight".to_string(), path(w)];
    let grad = ["--grad-out".to_string(), path(&gh)];
    let with = |flag: &str, file: &Path| {
        let mut more = grad.to_vec();
        more.extend([flag.to_string(), path(file)]);
        more
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (args(&weight(&narrow), &grad), "--linear-weight: "),
        (
            args(
                &weight(&fixture("weight.npy")),
                &with("--linear-bias", &short_bias),
            ),
            "--linear-bias: ",
        ),
        (
            args(
                &weight(&fixture("weight.npy")),
                &with("--target", &far_target),
            ),
            "--target: ",
        ),
        (
            args(&[], &with("--linear-bias-grad-out", &dir.join("gb.npy"))),
            "--linear-bias: ",
        ),
        (
            args(
                &weight(&fixture("weight.npy")),
                &with("--linear-bias", Path::new("none")),
            ),
            "--linear-bias ",
        ),
        (
            args(
                &weight(&fixture("weight.npy")),
                &with("--loss", Path::new("kl-div")),
            ),
            "--linear-weight: ",
        ),
    ];
    for (args, start) in cases {
        let (code, stdout, stderr) = run_cli(&args, &[]);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("xent: error: {start}")),
            "{stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("gh.npy") || n.contains("gb.npy"))
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
