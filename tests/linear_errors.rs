//! Fused linear cross-entropy's bad input, each a typed error on both CPU engines with nothing
//! written into the caller's slices; a linear request and the linear options only where they
//! apply; and a GPU engine's refusal of a linear request (on every adapter there is, none needed).

use xent::{
    Argument, Base, Engine, Error, Input, LinearGradsMut, Reduction, Request, Shard, Target,
};

mod common;

/// A `LengthMismatch` of `what`.
fn length(what: &'static str) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::LengthMismatch { what: w, .. } if *w == what)
}

/// An `InvalidOption` of `name`.
fn option(name: &'static str) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::InvalidOption { option, .. } if *option == name)
}

/// Sentinel values that an error must leave as they are.
const SENTINEL: f32 = 7.25;

/// Asserts that `request` fails as `check` says on both CPU engines, through `validate`,
/// `compute` and `compute_linear_into`, with each slice (of the lengths given) left as it was.
fn refused(what: &str, request: &Request, [h, w, b]: [usize; 3], check: impl Fn(&Error) -> bool) {
    let err = request.validate().unwrap_err();
    assert!(check(&err), "{what}: validate gave {err:?}");
    for engine in [Engine::cpu(), Engine::reference()] {
        for grad in [false, true] {
            let err = engine.compute(&request.with_grad(grad)).unwrap_err();
            assert!(
                check(&err),
                "{what}: {} compute gave {err:?}",
                engine.device()
            );
        }
        let (mut dh, mut dw, mut db) = (vec![SENTINEL; h], vec![SENTINEL; w], vec![SENTINEL; b]);
        for add in [false, true] {
            let grads = LinearGradsMut {
                hidden: Some(&mut dh),
                weight: Some(&mut dw),
                bias: (b > 0).then_some(&mut db[..]),
                add,
            };
            let err = engine.compute_linear_into(request, grads).unwrap_err();
            assert!(
                check(&err),
                "{what}: {} compute_linear_into gave {err:?}",
                engine.device()
            );
        }
        let untouched = [&dh, &dw, &db]
            .iter()
            .all(|s| s.iter().all(|&x| x == SENTINEL));
        assert!(
            untouched,
            "{what}: {} wrote into the caller's slices",
            engine.device()
        );
    }
}

