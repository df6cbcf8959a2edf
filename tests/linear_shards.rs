//! Vocabulary shards of a linear head: W (with its bias and class weights) split into shards of
//! uneven width, a 1-class shard among them; each shard's statistics on the fast path or the
//! reference (`Engine::shard_stats`), merged (`merge_shards`), then each shard's gradients
//! (`Engine::shard_linear_grad`): its dW and db slices and its partial dH, summed here as a
//! collective would. Against the unsharded head's `Engine::compute`; the same bits on any number
//! of threads; `add`; chunk budgets; and the typed errors.

mod common;

use std::ops::Range;

use common::in_pool;
use half::bf16;
use rand::Rng;
use xent::{
    Engine, Error, Input, LinearGradsMut, Loss, Options, Output, Reduction, Request, Shard,
    ShardedLoss, Target, merge_shards,
};

/// A random head and batch, [N, D] hidden states, a [V, D] weight, its bias, class weights and
/// class targets (a fifth ignored: -100, and in `targets_0` class 0, which then ignores class 0
/// too).
struct Head {
    size: [usize; 3],
    hidden: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    class_weight: Vec<f32>,
    targets: Vec<i64>,
    targets_0: Vec<i64>,
}

/// How a head is asked: the options, and whether it has class weights and a bias.
#[derive(Clone, Copy, Debug)]
struct Ask {
    options: Options,
    weighted: bool,
    bias: bool,
    chunk_bytes: Option<usize>,
}

impl Head {
    fn new(test: &str, [n, d, v]: [usize; 3]) -> Self {
        let mut rng = common::rng(test);
        let hidden = common::logits(&mut rng, n * d, 1.0);
        // Logits of about N(0, 4), whatever D.
        let weight = common::logits(&mut rng, v * d, 2.0 / (d as f32).sqrt());
        let bias = common::logits(&mut rng, v, 0.5);
        let class_weight = (0..v).map(|_| rng.random_range(0.2..2.0)).collect();
        let targets = common::targets(&mut rng, n, v, 0.2);
        let targets_0 = targets.iter().map(|&t| t.max(0)).collect();
        Head {
            size: [n, d, v],
            hidden,
            weight,
            bias,
            class_weight,
            targets,
            targets_0,
        }
    }

    /// The targets, with the ignored rows' ignore index `ignore_index` (-100 or 0).
    fn targets(&self, ignore_index: i64) -> &[i64] {
        match ignore_index {
            0 => &self.targets_0,
            _ => &self.targets,
        }
    }

