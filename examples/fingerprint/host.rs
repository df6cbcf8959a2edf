//! Requests on host slices: every loss, input kind, reduction, option, dtype and shape, each
//! through `compute`, `compute_into`, `compute_timed` (its output, not its time) and, for f32
//! input, `compute_in_place`.

use std::collections::HashSet;

use xent::{Base, Dtype, Engine, Input, InputKind, LossKind, Reduction};

use crate::case::{Case, Data, Special, Targets};
use crate::report::Report;

const REDUCTIONS: [Reduction; 4] = [
    Reduction::None,
    Reduction::Sum,
    Reduction::Mean,
    Reduction::BatchMean,
];
const KINDS: [InputKind; 3] = [InputKind::Logits, InputKind::Probs, InputKind::LogProbs];

/// The shapes every loss runs at: the named ones, then sizes just off the fast path's and the
/// kernels' tiles (16 lanes, 32-logit short rows, 64 classes a thread, 64 rows a workgroup, 2048
/// values a block and rows a reduce block, 128 rows for a split, 32768 values a parallel call),
/// and a batch over the 32 MiB a GPU uploads at once, in two row chunks.
const SHAPES: [[usize; 2]; 18] = [
    [1, 1],
    [7, 13],
    [33, 129],
    [5, 3001],
    [64, 1000],
    [256, 10],
    [2, 70_000],
    [3, 17],
    [9, 31],
    [9, 33],
    [65, 63],
    [63, 65],
    [5, 2047],
    [3, 2049],
    [2049, 3],
    [129, 257],
    [8, 16_385],
    [1100, 8001],
];

/// Every host case, with its data, in a fixed order: no two alike.
pub fn cases(seed: u64) -> Vec<(Case, Data)> {
    let mut all = Vec::new();
    grid(&mut all);
    options(&mut all);
    specials(&mut all);
    shapes(&mut all);
    let mut seen = HashSet::new();
    all.retain(|c| seen.insert(c.name()));
    all.into_iter()
        .enumerate()
        .map(|(i, c)| (c, Data::draw(&c, seed.wrapping_add(i as u64))))
        .collect()
}

/// Each loss and target kind, on each input kind it takes, with each reduction.
fn grid(all: &mut Vec<Case>) {
    let ce = LossKind::CrossEntropy;
    let bce = LossKind::BinaryCrossEntropy;
    let kinds: [(LossKind, Targets, &[InputKind]); 5] = [
        (ce, Targets::I64, &KINDS),
        (ce, Targets::I32, &KINDS[..1]),
        (ce, Targets::Dense, &KINDS),
        (bce, Targets::Dense, &KINDS[..2]),
        (LossKind::Entropy, Targets::None, &KINDS),
    ];
    for (loss, target, input_kinds) in kinds {
        for &kind in input_kinds {
            for reduction in REDUCTIONS {
                all.push(Case::new(loss, [7, 13]).with(|c| {
                    c.target = target;
                    c.options.input_kind = kind;
                    c.options.reduction = reduction;
                    c.options.lse = kind == InputKind::Logits && loss != bce;
                }));
            }
        }
    }
    for reduction in REDUCTIONS {
        all.push(Case::new(bce, [7, 13]).with(|c| {
            c.pos_weight = true;
            c.options.reduction = reduction;
        }));
        for kind in KINDS {
            for log_target in [false, true] {
                all.push(Case::new(LossKind::KlDiv, [7, 13]).with(|c| {
                    c.options.input_kind = kind;
                    c.options.reduction = reduction;
                    c.options.log_target = log_target;
                    c.options.lse = kind == InputKind::Logits;
                }));
            }
        }
    }
}

/// The options one at a time and together, and each loss in 16-bit input, at 33 × 129.
fn options(all: &mut Vec<Case>) {
    let ce = || Case::new(LossKind::CrossEntropy, [33, 129]);
    for reduction in REDUCTIONS {
        let r = |c: &mut Case| c.options.reduction = reduction;
        all.push(ce().with(r).with(|c| c.weight = true));
        all.push(ce().with(r).with(|c| c.ignored = 0.3));
        all.push(ce().with(r).with(|c| c.ignored = 1.0));
        all.push(ce().with(r).with(|c| c.options.z_loss = 1e-3));
        all.push(ce().with(r).with(|c| c.options.softcap = Some(20.0)));
        all.push(ce().with(r).with(|c| c.options.label_smoothing = 0.1));
        all.push(ce().with(r).with(|c| {
            c.weight = true;
            c.ignored = 0.3;
            c.options.label_smoothing = 0.1;
        }));
        all.push(ce().with(r).with(|c| {
            c.weight = true;
            c.ignored = 0.3;
            c.options.label_smoothing = 0.1;
            c.options.z_loss = 1e-4;
            c.options.softcap = Some(30.0);
            c.options.lse = true;
        }));
    }
    all.push(ce().with(|c| {
        c.ignored = 0.3;
        c.options.ignore_index = 3;
    }));
    all.push(ce().with(|c| c.options.label_smoothing = 1.0));
    all.push(ce().with(|c| {
        c.options.label_smoothing = 0.2;
        c.options.input_kind = InputKind::LogProbs;
    }));
    all.push(ce().with(|c| {
        c.target = Targets::Dense;
        c.weight = true;
        c.options.label_smoothing = 0.1;
    }));
    all.push(ce().with(|c| c.options.grad_in_place = true));
    all.push(ce().with(|c| c.options.lse = true));
    all.push(Case::new(LossKind::BinaryCrossEntropy, [33, 129]).with(|c| c.weight = true));
    let losses = [
        Case::new(LossKind::CrossEntropy, [33, 129]),
        Case::new(LossKind::CrossEntropy, [33, 129]).with(|c| c.target = Targets::I32),
        Case::new(LossKind::CrossEntropy, [33, 129]).with(|c| c.target = Targets::Dense),
        Case::new(LossKind::BinaryCrossEntropy, [33, 129]).with(|c| c.pos_weight = true),
        Case::new(LossKind::KlDiv, [33, 129]),
        Case::new(LossKind::Entropy, [33, 129]),
    ];
    for case in losses {
        for base in [Base::Two, Base::Ten] {
            if case.loss != LossKind::BinaryCrossEntropy {
                all.push(case.with(|c| c.options.base = base));
            }
        }
        all.push(case.with(|c| c.options.grad = false));
        all.push(case.with(|c| c.options.strict = true));
        for dtype in [Dtype::F16, Dtype::Bf16] {
            for reduction in [Reduction::None, Reduction::Mean] {
                all.push(case.with(|c| {
                    c.dtype = dtype;
                    c.options.reduction = reduction;
                }));
            }
        }
    }
}

