//! Vocabulary shards on the CPU, in float64, for both CPU engines: each row's partial statistics,
//! and a shard's gradient from the merged ones. A row is taken as its logits after the soft cap,
//! in float64, wherever they come from: a request's input, a chunk of a linear head's logits, or
//! a row the reference computes from the head.

use super::gradient;
use super::reference::{cap, capped_row};
use crate::request::ROW_STATS;
use crate::request::{Checked, IGNORED, Scales, ShardInfo, ShardPass};

/// Each row's statistics over the shard, `ROW_STATS` values per row as the kernels write them
/// (see [`row_stats`]).
pub(crate) fn stats(req: &Checked) -> Vec<f32> {
    let mut out = vec![0.0_f32; req.batch * ROW_STATS];
    for (r, stats) in out.chunks_exact_mut(ROW_STATS).enumerate() {
        row_stats(req, r, &capped_row(req, r), stats);
    }
    out
}

/// Row `r`'s statistics over the shard, from `x`, its logits after the soft cap, into `stats`
/// (`ROW_STATS` values): max (at least the lowest finite f32), Σ exp(x − max), the target's
/// logit, 1 when the target is here, and with smoothing Σ w (x − max) and Σ w.
pub(crate) fn row_stats(req: &Checked, r: usize, x: &[f64], stats: &mut [f32]) {
    let targets = req.target.classes().unwrap_or_default();
    let m = x.iter().copied().fold(f64::from(f32::MIN), f64::max);
    let s: f64 = x.iter().map(|&v| (v - m).exp()).sum();
    let y = targets.get(r).map_or(IGNORED, |&y| y) as usize;
    let here = y < req.classes;
    stats[0] = m as f32;
    stats[1] = s as f32;
    stats[2] = if here { x[y] as f32 } else { 0.0 };
    stats[3] = if here { 1.0 } else { 0.0 };
    if req.options.label_smoothing > 0.0 {
        stats[4] = (0..req.classes)
            .filter(|&c| req.class_weight(c) != 0.0)
            .map(|c| req.class_weight(c) * (x[c] - m))
            .sum::<f64>() as f32;
        stats[5] = (0..req.classes).map(|c| req.class_weight(c)).sum::<f64>() as f32;
    }
}

/// The shard's slice of the gradient (see [`row_grad`]), row by row into `grad`. Each row is read
/// from the request's input, or, where the input is empty (an in-place pass, as a linear head's
/// chunk is), from `grad` itself, which its gradient then overwrites.
pub(crate) fn grad(req: &Checked, grad: &mut [f32]) {
    let in_place = req.input.len() == 0;
    for (r, out) in grad.chunks_exact_mut(req.classes).enumerate() {
        let mut x = if in_place {
            out.iter().map(|&v| cap(req, f64::from(v))).collect()
        } else {
            capped_row(req, r)
        };
        row_grad(req, r, &mut x);
        out.iter_mut().zip(x).for_each(|(g, d)| *g = d as f32);
    }
}

/// Row `r`'s gradient over the shard, over `x`, its logits after the soft cap: from the row's
/// merged (m, s, b), the cross-entropy gradient α(b·softmax − w p′) + 2βs·lse·softmax
/// ([`gradient::cross_entropy`], α and β the main and z-loss scales), through the soft cap's
/// chain rule; 0 on an ignored row. The request is a shard's gradient pass.
pub(crate) fn row_grad(req: &Checked, r: usize, x: &mut [f64]) {
    let targets = req.target.classes().unwrap_or_default();
    let y = targets.get(r).map_or(IGNORED, |&y| y);
    let Some(ShardInfo {
        shard,
        pass: ShardPass::Grad { rows, scales },
    }) = &req.shard
    else {
        unreachable!("a shard's gradient is asked of its gradient pass");
    };
    if y == IGNORED {
        x.fill(0.0);
        return;
    }
    let o = &req.options;
    let eps = f64::from(o.label_smoothing);
    let Scales { main, z_loss } = *scales;
    let (main_scale, z_scale) = (f64::from(main), f64::from(z_loss));
    let (m, s, b) = rows[r];
    let (m, log_s, b) = (f64::from(m), f64::from(s).ln(), f64::from(b));
    let z = gradient::z_coef(z_scale, f64::from(o.z_loss), m + log_s);
    for (c, x) in x.iter_mut().enumerate() {
        let p = if c as u32 == y { 1.0 } else { 0.0 };
        let wp = gradient::smoothed_target(req.class_weight(c), p, eps, shard.total_classes as f64);
        let softmax = ((*x - m) - log_s).exp();
        let mut d = gradient::cross_entropy(main_scale, b, softmax, wp, z);
        if let Some(cap) = o.softcap {
            d = gradient::softcap(d, *x, f64::from(cap));
        }
        *x = d;
    }
}