    /// The request on the head's classes `classes` (all of them for the unsharded head), over
    /// `hidden` and `weight` (the whole head's values, in a dtype).
    fn request<'a>(
        &'a self,
        [hidden, weight]: [Input<'a>; 2],
        classes: Range<usize>,
        ask: &Ask,
    ) -> Request<'a> {
        let [n, d, _] = self.size;
        let o = &ask.options;
        let weight = rows(weight, classes.start * d..classes.end * d);
        let mut r = Request::linear_cross_entropy(
            hidden,
            [n, d],
            weight,
            [classes.len(), d],
            self.targets(o.ignore_index),
        )
        .reduction(o.reduction)
        .ignore_index(o.ignore_index)
        .label_smoothing(o.label_smoothing)
        .z_loss(o.z_loss);
        if let Some(c) = o.softcap {
            r = r.softcap(c);
        }
        if ask.weighted {
            r = r.weight(&self.class_weight[classes.clone()]);
        }
        if ask.bias {
            r = r.linear_bias(&self.bias[classes]);
        }
        match ask.chunk_bytes {
            Some(bytes) => r.linear_chunk_bytes(bytes),
            None => r,
        }
    }

    fn f32s(&self) -> [Input<'_>; 2] {
        [Input::F32(&self.hidden), Input::F32(&self.weight)]
    }

    fn shard(&self, classes: &Range<usize>) -> Shard {
        Shard {
            first_class: classes.start,
            total_classes: self.size[2],
        }
    }

    /// The merged loss of the shards `cuts`, shard k's statistics and gradients on
    /// `engines[k % engines.len()]`, with the gradients' slices as `Grads` holds them: dW and db
    /// the shards' slices side by side, and dH the sum of their partial ones, in shard order.
    fn sharded(
        &self,
        inputs: [Input; 2],
        cuts: &[Range<usize>],
        engines: &[&Engine],
        ask: &Ask,
    ) -> (ShardedLoss, Grads) {
        let [n, d, v] = self.size;
        let engine = |k: usize| engines[k % engines.len()];
        let stats: Vec<_> = cuts
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let request = self.request(inputs, c.clone(), ask);
                engine(k).shard_stats(&request, self.shard(c)).unwrap()
            })
            .collect();
        let weight = ask.weighted.then_some(&self.class_weight[..]);
        let targets = self.targets(ask.options.ignore_index);
        let merged = merge_shards(&stats, targets, weight, &ask.options).unwrap();
        let mut grads = Grads {
            hidden: vec![0.0; n * d],
            weight: vec![f32::NAN; v * d],
            bias: vec![f32::NAN; if ask.bias { v } else { 0 }],
        };
        for (k, c) in cuts.iter().enumerate() {
            let mut partial = vec![f32::NAN; n * d];
            let slices = LinearGradsMut {
                hidden: Some(&mut partial),
                weight: Some(&mut grads.weight[c.start * d..c.end * d]),
                bias: ask.bias.then(|| &mut grads.bias[c.clone()]),
                add: false,
            };
            let request = self.request(inputs, c.clone(), ask);
            engine(k)
                .shard_linear_grad(&request, self.shard(c), &merged, slices)
                .unwrap();
            // The collective: dH is the sum of the shards' partial ones.
            grads
                .hidden
                .iter_mut()
                .zip(&partial)
                .for_each(|(h, p)| *h += p);
        }
        (merged, grads)
    }
}

/// Elements `range` of `input`.
fn rows(input: Input<'_>, range: Range<usize>) -> Input<'_> {
    match input {
        Input::F32(v) => Input::F32(&v[range]),
        Input::F16(v) => Input::F16(&v[range]),
        Input::Bf16(v) => Input::Bf16(&v[range]),
    }
}

/// A head's gradients, dH, dW and db (empty without a bias).
#[derive(Debug, PartialEq)]
struct Grads {
    hidden: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Grads {
    fn of(out: &Output) -> Self {
        let head = out.linear_grads.as_ref().unwrap();
        Grads {
            hidden: out.grad.clone().unwrap(),
            weight: head.weight.clone(),
            bias: head.bias.clone().unwrap_or_default(),
        }
    }

    fn bits(&self) -> [Vec<u32>; 3] {
        [&self.hidden, &self.weight, &self.bias].map(|g| g.iter().map(|x| x.to_bits()).collect())
    }
}

/// Asserts max |got − want| ≤ `tol` · max |want| (or `tol` where want is all zeros).
fn assert_grad_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let largest = want.iter().fold(0.0_f64, |m, &w| m.max(f64::from(w).abs()));
    let (i, diff) = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - f64::from(w)).abs())
        .enumerate()
        .fold(
            (0, 0.0_f64),
            |a, (i, e)| if e > a.1 || e.is_nan() { (i, e) } else { a },
        );
    assert!(
        diff <= tol * largest.max(1e-30) || (largest == 0.0 && diff <= tol),
        "{what}: element {i} off by {diff:e}, over {tol:e} of the largest {largest:e}"
    );
}

/// Asserts the merged loss, lse and valid rows, and the sharded gradients, within `tol` of the
/// unsharded head's `want`.
fn assert_matches(what: &str, merged: &ShardedLoss, grads: &Grads, want: &Output, tol: f64) {
    assert_eq!(merged.valid_rows, want.valid_rows, "{what}: valid rows");
    match (&merged.loss, &want.loss) {
        (Loss::Scalar(a), Loss::Scalar(b)) => common::assert_scalar(what, *a, *b, tol),
        (Loss::Unreduced { values: a, .. }, Loss::Unreduced { values: b, .. }) => {
            common::assert_close(what, a, b, tol, tol);
        }
        other => panic!("{what}: {other:?}"),
    }
    common::assert_close(what, &merged.lse, want.lse.as_ref().unwrap(), tol, tol);
    let want = Grads::of(want);
    assert_grad_close(&format!("{what}: dH"), &grads.hidden, &want.hidden, tol);
    assert_grad_close(&format!("{what}: dW"), &grads.weight, &want.weight, tol);
    assert_grad_close(&format!("{what}: db"), &grads.bias, &want.bias, tol);
}

