//! The table of bad inputs: each gets its typed error with its exact message, from `validate`
//! and from every engine's `compute`, and from the CLI a nonzero exit and one line naming the
//! argument to fix.

mod common;

use std::path::{Path, PathBuf};

use common::{logits, rng, run_cli, write_npy};
use rand::Rng;
use xent::{Engine, Error, InputKind, LossKind, Request, Target};

/// Every engine a request can reach: the GPU adapters, the fast CPU path and the reference.
fn engines() -> Vec<Engine> {
    common::under_test()
        .into_iter()
        .chain([Engine::reference()])
        .collect()
}

/// `request` fails validation, and every engine's compute (with and without a gradient), with an
/// error that `is_expected` accepts and that reads `message`.
fn refused(case: &str, request: Request, is_expected: fn(&Error) -> bool, message: &str) {
    let check = |how: &str, err: Error| {
        assert!(is_expected(&err), "{case}, {how}: wrong variant {err:?}");
        assert_eq!(err.to_string(), message, "{case}, {how}");
    };
    check("validate", request.validate().unwrap_err());
    for engine in engines() {
        for grad in [false, true] {
            let how = format!("{} with_grad({grad})", engine.device());
            match engine.compute(&request.with_grad(grad)) {
                Ok(out) => panic!("{case}, {how}: computed {:?}", out.loss),
                Err(err) => check(&how, err),
            }
        }
    }
}

