//! Fused linear cross-entropy beyond the PyTorch fixtures (`tests/linear_fixtures.rs`): the fast
//! path against the float64 reference at random sizes, options, dtypes and chunk budgets; the
//! same bits on any number of threads; chunk budgets that agree; the memory one call takes,
//! counted; and edge shapes. Bad input: `tests/linear_errors.rs`.

mod common;
#[path = "common/counting.rs"]
mod counting;

use common::in_pool;
use counting::peak_during;
use proptest::prelude::*;
use rand::Rng;
use xent::{
    Argument, Base, DEFAULT_CHUNK_BYTES, Engine, Error, Input, LinearGradsMut, Output, Reduction,
    Request, Target,
};

/// The loss (scalar or per row), lse, dH, dW and db of an output, in that order.
fn parts(out: &Output) -> [Vec<f32>; 5] {
    let loss = match &out.loss {
        xent::Loss::Scalar(v) => vec![*v],
        xent::Loss::Unreduced { values, .. } => values.clone(),
    };
    let grads = out.linear_grads.as_ref();
    [
        loss,
        out.lse.clone().unwrap_or_default(),
        out.grad.clone().unwrap_or_default(),
        grads.map(|g| g.weight.clone()).unwrap_or_default(),
        grads.and_then(|g| g.bias.clone()).unwrap_or_default(),
    ]
}

const PART_NAMES: [&str; 5] = ["loss", "lse", "dH", "dW", "db"];

/// Asserts each part of `got` within `tol` of `want` in relative norm.
fn assert_parts_close(what: &str, got: &Output, want: &Output, tol: f64) {
    assert_eq!(got.valid_rows, want.valid_rows, "{what}: valid_rows");
    for ((name, got), want) in PART_NAMES.iter().zip(parts(got)).zip(parts(want)) {
        assert_eq!(got.len(), want.len(), "{what}: {name} length");
        let err = common::relative_norm_error(&got, &want);
        assert!(err <= tol, "{what}: {name} off by {err:e} > {tol:e}");
    }
}

#[derive(Clone, Debug)]
struct Case {
    size: [usize; 3],
    hidden: Vec<f32>,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    class_weight: Option<Vec<f32>>,
    classes: Vec<i64>,
    uniform: Vec<f32>,
    /// 0: f32, 1: f16, 2: bf16 (H and W).
    dtype: usize,
    soft: bool,
    /// The ignore index: -100, or class 0 (so that some targets are ignored by it).
    ignore_zero: bool,
    smoothing: f32,
    z_loss: bool,
    softcap: Option<f32>,
    base: usize,
    reduction: usize,
    chunk_bytes: usize,
}

fn case() -> impl Strategy<Value = Case> {
    let sizes = (1usize..=70, 1usize..=70, 1usize..=70);
    let flags = (0usize..3, any::<[bool; 5]>(), 0usize..3, 0usize..4);
    let values = (
        prop_oneof![Just(0.0_f32), 0.0_f32..1.0],
        prop_oneof![Just(None), (1.0_f32..50.0).prop_map(Some)],
        prop_oneof![Just(0.1_f32), Just(1.0), Just(5.0)],
    );
    (sizes, flags, values).prop_flat_map(|((n, d, v), flags, (smoothing, softcap, scale))| {
        let (dtype, [bias, class_weight, soft, ignore_zero, z_loss], base, reduction) = flags;
        let vec = |len, range: std::ops::Range<f32>| proptest::collection::vec(range, len);
        let target = prop_oneof![9 => 0..v as i64, 1 => Just(-100_i64)];
        (
            vec(n * d, -1.0..1.0),
            vec(v * d, -scale..scale),
            vec(v, -1.0..1.0),
            vec(v, 0.1..2.0),
            proptest::collection::vec(target, n),
            vec(n * v, 0.0..1.0),
            // Chunks of 1..=N rows, the budget anywhere within a row's bytes; or 0 (one row).
            prop_oneof![1 => Just(0), 9 => (1..=n, 0..v * 4).prop_map(move |(r, b)| r * v * 4 + b)],
        )
            .prop_map(
                move |(hidden, weight, b, w, classes, uniform, chunk_bytes)| Case {
                    size: [n, d, v],
                    hidden,
                    weight,
                    bias: bias.then_some(b),
                    class_weight: class_weight.then_some(w),
                    classes,
                    uniform,
                    dtype,
                    soft,
                    ignore_zero,
                    smoothing,
                    // z-loss is defined in nats only.
                    z_loss: z_loss && base == 0,
                    softcap,
                    base,
                    reduction,
                    chunk_bytes,
                },
            )
    })
}