/// Each reduction, with ignore_index (class 0, which the 1-class shard holds, or -100), class
/// weights, label smoothing, the z-loss and the soft cap, with and without a bias.
fn asks() -> Vec<Ask> {
    let base = Options::default();
    let ask = |options, weighted, bias| Ask {
        options,
        weighted,
        bias,
        chunk_bytes: None,
    };
    vec![
        ask(base, false, true),
        ask(
            Options {
                label_smoothing: 0.1,
                z_loss: 1e-3,
                ..base
            },
            true,
            true,
        ),
        ask(
            Options {
                reduction: Reduction::Sum,
                softcap: Some(3.0),
                ignore_index: 0,
                ..base
            },
            false,
            false,
        ),
        ask(
            Options {
                reduction: Reduction::None,
                label_smoothing: 0.2,
                z_loss: 1e-2,
                ..base
            },
            true,
            true,
        ),
        ask(
            Options {
                reduction: Reduction::BatchMean,
                label_smoothing: 0.05,
                softcap: Some(5.0),
                ignore_index: 0,
                ..base
            },
            true,
            false,
        ),
    ]
}

/// The unsharded head's output on the fast path and the reference, with lse and gradients.
fn unsharded(head: &Head, inputs: [Input; 2], ask: &Ask) -> [(Engine, Output); 2] {
    let whole = head
        .request(inputs, 0..head.size[2], ask)
        .with_lse(true)
        .with_grad(true);
    [Engine::cpu(), Engine::reference()].map(|e| {
        let out = e.compute(&whole).unwrap();
        (e, out)
    })
}

#[test]
fn shards_of_a_head_give_the_unsharded_loss_and_gradients() {
    let head = Head::new("shards of a head", [37, 19, 53]);
    let (fast, reference) = (Engine::cpu(), Engine::reference());
    let cut_sets = [vec![0..1, 1..30, 30..53], vec![0..26, 26..53]];
    for ask in asks() {
        let wants = unsharded(&head, head.f32s(), &ask);
        // Every GPU adapter with the fast path, in both orders: sharded over Vulkan, GL and
        // the CPU.
        let gpus: Vec<&Engine> = common::gpus().iter().collect();
        let mixed: Vec<&Engine> = gpus.iter().copied().chain([&fast]).collect();
        let reversed: Vec<&Engine> = mixed.iter().rev().copied().collect();
        let orders: Vec<Vec<&Engine>> = [vec![&fast, &reference], vec![&reference, &fast]]
            .into_iter()
            .chain(
                (!gpus.is_empty())
                    .then_some([mixed, reversed])
                    .into_iter()
                    .flatten(),
            )
            .collect();
        for cuts in &cut_sets {
            for engines in &orders {
                let (merged, grads) = head.sharded(head.f32s(), cuts, engines, &ask);
                for (engine, want) in &wants {
                    let what = format!(
                        "{ask:?} on {cuts:?}, {} first, against {}",
                        engines[0].device(),
                        engine.device()
                    );
                    assert_matches(&what, &merged, &grads, want, 1e-5);
                }
            }
        }
    }
}

#[test]
fn a_bf16_head_in_shards() {
    let head = Head::new("a bf16 head in shards", [21, 33, 45]);
    let [hidden, weight] = [&head.hidden, &head.weight]
        .map(|x| x.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<bf16>>());
    let inputs = [Input::Bf16(&hidden), Input::Bf16(&weight)];
    let ask = asks()[1];
    let wants = unsharded(&head, inputs, &ask);
    let (fast, reference) = (Engine::cpu(), Engine::reference());
    let (merged, grads) =
        head.sharded(inputs, &[0..20, 20..21, 21..45], &[&fast, &reference], &ask);
    for (engine, want) in &wants {
        assert_matches(
            &format!("bf16 against {}", engine.device()),
            &merged,
            &grads,
            want,
            1e-5,
        );
    }
}