#[test]
fn every_bad_input_is_its_typed_error_on_every_engine() {
    let mut rng = rng("bad_input");
    let x = logits(&mut rng, 12, 2.0);
    let ok_targets = [0_i64, 3, 1];
    let probs: Vec<f32> = (0..12).map(|_| rng.random_range(0.0..1.0)).collect();
    let dense: Vec<f32> = probs.iter().map(|p| p / 4.0).collect();

    let ce = |t: &'static [i64]| Request::cross_entropy(&x[..], [3, 4], t);
    refused(
        "target past the classes",
        ce(&[0, 7, 1]),
        |e| {
            matches!(
                e,
                Error::TargetOutOfRange {
                    row: 1,
                    target: 7,
                    classes: 4,
                    ignore_index: -100
                }
            )
        },
        "target 7 at row 1 is outside [0, 4) and is not ignore_index -100",
    );
    refused(
        "negative target that is not ignore_index",
        ce(&[0, 1, -1]),
        |e| {
            matches!(
                e,
                Error::TargetOutOfRange {
                    row: 2,
                    target: -1,
                    ..
                }
            )
        },
        "target -1 at row 2 is outside [0, 4) and is not ignore_index -100",
    );
    refused(
        "input length is not B×C",
        Request::cross_entropy(&x[..11], [3, 4], &ok_targets[..]),
        |e| {
            matches!(
                e,
                Error::LengthMismatch {
                    what: "input",
                    expected: 12,
                    actual: 11,
                    ..
                }
            )
        },
        "input has 11 values, but its shape [3, 4] needs 12",
    );
    refused(
        "target length is not B",
        Request::cross_entropy(&x[..], [3, 4], &ok_targets[..2]),
        |e| {
            matches!(
                e,
                Error::LengthMismatch {
                    what: "target",
                    expected: 3,
                    actual: 2,
                    ..
                }
            )
        },
        "target has 2 values, but its shape [3] needs 3",
    );
    refused(
        "C = 0",
        Request::cross_entropy(&x[..0], [3, 0], &ok_targets[..]),
        |e| matches!(e, Error::NoClasses),
        "logits have 0 classes; cross-entropy needs at least one class",
    );
    refused(
        "weight of the wrong length",
        ce(&[0, 3, 1]).weight(&probs[..3]),
        |e| {
            matches!(
                e,
                Error::LengthMismatch {
                    what: "weight",
                    expected: 4,
                    actual: 3,
                    ..
                }
            )
        },
        "weight has 3 values, but its shape [4] needs 4",
    );
    let negative = [1.0, 0.5, -0.25, 2.0];
    refused(
        "negative weight",
        ce(&[0, 3, 1]).weight(&negative),
        |e| {
            matches!(
                e,
                Error::InvalidWeight {
                    what: "weight",
                    class: 2,
                    ..
                }
            )
        },
        "weight[2] is -0.25; weights must be finite and ≥ 0",
    );
    let nan_weight = [1.0, f32::NAN, 0.5, 2.0];
    refused(
        "NaN weight",
        ce(&[0, 3, 1]).weight(&nan_weight),
        |e| {
            matches!(
                e,
                Error::InvalidWeight {
                    what: "weight",
                    class: 1,
                    ..
                }
            )
        },
        "weight[1] is NaN; weights must be finite and ≥ 0",
    );
    let labels: Vec<f32> = probs.iter().map(|p| p.round()).collect();
    let bce = Request::binary_cross_entropy(&x[..], [3, 4], &labels[..]);
    refused(
        "pos_weight of the wrong length",
        bce.pos_weight(&probs[..5]),
        |e| {
            matches!(
                e,
                Error::LengthMismatch {
                    what: "pos_weight",
                    expected: 4,
                    actual: 5,
                    ..
                }
            )
        },
        "pos_weight has 5 values, but its shape [4] needs 4",
    );
    let inf_weight = [1.0, 2.0, 0.5, f32::INFINITY];
    refused(
        "infinite pos_weight",
        bce.pos_weight(&inf_weight),
        |e| {
            matches!(
                e,
                Error::InvalidWeight {
                    what: "pos_weight",
                    class: 3,
                    ..
                }
            )
        },
        "pos_weight[3] is inf; weights must be finite and ≥ 0",
    );
    for (epsilon, shown) in [(1.5_f32, "1.5"), (-0.1, "-0.1"), (f32::NAN, "NaN")] {
        refused(
            "label_smoothing outside [0, 1]",
            ce(&[0, 3, 1]).label_smoothing(epsilon),
            |e| {
                matches!(
                    e,
                    Error::InvalidOption {
                        option: "label_smoothing",
                        ..
                    }
                )
            },
            &format!("label_smoothing: {shown} is outside [0, 1]"),
        );
    }
    let mut not_probs = probs.clone();
    not_probs[6] = 1.25;
    refused(
        "a probability over 1",
        Request::cross_entropy(&not_probs[..], [3, 4], &ok_targets[..])
            .input_kind(InputKind::Probs),
        |e| {
            matches!(
                e,
                Error::NotAProbability {
                    row: 1,
                    class: 2,
                    ..
                }
            )
        },
        "input[1, 2] is 1.25, not a probability in [0, 1]",
    );
    refused(
        "a float target of the wrong shape",
        Request::kl_div(&x[..], [3, 4], &dense[..8]),
        |e| {
            matches!(
                e,
                Error::LengthMismatch {
                    what: "target",
                    expected: 12,
                    actual: 8,
                    ..
                }
            )
        },
        "target has 8 values, but its shape [3, 4] needs 12",
    );
    refused(
        "class indices where a float target is needed",
        Request::new(
            LossKind::KlDiv,
            &x[..],
            [3, 4],
            Target::ClassesI64(&ok_targets),
        ),
        |e| matches!(e, Error::InvalidTarget { loss: "kl-div", .. }),
        "kl-div: needs a float target of shape [3, 4], not class indices",
    );
    let mut nan = x.clone();
    nan[9] = f32::NAN;
    refused(
        "strict mode on a NaN logit",
        Request::cross_entropy(&nan[..], [3, 4], &ok_targets[..]).strict(true),
        |e| {
            matches!(
                e,
                Error::NonFinite {
                    what: "input",
                    row: 2,
                    class: 1,
                    ..
                }
            )
        },
        "input row 2, class 1 is NaN; strict mode rejects NaN and +inf",
    );
    let mut inf = x.clone();
    inf[4] = f32::INFINITY;
    refused(
        "strict mode on a +inf logit",
        Request::cross_entropy(&inf[..], [3, 4], &ok_targets[..]).strict(true),
        |e| {
            matches!(
                e,
                Error::NonFinite {
                    what: "input",
                    row: 1,
                    class: 0,
                    ..
                }
            )
        },
        "input row 1, class 0 is inf; strict mode rejects NaN and +inf",
    );
    let mut nan_target = dense.clone();
    nan_target[11] = f32::NAN;
    refused(
        "strict mode on a NaN in a float target",
        Request::kl_div(&x[..], [3, 4], &nan_target[..]).strict(true),
        |e| {
            matches!(
                e,
                Error::NonFinite {
                    what: "target",
                    row: 2,
                    class: 3,
                    ..
                }
            )
        },
        "target row 2, class 3 is NaN; strict mode rejects NaN and +inf",
    );
}

