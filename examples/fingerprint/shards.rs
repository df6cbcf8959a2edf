//! Vocabulary shards on host slices: each shard's statistics, their merge, and each shard's slice
//! of the gradient, on one engine.

use xent::{Dtype, Engine, LossKind, Reduction, Request, Shard, ShardStats, Target, merge_shards};

use crate::case::{Case, Data, Special, Targets, Values, with_options};
use crate::report::Report;

/// A row cut into shards: the case (cross-entropy on logits against class indices) and the
/// classes where a shard starts, after the first.
pub struct Cut {
    pub case: Case,
    pub cuts: Vec<usize>,
}

impl Cut {
    pub fn name(&self) -> String {
        format!("shards at {:?}: {}", self.cuts, self.case.name())
    }

    /// Each shard and its classes.
    pub fn shards(&self) -> Vec<(Shard, std::ops::Range<usize>)> {
        let classes = self.case.shape[1];
        let bounds: Vec<usize> = [0]
            .into_iter()
            .chain(self.cuts.iter().copied())
            .chain([classes])
            .collect();
        bounds
            .windows(2)
            .map(|w| {
                let shard = Shard {
                    first_class: w[0],
                    total_classes: classes,
                };
                (shard, w[0]..w[1])
            })
            .collect()
    }
}

/// Columns `range` of the rows of `x`, of `classes` each.
pub fn columns(x: &[f32], classes: usize, range: std::ops::Range<usize>) -> Vec<f32> {
    x.chunks_exact(classes)
        .flat_map(|row| row[range.clone()].to_vec())
        .collect()
}

/// The option sets of the shard cases: plain; smoothing, z-loss and weights; a sum with a soft
/// cap; none with smoothing and weights.
pub fn option_cases(shape: [usize; 2]) -> [Case; 4] {
    let ce = Case::new(LossKind::CrossEntropy, shape).with(|c| c.ignored = 0.2);
    [
        ce,
        ce.with(|c| {
            c.options.label_smoothing = 0.1;
            c.options.z_loss = 1e-3;
            c.weight = true;
        }),
        ce.with(|c| {
            c.options.reduction = Reduction::Sum;
            c.options.softcap = Some(15.0);
        }),
        ce.with(|c| {
            c.options.reduction = Reduction::None;
            c.options.label_smoothing = 0.2;
            c.weight = true;
        }),
    ]
}

/// The host shard cases.
fn cuts() -> Vec<Cut> {
    let mut all = Vec::new();
    for case in option_cases([33, 129]) {
        all.push(Cut {
            case,
            cuts: vec![40, 41],
        });
    }
    let ce = |shape| Case::new(LossKind::CrossEntropy, shape).with(|c| c.ignored = 0.2);
    let more = [
        (ce([7, 13]), vec![5]),
        (ce([7, 13]), vec![]),
        (ce([5, 3001]), vec![1000, 2000]),
        (ce([2, 70_000]), vec![35_000]),
        (ce([64, 1000]), vec![1]),
        (ce([64, 1000]).with(|c| c.target = Targets::I32), vec![500]),
        (ce([64, 1000]).with(|c| c.dtype = Dtype::Bf16), vec![333]),
        (ce([33, 129]).with(|c| c.ignored = 1.0), vec![64]),
        (
            ce([33, 129]).with(|c| c.special = Special::Masked),
            vec![64],
        ),
    ];
    all.extend(more.into_iter().map(|(case, cuts)| Cut { case, cuts }));
    all
}

/// A shard's request: cross-entropy on its columns `values` (with its classes' `weight`)
/// against the batch's class indices.
fn request<'a>(case: &Case, data: &'a Data, values: &'a Values, weight: &'a [f32]) -> Request<'a> {
    let target = match case.target {
        Targets::I32 => Target::ClassesI32(&data.classes32),
        _ => Target::ClassesI64(&data.classes),
    };
    let shape = [case.shape[0], weight.len()];
    let mut r = Request::new(LossKind::CrossEntropy, values.input(), shape, target);
    if case.weight {
        r = r.weight(weight);
    }
    with_options(r, &case.options)
}

/// Every host shard case on `engine`, with data from `seed`.
pub fn run(engine: &Engine, seed: u64, report: &mut Report) {
    for (i, cut) in cuts().iter().enumerate() {
        let case = &cut.case;
        let data = Data::draw(case, seed.wrapping_add(i as u64));
        let [batch, classes] = case.shape;
        let pieces: Vec<(Shard, Values, Vec<f32>)> = cut
            .shards()
            .into_iter()
            .map(|(shard, range)| {
                let xs = Values::of(case.dtype, &columns(&data.x, classes, range.clone()));
                (shard, xs, data.weight[range].to_vec())
            })
            .collect();
        let name = cut.name();
        let stats: Vec<xent::Result<ShardStats>> = pieces
            .iter()
            .map(|(shard, xs, ws)| engine.shard_stats(&request(case, &data, xs, ws), *shard))
            .collect();
        report.hashed(&format!("{name} | shard_stats"), |h| {
            stats
                .iter()
                .for_each(|s| h.result(s, |h, s| h.shard_stats(s)));
        });
        let Ok(stats) = stats.into_iter().collect::<xent::Result<Vec<_>>>() else {
            report.surprise(&name, "a shard's statistics failed");
            continue;
        };
        let weight = case.weight.then_some(&data.weight[..]);
        let merged = merge_shards(&stats, &data.classes, weight, &case.options);
        report.ok(&format!("{name} | merge_shards"), &merged, |h, m| {
            h.merged(m)
        });
        let Ok(merged) = merged else { continue };
        let mut grads = Vec::new();
        for (shard, xs, ws) in &pieces {
            let mut grad = vec![0.0_f32; batch * ws.len()];
            let result =
                engine.shard_grad(&request(case, &data, xs, ws), *shard, &merged, &mut grad);
            grads.push(result.map(|()| grad));
        }
        report.hashed(&format!("{name} | shard_grad"), |h| {
            grads.iter().for_each(|g| h.result(g, |h, g| h.f32s(g)));
        });
        if grads.iter().any(Result::is_err) {
            report.surprise(&name, "a shard's gradient failed");
        }
    }
}