/// A budget of 5 rows' logits of the widest shard cuts N = 37 into 8 chunks, and each shard
/// into at least as many.
#[test]
fn chunks_of_rows_agree_with_the_unsharded_head() {
    let head = Head::new("chunks of rows in shards", [37, 19, 53]);
    let cuts = [0..23, 23..24, 24..53];
    for ask in asks() {
        let chunked = Ask {
            chunk_bytes: Some(5 * 29 * 4),
            ..ask
        };
        let wants = unsharded(&head, head.f32s(), &ask);
        let fast = Engine::cpu();
        let (merged, grads) = head.sharded(head.f32s(), &cuts, &[&fast], &chunked);
        for (engine, want) in &wants {
            let what = format!("{chunked:?} against {}", engine.device());
            assert_matches(&what, &merged, &grads, want, 1e-5);
        }
    }
}

/// The fast path's shards give the same bits run to run and on 1 and 3 threads: shards wide
/// enough, and chunks of 64 rows, for the GEMMs to run on every thread.
#[test]
fn the_same_bits_on_any_number_of_threads() {
    let head = Head::new("shard bits on any number of threads", [300, 96, 1101]);
    let cuts = [0..500, 500..501, 501..1101];
    for ask in [asks()[1], asks()[3]] {
        let ask = Ask {
            chunk_bytes: Some(64 * 600 * 4),
            ..ask
        };
        let bits = |threads| {
            in_pool(threads, || {
                let fast = Engine::cpu();
                let (merged, grads) = head.sharded(head.f32s(), &cuts, &[&fast], &ask);
                (merged, grads.bits())
            })
        };
        let one = bits(1);
        assert_eq!(one, bits(1), "{ask:?}: run to run");
        assert_eq!(one, bits(3), "{ask:?}: 1 and 3 threads");
    }
}

/// With `add`, each slice gets what it held plus what a write gives it.
#[test]
fn add_adds_to_what_the_slices_hold() {
    let head = Head::new("shard add", [37, 19, 53]);
    let [n, d, _] = head.size;
    let mut rng = common::rng("shard add: the slices' contents");
    let ask = asks()[1];
    let classes = 1..30;
    let width = classes.len();
    let shard = head.shard(&classes);
    let request = head.request(head.f32s(), classes.clone(), &ask);
    for engine in [Engine::cpu(), Engine::reference()] {
        let stats: Vec<_> = [0..1, classes.clone(), 30..53]
            .iter()
            .map(|c| {
                let r = head.request(head.f32s(), c.clone(), &ask);
                engine.shard_stats(&r, head.shard(c)).unwrap()
            })
            .collect();
        let merged = merge_shards(
            &stats,
            &head.targets,
            Some(&head.class_weight),
            &ask.options,
        )
        .unwrap();
        let old = [n * d, width * d, width].map(|len| common::logits(&mut rng, len, 1.0));
        let mut written = [n * d, width * d, width].map(|len| vec![f32::NAN; len]);
        let mut added = old.clone();
        for (slices, add) in [(&mut written, false), (&mut added, true)] {
            let [hidden, weight, bias] = slices.each_mut().map(|s| &mut s[..]);
            let grads = LinearGradsMut {
                hidden: Some(hidden),
                weight: Some(weight),
                bias: Some(bias),
                add,
            };
            engine
                .shard_linear_grad(&request, shard, &merged, grads)
                .unwrap();
        }
        for (k, name) in ["dH", "dW", "db"].iter().enumerate() {
            let sum: Vec<f32> = old[k].iter().zip(&written[k]).map(|(o, w)| o + w).collect();
            assert_grad_close(
                &format!("{} {name}: add", engine.device()),
                &added[k],
                &sum,
                1e-6,
            );
        }
    }
}