/// Masked logits, extreme magnitudes and a NaN row (strict mode off).
fn specials(all: &mut Vec<Case>) {
    let ce = || Case::new(LossKind::CrossEntropy, [33, 129]);
    for reduction in [Reduction::None, Reduction::Mean] {
        let r = |c: &mut Case| c.options.reduction = reduction;
        all.push(ce().with(r).with(|c| c.special = Special::Masked));
        all.push(ce().with(r).with(|c| c.special = Special::Extreme));
        all.push(ce().with(r).with(|c| c.special = Special::NanRow));
    }
    all.push(ce().with(|c| {
        c.special = Special::Masked;
        c.options.softcap = Some(20.0);
        c.options.label_smoothing = 0.1;
        c.options.lse = true;
    }));
    all.push(ce().with(|c| {
        c.special = Special::Masked;
        c.dtype = Dtype::Bf16;
    }));
    let others = [
        Case::new(LossKind::CrossEntropy, [33, 129]).with(|c| c.target = Targets::Dense),
        Case::new(LossKind::BinaryCrossEntropy, [33, 129]),
        Case::new(LossKind::KlDiv, [33, 129]),
        Case::new(LossKind::Entropy, [33, 129]),
    ];
    for case in others {
        for special in [Special::Masked, Special::Extreme, Special::NanRow] {
            all.push(case.with(|c| {
                c.special = special;
                c.options.reduction = Reduction::None;
            }));
        }
    }
}

/// Every loss at every shape, and cross-entropy in bf16.
fn shapes(all: &mut Vec<Case>) {
    for shape in SHAPES {
        all.push(Case::new(LossKind::CrossEntropy, shape).with(|c| {
            c.ignored = 0.2;
            c.options.lse = true;
        }));
        all.push(Case::new(LossKind::CrossEntropy, shape).with(|c| {
            c.dtype = Dtype::Bf16;
            c.weight = true;
            c.options.label_smoothing = 0.1;
        }));
        all.push(Case::new(LossKind::CrossEntropy, shape).with(|c| {
            c.target = Targets::Dense;
            c.options.reduction = Reduction::Sum;
        }));
        all.push(Case::new(LossKind::BinaryCrossEntropy, shape).with(|c| {
            c.options.reduction = Reduction::None;
        }));
        all.push(Case::new(LossKind::KlDiv, shape).with(|c| {
            c.options.reduction = Reduction::BatchMean;
            c.options.input_kind = InputKind::LogProbs;
        }));
        all.push(Case::new(LossKind::Entropy, shape));
    }
}

/// Each case through `compute`, `compute_into`, `compute_timed` and (f32 input)
/// `compute_in_place`.
pub fn run(engine: &Engine, cases: &[(Case, Data)], report: &mut Report) {
    for (case, data) in cases {
        let name = case.name();
        let request = case.request(data, data.values.input());
        let out = engine.compute(&request);
        report.ok(&format!("{name} | compute"), &out, |h, out| h.output(out));

        let mut grad = vec![0.0_f32; data.x.len()];
        let out = engine.compute_into(&request, &mut grad);
        report.ok(&format!("{name} | compute_into"), &out, |h, out| {
            h.output(out);
            h.f32s(&grad);
        });

        let mut grad = vec![0.0_f32; if case.options.grad { data.x.len() } else { 0 }];
        let slice = case.options.grad.then_some(&mut grad[..]);
        let out = engine.compute_timed(&request, slice);
        report.ok(
            &format!("{name} | compute_timed"),
            &out,
            |h, (out, _time)| {
                h.output(out);
                h.f32s(&grad);
            },
        );

        if case.dtype == Dtype::F32 {
            let mut logits = data.x.clone();
            let empty = request.with_input(Input::F32(&[]));
            let out = engine.compute_in_place(&empty, &mut logits);
            report.ok(&format!("{name} | compute_in_place"), &out, |h, out| {
                h.output(out);
                h.f32s(&logits);
            });
        }
    }
}