#[test]
fn bad_input_is_a_typed_error_and_nothing_is_written() {
    const N: usize = 3;
    const D: usize = 4;
    const V: usize = 5;
    fn lce<'a>(h: &'a [f32], w: &'a [f32], t: Target<'a>) -> Request<'a> {
        Request::linear_cross_entropy(h, [N, D], w, [V, D], t)
    }
    let (n, d, v) = (N, D, V);
    let h = vec![0.5_f32; n * d];
    let w = vec![0.25_f32; v * d];
    let bias = vec![0.1_f32; v];
    let t = [1_i64, 4, -100];
    let sizes = [n * d, v * d, v];
    let good = lce(&h, &w, Target::ClassesI64(&t)).linear_bias(&bias);
    good.validate().unwrap();

    let w5 = vec![0.25_f32; v * 5];
    let mismatch = Request::linear_cross_entropy(&h[..], [n, d], &w5[..], [v, 5], &t[..]);
    refused(
        "D of 4 and 5",
        &mismatch,
        [n * d, v * 5, 0],
        option("linear_weight"),
    );
    let short = lce(&h[1..], &w, Target::ClassesI64(&t));
    refused("hidden of N·D − 1", &short, sizes, length("input"));
    assert_eq!(
        short.validate().unwrap_err().argument(),
        Some(Argument::Input)
    );
    refused(
        "weight of V·D − 1",
        &lce(&h, &w[1..], Target::ClassesI64(&t)),
        sizes,
        length("linear_weight"),
    );
    refused(
        "bias of V − 1",
        &good.linear_bias(&bias[1..]),
        sizes,
        length("linear_bias"),
    );
    for (bad, argument) in [
        (
            lce(&h, &w[1..], Target::ClassesI64(&t)),
            Argument::LinearWeight,
        ),
        (mismatch, Argument::LinearWeight),
        (good.linear_bias(&bias[1..]), Argument::LinearBias),
    ] {
        assert_eq!(bad.validate().unwrap_err().argument(), Some(argument));
    }
    let too_large =
        Request::linear_cross_entropy(&h[..], [usize::MAX / 2, d], &w[..], [v, d], &t[..]);
    let err = too_large.validate().unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { .. } | Error::LengthMismatch { .. }),
        "{err:?}"
    );

    for (target, what) in [(5_i64, "V"), (-1, "-1")] {
        let t = [1, target, 0];
        let bad = lce(&h, &w, Target::ClassesI64(&t)).linear_bias(&bias);
        refused(&format!("target {what}"), &bad, sizes, |e| {
            matches!(e, Error::TargetOutOfRange { row: 1, .. })
        });
        assert_eq!(
            bad.validate().unwrap_err().argument(),
            Some(Argument::Target)
        );
        let t32 = t.map(|t| t as i32);
        let bad = lce(&h, &w, Target::ClassesI32(&t32));
        refused(
            &format!("i32 target {what}"),
            &bad,
            [n * d, v * d, 0],
            |e| matches!(e, Error::TargetOutOfRange { row: 1, .. }),
        );
    }
    refused(
        "two targets for three rows",
        &lce(&h, &w, Target::ClassesI64(&t[..2])),
        sizes,
        |e| e.argument() == Some(Argument::Target),
    );
    let soft = vec![0.2_f32; n * v - 1];
    refused(
        "soft target of N·V − 1",
        &lce(&h, &w, Target::Dense(&soft)),
        sizes,
        |e| {
            matches!(e, Error::LengthMismatch { what: "target", .. })
                && e.argument() == Some(Argument::Target)
        },
    );
    refused(
        "class weight of V − 1",
        &good.weight(&bias[1..]),
        sizes,
        |e| e.argument() == Some(Argument::Weight),
    );
    refused(
        "negative class weight",
        &good.weight(&[1.0, -1.0, 1.0, 1.0, 1.0]),
        sizes,
        |e| {
            matches!(e, Error::InvalidWeight { class: 1, .. })
                && e.argument() == Some(Argument::Weight)
        },
    );

    // Options cross-entropy on logits refuses, and those a linear request cannot take.
    refused(
        "probabilities",
        &good.input_kind(xent::InputKind::Probs),
        sizes,
        |e| matches!(e, Error::Unsupported { .. }) && e.argument() == Some(Argument::InputKind),
    );
    refused(
        "log-probabilities",
        &good.input_kind(xent::InputKind::LogProbs),
        sizes,
        |e| matches!(e, Error::Unsupported { .. }),
    );
    refused("log_target", &good.log_target(true), sizes, |e| {
        e.argument() == Some(Argument::LogTarget)
    });
    refused(
        "label smoothing 1.5",
        &good.label_smoothing(1.5),
        sizes,
        |e| e.argument() == Some(Argument::LabelSmoothing),
    );
    refused("z-loss −1", &good.z_loss(-1.0), sizes, |e| {
        e.argument() == Some(Argument::ZLoss)
    });
    refused(
        "z-loss in base 2",
        &good.z_loss(1e-3).base(Base::Two),
        sizes,
        |e| e.argument() == Some(Argument::ZLoss),
    );
    refused("soft cap 0", &good.softcap(0.0), sizes, |e| {
        e.argument() == Some(Argument::Softcap)
    });
    refused("gradient in place", &good.grad_in_place(true), sizes, |e| {
        matches!(
            e,
            Error::Unsupported {
                option: "grad_in_place",
                ..
            }
        )
    });

    // Strict mode: NaN and +inf in H, W and b.
    for (at, value) in [(0, f32::NAN), (1, f32::INFINITY), (2, f32::NAN)] {
        let (mut h2, mut w2, mut b2) = (h.clone(), w.clone(), bias.clone());
        [&mut h2[5], &mut w2[7], &mut b2[3]][at].clone_from(&value);
        let what = ["input", "linear_weight", "linear_bias"][at];
        let strict = lce(&h2, &w2, Target::ClassesI64(&t))
            .linear_bias(&b2)
            .strict(true);
        refused(
            &format!("{value} in {what}"),
            &strict,
            sizes,
            |e| matches!(e, Error::NonFinite { what: w, .. } if *w == what),
        );
        // Without strict mode the value makes its rows NaN, and no error.
        let out = Engine::cpu()
            .compute(&strict.strict(false).reduction(Reduction::None))
            .unwrap();
        assert!(
            out.loss.values().unwrap().iter().any(|x| x.is_nan()),
            "{what}"
        );
    }
    let err = lce(&[f32::NAN; 12], &w, Target::ClassesI64(&t))
        .strict(true)
        .validate()
        .unwrap_err();
    assert_eq!(err.argument(), Some(Argument::Input));

    // The gradients' slices: a wrong length, or one for a bias the head lacks.
    let no_bias = lce(&h, &w, Target::ClassesI64(&t));
    for (request, lengths, name) in [
        (&good, [n * d + 1, v * d, v], "hidden states' gradient"),
        (&good, [n * d, v * d - 1, v], "linear weight's gradient"),
        (&good, [n * d, v * d, v + 1], "linear bias's gradient"),
        (&good, [n * d, v * d, 0], "linear bias's gradient"),
        (&no_bias, [n * d, v * d, v], "linear bias's gradient"),
    ] {
        for engine in [Engine::cpu(), Engine::reference()] {
            let (mut dh, mut dw, mut db) = (
                vec![SENTINEL; lengths[0]],
                vec![SENTINEL; lengths[1]],
                vec![SENTINEL; lengths[2]],
            );
            let grads = LinearGradsMut {
                hidden: Some(&mut dh),
                weight: Some(&mut dw),
                bias: Some(&mut db),
                add: false,
            };
            let err = engine.compute_linear_into(request, grads).unwrap_err();
            assert!(option(name)(&err), "{name} {lengths:?}: {err:?}");
            assert!(
                [&dh, &dw, &db]
                    .iter()
                    .all(|s| s.iter().all(|&x| x == SENTINEL)),
                "{name} {lengths:?}: written"
            );
        }
    }
}