#[test]
fn strict_mode_is_off_by_default_and_keeps_minus_infinity_valid() {
    let mut rng = rng("strict_mode");
    let mut x = logits(&mut rng, 12, 2.0);
    x[1] = f32::NEG_INFINITY;
    let targets = [0_i64, 3, 1];
    for engine in engines() {
        let strict = engine
            .compute(&Request::cross_entropy(&x[..], [3, 4], &targets[..]).strict(true))
            .unwrap();
        assert!(
            strict.loss.scalar().unwrap().is_finite(),
            "{}",
            engine.device()
        );
        let mut nan = x.clone();
        nan[6] = f32::NAN;
        let lax = engine
            .compute(
                &Request::cross_entropy(&nan[..], [3, 4], &targets[..])
                    .reduction(xent::Reduction::None),
            )
            .unwrap();
        let rows = lax.loss.values().unwrap();
        assert!(
            rows[1].is_nan() && rows[0].is_finite() && rows[2].is_finite(),
            "{}: {rows:?}",
            engine.device()
        );
    }
}

/// A scratch folder for one test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xent-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn arg(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// Runs `xent loss` with `args` on every device (each GPU backend here, the fast CPU path, the
/// reference and `auto`); expects exit `code`, nothing on stdout, and exactly `line` on stderr.
fn cli_refuses(args: &[String], code: i32, line: &str) {
    let devices = common::cli_devices().into_iter().chain([("auto", None)]);
    for (device, backend) in devices {
        let mut full: Vec<String> = vec!["loss".into()];
        full.extend_from_slice(args);
        full.extend(["--device".into(), device.into()]);
        let env: Vec<(&str, &str)> = backend
            .iter()
            .map(|b| ("WGPU_BACKEND", b.as_str()))
            .collect();
        let (got, stdout, stderr) = run_cli(&full, &env);
        assert_eq!(got, code, "{full:?}: {stderr}");
        assert!(stdout.is_empty(), "{full:?}: {stdout}");
        assert_eq!(stderr, format!("xent: error: {line}\n"), "{full:?}");
    }
}