/// Rows of `values` scaled to sum to 1.
fn normalized(values: &[f32], classes: usize) -> Vec<f32> {
    let rows = values.chunks(classes);
    rows.flat_map(|row| {
        let sum: f32 = row.iter().sum::<f32>().max(f32::MIN_POSITIVE);
        row.iter().map(move |v| v / sum).collect::<Vec<_>>()
    })
    .collect()
}

/// The fast path against the reference on one random case, each part within 1e-4 in relative
/// norm, with and without the gradients.
fn fast_matches_reference(c: &Case) {
    let [n, d, v] = c.size;
    let dist = normalized(&c.uniform, v);
    let (h16, w16) = (
        common::round_to(xent::Dtype::F16, &c.hidden),
        common::round_to(xent::Dtype::F16, &c.weight),
    );
    let (hb, wb) = (
        common::round_to(xent::Dtype::Bf16, &c.hidden),
        common::round_to(xent::Dtype::Bf16, &c.weight),
    );
    let (hidden, weight) = match c.dtype {
        0 => (Input::F32(&c.hidden), Input::F32(&c.weight)),
        1 => (h16.as_input(), w16.as_input()),
        _ => (hb.as_input(), wb.as_input()),
    };
    // With ignore index 0, rows of class 0 are the ignored ones.
    let classes: Vec<i64> = c
        .classes
        .iter()
        .map(|&t| if c.ignore_zero { t.max(0) } else { t })
        .collect();
    let target = if c.soft {
        Target::Dense(&dist)
    } else {
        Target::ClassesI64(&classes)
    };
    let mut r = Request::linear_cross_entropy(hidden, [n, d], weight, [v, d], target)
        .reduction(
            [
                Reduction::Mean,
                Reduction::Sum,
                Reduction::None,
                Reduction::BatchMean,
            ][c.reduction],
        )
        .ignore_index(if c.ignore_zero { 0 } else { -100 })
        .label_smoothing(c.smoothing)
        .z_loss(if c.z_loss { 1e-3 } else { 0.0 })
        .base([Base::E, Base::Two, Base::Ten][c.base])
        .linear_chunk_bytes(c.chunk_bytes)
        .with_lse(true);
    if let Some(cap) = c.softcap {
        r = r.softcap(cap);
    }
    if let Some(b) = &c.bias {
        r = r.linear_bias(b);
    }
    if let Some(w) = &c.class_weight {
        r = r.weight(w);
    }
    let what = format!("{n}x{d}x{v} chunk {} bytes", c.chunk_bytes);
    for grad in [false, true] {
        let r = r.with_grad(grad);
        let want = Engine::reference().compute(&r).unwrap();
        for engine in common::under_test() {
            let got = engine.compute(&r).unwrap();
            let what = format!("{} {what} grad {grad}", engine.device());
            assert_parts_close(&what, &got, &want, 1e-4);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_fast_path_matches_the_reference(c in case()) {
        fast_matches_reference(&c);
    }
}

/// A seeded problem of N×D×V with a bias, class weights and a few ignored rows.
struct Problem {
    size: [usize; 3],
    hidden: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    class_weight: Vec<f32>,
    targets: Vec<i64>,
}

impl Problem {
    fn new(test: &str, [n, d, v]: [usize; 3]) -> Self {
        let mut rng = common::rng(test);
        let scale = 2.0 / (d as f32).sqrt();
        Problem {
            size: [n, d, v],
            hidden: common::logits(&mut rng, n * d, 1.0),
            weight: common::logits(&mut rng, v * d, scale),
            bias: common::logits(&mut rng, v, 0.5),
            class_weight: common::distribution(&mut rng, 1, v)
                .iter()
                .map(|p| 0.5 + p * v as f32)
                .collect(),
            targets: common::targets(&mut rng, n, v, 0.05),
        }
    }

    /// Every option, with H and W as `input` holds them (f32, or 16-bit copies).
    fn request<'a>(&'a self, input: [Input<'a>; 2]) -> Request<'a> {
        let [n, d, v] = self.size;
        Request::linear_cross_entropy(input[0], [n, d], input[1], [v, d], &self.targets[..])
            .linear_bias(&self.bias)
            .weight(&self.class_weight)
            .label_smoothing(0.05)
            .z_loss(1e-4)
            .softcap(20.0)
            .with_lse(true)
            .with_grad(true)
    }
}

#[test]
fn the_fast_path_has_the_same_bits_on_any_number_of_threads() {
    let p = Problem::new("same bits on any number of threads", [300, 96, 1100]);
    let (hb, wb) = (
        common::round_to(xent::Dtype::Bf16, &p.hidden),
        common::round_to(xent::Dtype::Bf16, &p.weight),
    );
    // Chunks of 64 rows: five chunks, each product big enough to run on every thread.
    let budget = 64 * 1100 * 4;
    for (dtype, input) in [
        ("f32", [Input::F32(&p.hidden), Input::F32(&p.weight)]),
        ("bf16", [hb.as_input(), wb.as_input()]),
    ] {
        for reduction in [Reduction::Mean, Reduction::None] {
            let request = p
                .request(input)
                .reduction(reduction)
                .linear_chunk_bytes(budget);
            let bits = |threads| {
                let out = in_pool(threads, || Engine::cpu().compute(&request).unwrap());
                parts(&out).map(|p| p.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            };
            let one = bits(1);
            for threads in [2, 3] {
                for (name, (a, b)) in PART_NAMES.iter().zip(one.iter().zip(bits(threads))) {
                    assert!(!a.is_empty(), "{dtype} {reduction:?}: {name} missing");
                    assert!(
                        *a == b,
                        "{dtype} {reduction:?}: {name} differs on 1 and {threads} threads"
                    );
                }
            }
        }
    }
}

/// The chunk budget may change the rounding (the sums of dW and db run over chunks), and nothing
/// more: chunks of 1 (a budget of 0), 7, 64 and 299 rows and the default budget
/// (one chunk of all 300) agree within 1e-5, and the default with the reference.
#[test]
fn chunk_budgets_agree() {
    let p = Problem::new("chunk budgets agree", [300, 96, 1100]);
    let input = [Input::F32(&p.hidden), Input::F32(&p.weight)];
    for reduction in [Reduction::Mean, Reduction::None] {
        let request = p.request(input).reduction(reduction);
        let whole = Engine::cpu().compute(&request).unwrap();
        let reference = Engine::reference().compute(&request).unwrap();
        assert_parts_close(
            &format!("{reduction:?} default vs reference"),
            &whole,
            &reference,
            1e-5,
        );
        for rows in [0, 7, 64, 299] {
            let chunked = request.linear_chunk_bytes(rows * 1100 * 4 + 3);
            let out = Engine::cpu().compute(&chunked).unwrap();
            assert_parts_close(&format!("{reduction:?} {rows} rows"), &out, &whole, 1e-5);
        }
    }
}

/// One call's peak allocation on its thread (the engine inside a 1-thread pool, so that every
/// allocation of the call is counted), the gradients' slices given by the caller.
fn peak(p: &Problem, chunk_bytes: Option<usize>, grad: bool) -> usize {
    let [n, d, v] = p.size;
    let (mut dh, mut dw, mut db) = (vec![0.0; n * d], vec![0.0; v * d], vec![0.0; v]);
    let mut request = p
        .request([Input::F32(&p.hidden), Input::F32(&p.weight)])
        .with_lse(false);
    if let Some(bytes) = chunk_bytes {
        request = request.linear_chunk_bytes(bytes);
    }
    let grads = LinearGradsMut {
        hidden: grad.then_some(&mut dh[..]),
        weight: grad.then_some(&mut dw[..]),
        bias: grad.then_some(&mut db[..]),
        add: false,
    };
    let (out, peak) = in_pool(1, || {
        peak_during(|| Engine::cpu().compute_linear_into(&request, grads))
    });
    assert!(out.unwrap().loss.scalar().unwrap().is_finite());
    peak
}

const LOGITS: usize = 512 * 4096 * 4; // 8 MiB
/// Room for gemm's own packing buffers (about 1.1 MB once a chunk has two rows) and the row pass's.
const SLACK: usize = 2 << 20;

/// The peak of a call at N = 512, D = 64, V = 4096 stays under a quarter of the logits' 8 MiB
/// at a small budget (most of it gemm's packing buffers, about 1.1 MB); at the default budget
/// (a tenth of the logits, but 1 MiB at the least) it is that chunk's. In chunks of one row
/// (N = 64, where they take less time in a debug build) gemm packs nothing, and the peak is under
/// a 16th of the logits.
#[test]
fn no_allocation_of_the_logits_size() {
    let p = Problem::new("no allocation of the logits size", [512, 64, 4096]);
    let budget = 16 * 4096 * 4; // 256 KiB, 16 rows: a 32nd of the logits
    for grad in [false, true] {
        let small = peak(&p, Some(budget), grad);
        assert!(
            small < LOGITS / 4,
            "grad {grad}: budget {budget}: {small} bytes at the peak, not under a quarter of \
             logits of {LOGITS}"
        );
        eprintln!("grad {grad}: peak {small} bytes at a budget of {budget}; logits {LOGITS}");
    }
    const { assert!(DEFAULT_CHUNK_BYTES >= LOGITS) };
    let chunk = (LOGITS / 10).max(1 << 20);
    let default = peak(&p, None, false);
    assert!(
        default <= chunk + SLACK,
        "loss only, default budget: {default} bytes at the peak, for a chunk of {chunk} of \
         logits of {LOGITS} (+{SLACK})"
    );
    let p = Problem::new("no allocation of the logits size, one row", [64, 64, 4096]);
    let logits = 64 * 4096 * 4;
    for grad in [false, true] {
        let one_row = peak(&p, Some(1), grad);
        assert!(
            one_row < logits / 16,
            "grad {grad}: chunks of one row: {one_row} bytes at the peak, not under a 16th of \
             logits of {logits}"
        );
    }
}

/// A 16-bit head is converted to float32 a block of classes at a time: at V = 16384, D = 256 a
/// float32 copy of W would take 16 MiB, and the peak of a call with its gradients stays under
/// the chunk, one 8 MiB block and gemm's buffers.
#[test]
fn a_16_bit_head_is_never_copied_whole() {
    let [n, d, v] = [64, 256, 16384];
    let mut rng = common::rng("a_16_bit_head_is_never_copied_whole");
    let hidden: Vec<half::bf16> = common::logits(&mut rng, n * d, 1.0)
        .into_iter()
        .map(half::bf16::from_f32)
        .collect();
    let weight: Vec<half::bf16> = common::logits(&mut rng, v * d, 0.0625)
        .into_iter()
        .map(half::bf16::from_f32)
        .collect();
    let targets = common::targets(&mut rng, n, v, 0.1);
    let budget = 1 << 20;
    let request = Request::linear_cross_entropy(
        Input::Bf16(&hidden),
        [n, d],
        Input::Bf16(&weight),
        [v, d],
        &targets[..],
    )
    .linear_chunk_bytes(budget);
    let (mut dh, mut dw) = (vec![0.0; n * d], vec![0.0; v * d]);
    let (_, peak) = in_pool(1, || {
        peak_during(|| {
            let grads = LinearGradsMut {
                hidden: Some(&mut dh),
                weight: Some(&mut dw),
                ..Default::default()
            };
            Engine::cpu().compute_linear_into(&request, grads).unwrap()
        })
    });
    let whole = 4 * v * d;
    let bound = budget + (8 << 20) + SLACK;
    assert!(
        peak < bound && peak < whole,
        "{peak} bytes at the peak: over the chunk, a block and gemm's ({bound}), or a float32 W \
         ({whole})"
    );
    // Block by block, the same gradients as the same values in float32, taken whole.
    let widened = |x: &[half::bf16]| x.iter().map(|v| v.to_f32()).collect::<Vec<f32>>();
    let (h32, w32) = (widened(&hidden), widened(&weight));
    let whole_request =
        Request::linear_cross_entropy(&h32[..], [n, d], &w32[..], [v, d], &targets[..])
            .linear_chunk_bytes(budget)
            .with_grad(true);
    let want = Engine::cpu().compute(&whole_request).unwrap();
    let want_dw = want.linear_grads.unwrap().weight;
    for (what, got, want) in [
        ("dH", &dh, want.grad.as_ref().unwrap()),
        ("dW", &dw, &want_dw),
    ] {
        let err = common::relative_norm_error(got, want);
        assert!(err < 1e-5, "{what}: relative norm error {err:e}");
    }
}

/// The module's own account of its memory (`src/cpu/linear.rs`: "the chunk, and float32 copies
/// of 16-bit operands") with the gradients: at most the budget and gemm's buffers.
/// (dW's products read G a block of classes at a time, so that gemm never packs the whole of
/// Gᵀ, which doubled the peak.)
#[test]
fn with_gradients_the_peak_is_one_chunk() {
    let p = Problem::new("with gradients the peak is one chunk", [512, 64, 4096]);
    for rows in [64, 256, 512] {
        let budget = rows * 4096 * 4;
        let peak = peak(&p, Some(budget), true);
        assert!(
            peak <= budget + SLACK,
            "chunks of {rows} rows: {peak} bytes at the peak, for a budget of {budget} (+{SLACK})"
        );
    }
}

/// N = 0, D = 0 and V = 0: an empty batch has a mean of 0 and zero gradients; a head of no
/// columns has the bias as its logits; no class is an error.
#[test]
fn edge_shapes() {
    let b = [0.5_f32, -1.0, 2.0];
    let t = [2_i64, 0];
    for engine in common::under_test()
        .into_iter()
        .chain([Engine::reference()])
    {
        let what = engine.device().to_string();
        let empty = Request::linear_cross_entropy(
            Input::F32(&[]),
            [0, 4],
            &[0.5_f32; 12][..],
            [3, 4],
            Target::ClassesI64(&[]),
        )
        .linear_bias(&b)
        .with_grad(true);
        let out = engine.compute(&empty).unwrap();
        assert_eq!(
            (out.loss.scalar(), out.valid_rows),
            (Some(0.0), 0),
            "{what}"
        );
        let [_, _, dh, dw, db] = parts(&out);
        assert!(dh.is_empty() && dw == [0.0; 12] && db == [0.0; 3], "{what}");
        // D = 0: each row's logits are b.
        let no_columns =
            Request::linear_cross_entropy(Input::F32(&[]), [2, 0], Input::F32(&[]), [3, 0], &t[..])
                .linear_bias(&b)
                .with_grad(true);
        let out = engine.compute(&no_columns).unwrap();
        let logits = [b, b].concat();
        let want = engine
            .compute(&Request::cross_entropy(&logits[..], [2, 3], &t[..]).with_grad(true))
            .unwrap();
        assert_eq!(out.loss, want.loss, "{what}");
        let [_, _, dh, dw, db] = parts(&out);
        let g = want.grad.unwrap();
        let sum: Vec<f32> = (0..3).map(|k| g[k] + g[3 + k]).collect();
        assert!(dh.is_empty() && dw.is_empty(), "{what}");
        common::assert_close(&what, &db, &sum, 1e-7, 1e-6);
        let no_classes = Request::linear_cross_entropy(
            &[1.0_f32; 8][..],
            [2, 4],
            Input::F32(&[]),
            [0, 4],
            &t[..],
        );
        let err = engine.compute(&no_classes).unwrap_err();
        assert!(matches!(err, Error::NoClasses), "{what}: {err:?}");
        assert_eq!(err.argument(), Some(Argument::Input));
    }
}

/// A head whose W (and dW) is over one storage binding of a GPU adapter (128 MiB on lavapipe)
/// is taken a block of classes at a time, and agrees with the fast path.
#[test]
fn a_head_over_one_storage_binding() {
    let (n, d, v) = (5, 1024, 40_000);
    let mut rng = common::rng("a head over one storage binding");
    let hidden: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let weight: Vec<f32> = (0..v * d).map(|_| rng.random_range(-0.05..0.05)).collect();
    let bias: Vec<f32> = (0..v).map(|_| rng.random_range(-1.0..1.0)).collect();
    let targets: Vec<i64> = (0..n).map(|_| rng.random_range(0..v as i64)).collect();
    let request =
        Request::linear_cross_entropy(&hidden[..], [n, d], &weight[..], [v, d], &targets[..])
            .linear_bias(&bias)
            .with_grad(true);
    let want = Engine::cpu().compute(&request).unwrap();
    for engine in common::gpus() {
        let got = engine.compute(&request).unwrap();
        assert_parts_close(&engine.device().to_string(), &got, &want, 1e-5);
    }
}

/// With the autotune on, each class of products times every candidate tile and keeps the
/// fastest; every tile gives the same bits, so the results are those of the rule's tiles.
#[test]
fn the_tile_autotune_changes_no_bit() {
    let (n, d, v) = (70, 33, 301);
    let mut rng = common::rng("the tile autotune changes no bit");
    let hidden: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let weight: Vec<f32> = (0..v * d).map(|_| rng.random_range(-0.5..0.5)).collect();
    let targets: Vec<i64> = (0..n).map(|_| rng.random_range(0..v as i64)).collect();
    let request =
        Request::linear_cross_entropy(&hidden[..], [n, d], &weight[..], [v, d], &targets[..])
            .with_grad(true);
    for engine in common::open_gpus() {
        let rule = engine.compute(&request).unwrap();
        let engine = engine.autotune(true);
        let tuned = engine.compute(&request).unwrap();
        let what = engine.device().to_string();
        assert_eq!(parts(&tuned), parts(&rule), "{what}");
        let lines = engine.autotuned();
        assert!(
            lines.iter().filter(|l| l.starts_with("product")).count() >= 3,
            "{what}: {lines:?}"
        );
    }
}