/// `Engine::compute` of a linear request with its gradient checks the request before it
/// allocates dH [N·D] and dW [V·D]: a shape whose N·D or V·D overflows, or is only huge, is the
/// typed error the same call without the gradient gives, not an allocation.
#[test]
fn a_gradient_of_an_impossible_shape_is_an_error() {
    let (h, w, t) = ([0.5_f32; 12], [0.25_f32; 20], [1_i64, 2, 3]);
    for (n, v) in [(usize::MAX / 2, 5), (3, usize::MAX / 8)] {
        let request = Request::linear_cross_entropy(&h[..], [n, 4], &w[..], [v, 4], &t[..]);
        assert!(matches!(request.validate(), Err(Error::TooLarge { .. })));
        let out = std::panic::catch_unwind(|| Engine::cpu().compute(&request.with_grad(true)));
        let out = out.unwrap_or_else(|_| panic!("[{n}, 4] × [{v}, 4] with the gradient panicked"));
        assert!(matches!(out, Err(Error::TooLarge { .. })), "{out:?}");
    }
}

/// A linear request only goes through `compute`, `compute_linear_into` and the shard passes
/// (`shard_stats`, and `shard_linear_grad`, not `shard_grad`), the linear options
/// only on a linear request, and a GPU engine refuses a linear request before anything runs.
#[test]
fn linear_requests_and_options_stay_in_their_place() {
    let (h, w, b, t) = ([0.5_f32; 6], [0.25_f32; 9], [0.1_f32; 3], [0_i64, 2]);
    let linear =
        Request::linear_cross_entropy(&h[..], [2, 3], &w[..], [3, 3], &t[..]).linear_bias(&b);
    let logits = [1.0_f32, 2.0, 3.0, 0.5, 0.25, 0.125];
    let shard = Shard {
        first_class: 0,
        total_classes: 3,
    };
    let not_here = |e: &Error| matches!(e, Error::Unsupported { .. });
    let plain = Request::cross_entropy(&logits[..], [2, 3], &t[..]);
    for (name, request, check) in [
        (
            "linear request",
            linear,
            &not_here as &dyn Fn(&Error) -> bool,
        ),
        (
            "linear_bias on a plain request",
            plain.linear_bias(&b),
            &|e: &Error| {
                matches!(
                    e,
                    Error::InvalidOption {
                        option: "linear_bias",
                        ..
                    }
                )
            },
        ),
        (
            "linear_chunk_bytes on a plain request",
            plain.linear_chunk_bytes(64),
            &|e: &Error| {
                matches!(
                    e,
                    Error::InvalidOption {
                        option: "linear_chunk_bytes",
                        ..
                    }
                )
            },
        ),
    ] {
        for engine in [Engine::cpu(), Engine::reference()] {
            let what = format!("{} {name}", engine.device());
            let mut grad = [SENTINEL; 6];
            let err = engine.compute_into(&request, &mut grad).unwrap_err();
            assert!(
                check(&err) && grad == [SENTINEL; 6],
                "{what}: compute_into gave {err:?}"
            );
            let mut in_place = logits;
            let err = engine
                .compute_in_place(&request.with_input(Input::F32(&[])), &mut in_place)
                .unwrap_err();
            assert!(
                check(&err) && in_place == logits,
                "{what}: compute_in_place gave {err:?}"
            );
            if name == "linear request" {
                // A shard of a head: its statistics are shard_stats', its gradients
                // shard_linear_grad's, not shard_grad's.
                let stats = engine.shard_stats(&request, shard).unwrap();
                let merged = xent::merge_shards(&[stats], &t, None, &Default::default()).unwrap();
                let err = engine
                    .shard_grad(&request, shard, &merged, &mut [0.0; 6])
                    .unwrap_err();
                assert!(
                    err.to_string().contains("Engine::shard_linear_grad"),
                    "{what}: shard_grad gave {err:?}"
                );
            } else {
                let err = engine.shard_stats(&request, shard).unwrap_err();
                assert!(check(&err), "{what}: shard_stats gave {err:?}");
                let err = engine.compute(&request).unwrap_err();
                assert!(check(&err), "{what}: compute gave {err:?}");
                let err = request.validate().unwrap_err();
                assert!(check(&err), "{what}: validate gave {err:?}");
            }
        }
    }
}