#[test]
fn every_bad_input_is_a_one_line_cli_error_naming_the_argument() {
    let dir = scratch("bad-input-cli");
    let mut rng = rng("bad_input_cli");
    let input = dir.join("x.npy");
    let x = logits(&mut rng, 12, 2.0);
    write_npy(&input, &[3, 4], &x);
    let file = |name: &str| dir.join(name);
    let npy_i64 = |name: &str, shape: &[usize], data: &[i64]| {
        write_npy(&file(name), shape, data);
        arg(&file(name))
    };
    let npy_f32 = |name: &str, shape: &[usize], data: &[f32]| {
        write_npy(&file(name), shape, data);
        arg(&file(name))
    };
    let ok_target = npy_i64("t.npy", &[3], &[0, 3, 1]);
    let base = |target: &str| -> Vec<String> {
        vec![
            "--input".into(),
            arg(&input),
            "--target".into(),
            target.into(),
        ]
    };
    let with = |target: &str, more: &[&str]| -> Vec<String> {
        let mut args = base(target);
        args.extend(more.iter().map(|s| s.to_string()));
        args
    };

    let out_of_range = npy_i64("t-range.npy", &[3], &[0, 7, 1]);
    cli_refuses(
        &base(&out_of_range),
        1,
        "--target: target 7 at row 1 is outside [0, 4) and is not ignore_index -100",
    );
    let short = npy_i64("t-short.npy", &[2], &[0, 3]);
    cli_refuses(
        &base(&short),
        1,
        "--target: target has 2 values, but its shape [3] needs 3",
    );
    let empty = file("empty.npy");
    write_npy::<f32>(&empty, &[3, 0], &[]);
    cli_refuses(
        &[
            "--input".into(),
            arg(&empty),
            "--target".into(),
            ok_target.clone(),
        ],
        1,
        "--input: logits have 0 classes; cross-entropy needs at least one class",
    );
    let weight3 = npy_f32("w3.npy", &[3], &[1.0, 2.0, 0.5]);
    cli_refuses(
        &with(&ok_target, &["--weight", &weight3]),
        1,
        "--weight: weight has 3 values, but its shape [4] needs 4",
    );
    let negative = npy_f32("w-neg.npy", &[4], &[1.0, 0.5, -0.25, 2.0]);
    cli_refuses(
        &with(&ok_target, &["--weight", &negative]),
        1,
        "--weight: weight[2] is -0.25; weights must be finite and ≥ 0",
    );
    let labels: Vec<f32> = (0..12).map(|_| f32::from(rng.random_bool(0.5))).collect();
    let labels = npy_f32("labels.npy", &[3, 4], &labels);
    let nan_pos = npy_f32("pw-nan.npy", &[4], &[1.0, f32::NAN, 0.5, 2.0]);
    cli_refuses(
        &with(
            &labels,
            &["--loss", "binary-cross-entropy", "--pos-weight", &nan_pos],
        ),
        1,
        "--pos-weight: pos_weight[1] is NaN; weights must be finite and ≥ 0",
    );
    cli_refuses(
        &with(&ok_target, &["--label-smoothing", "1.5"]),
        1,
        "--label-smoothing: 1.5 is outside [0, 1]",
    );
    let mut probs: Vec<f32> = (0..12).map(|_| rng.random_range(0.0..1.0)).collect();
    probs[6] = 1.25;
    let probs = npy_f32("probs.npy", &[3, 4], &probs);
    cli_refuses(
        &[
            "--input".into(),
            probs,
            "--target".into(),
            ok_target.clone(),
            "--input-kind".into(),
            "probs".into(),
        ],
        1,
        "--input: input[1, 2] is 1.25, not a probability in [0, 1]",
    );
    let wrong_shape = npy_f32("soft.npy", &[3, 5], &logits(&mut rng, 15, 1.0));
    cli_refuses(
        &with(&wrong_shape, &["--loss", "kl-div"]),
        1,
        &format!(
            "--target: kl-div: {wrong_shape}: a float target must have the input's shape [3, 4], not [3, 5]"
        ),
    );
    let mut nan = x.clone();
    nan[9] = f32::NAN;
    let nan = npy_f32("nan.npy", &[3, 4], &nan);
    cli_refuses(
        &[
            "--input".into(),
            nan,
            "--target".into(),
            ok_target.clone(),
            "--strict".into(),
        ],
        1,
        "--input: input row 2, class 1 is NaN; strict mode rejects NaN and +inf",
    );
    let missing = arg(&file("missing.npy"));
    cli_refuses(
        &[
            "--input".into(),
            missing.clone(),
            "--target".into(),
            ok_target.clone(),
        ],
        1,
        &format!("--input {missing}: No such file or directory (os error 2)"),
    );
    cli_refuses(
        &with(&ok_target, &["--reduction", "avg"]),
        2,
        "invalid value 'avg' for '--reduction <REDUCTION>' [possible values: mean, sum, none, batchmean]",
    );
    cli_refuses(
        &with(&ok_target, &["--label-smoothing", "lots"]),
        2,
        "invalid value 'lots' for '--label-smoothing <LABEL_SMOOTHING>': invalid float literal",
    );
    cli_refuses(
        &with(&ok_target, &["--frobnicate"]),
        2,
        "unexpected argument '--frobnicate' found",
    );
    // The fast CPU path's spin time comes from the environment; a bad one is refused, not
    // replaced.
    let mut fast = with(&ok_target, &["--device", "cpu"]);
    fast.insert(0, "loss".into());
    let (code, stdout, stderr) = run_cli(&fast, &[("XENT_SPIN_US", "soon")]);
    assert_eq!((code, stdout.as_str()), (1, ""), "{stderr}");
    assert_eq!(
        stderr,
        "xent: error: XENT_SPIN_US: \"soon\" is not a whole number of microseconds\n"
    );
    let (code, _, stderr) = run_cli(&fast, &[("XENT_SPIN_US", "0")]);
    assert_eq!(code, 0, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