#[test]
fn the_wrong_pass_or_slices_are_typed_errors() {
    let head = Head::new("shard errors", [5, 3, 7]);
    let [n, d, v] = head.size;
    let ask = asks()[0];
    let cuts = [0..4, 4..7];
    let engine = Engine::cpu();
    let stats: Vec<_> = cuts
        .iter()
        .map(|c| {
            let r = head.request(head.f32s(), c.clone(), &ask);
            engine.shard_stats(&r, head.shard(c)).unwrap()
        })
        .collect();
    let merged = merge_shards(&stats, &head.targets, None, &ask.options).unwrap();
    let linear = head.request(head.f32s(), 0..4, &ask);
    let shard = head.shard(&(0..4));
    let reason = |e: Error| match e {
        Error::InvalidOption { option, reason } => format!("{option}: {reason}"),
        other => panic!("not an invalid option: {other:?}"),
    };

    // A linear request's shard gradient is shard_linear_grad's, and a plain one's shard_grad's.
    let e = engine
        .shard_grad(&linear, shard, &merged, &mut vec![0.0; n * 4])
        .unwrap_err();
    assert!(reason(e).contains("Engine::shard_linear_grad"));
    let logits = vec![0.0_f32; n * 4];
    let plain = Request::cross_entropy(&logits[..], [n, 4], &head.targets[..]);
    let e = engine
        .shard_linear_grad(&plain, shard, &merged, LinearGradsMut::default())
        .unwrap_err();
    assert!(reason(e).contains("Engine::shard_grad"));

    // Slices of the wrong length (the whole head's, or one short), or for a bias the head
    // lacks, before anything is written.
    let refused = |request: &Request, grads: LinearGradsMut<'_>| {
        reason(
            engine
                .shard_linear_grad(request, shard, &merged, grads)
                .unwrap_err(),
        )
    };
    for len in [4 * d - 1, v * d] {
        let mut dw = vec![7.0_f32; len];
        let grads = LinearGradsMut {
            weight: Some(&mut dw),
            ..Default::default()
        };
        let needs = format!("it holds {len} values, and needs {}", 4 * d);
        assert_eq!(
            refused(&linear, grads),
            format!("linear weight's gradient: {needs}")
        );
        assert!(dw.iter().all(|&x| x == 7.0));
    }
    let no_bias = head.request(head.f32s(), 0..4, &Ask { bias: false, ..ask });
    let grads = LinearGradsMut {
        bias: Some(&mut [0.0; 4]),
        ..Default::default()
    };
    assert_eq!(
        refused(&no_bias, grads),
        "linear bias's gradient: the head has no bias"
    );

    // The shard's own checks, as a plain shard's: classes past the head's, merged rows of
    // another batch, soft targets.
    let past = Shard {
        first_class: 4,
        total_classes: v,
    };
    let e = engine.shard_stats(&linear, past).unwrap_err();
    assert!(reason(e).starts_with("shard: classes [4, 8)"));
    let fewer: Vec<_> = stats
        .iter()
        .map(|s| xent::ShardStats {
            max: s.max[1..].to_vec(),
            sum_exp: s.sum_exp[1..].to_vec(),
            target_logit: s.target_logit[1..].to_vec(),
            smoothing_sum: s.smoothing_sum[1..].to_vec(),
            ..s.clone()
        })
        .collect();
    let other_batch = merge_shards(&fewer, &head.targets[1..], None, &ask.options).unwrap();
    let e = engine
        .shard_linear_grad(&linear, shard, &other_batch, LinearGradsMut::default())
        .unwrap_err();
    assert_eq!(
        reason(e),
        format!(
            "shard: the merged loss has {} rows, the shard's request {n}",
            n - 1
        )
    );
    // Soft targets, and a target outside the whole head's classes (where a shard's classes
    // would not do).
    let soft = vec![1.0 / v as f32; n * 4];
    let mut outside = head.targets.clone();
    outside[2] = v as i64;
    let stats_refused = |target: Target<'_>| {
        let w = &head.weight[..4 * d];
        let request = Request::linear_cross_entropy(&head.hidden[..], [n, d], w, [4, d], target);
        engine.shard_stats(&request, shard).unwrap_err()
    };
    assert!(reason(stats_refused(Target::Dense(&soft))).contains("against class indices"));
    let e = stats_refused(Target::ClassesI64(&outside));
    assert!(
        matches!(e, Error::TargetOutOfRange { row: 2, classes, .. } if classes == v),
        "{e}"
    );
}
