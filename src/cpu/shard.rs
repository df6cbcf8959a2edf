//! Vocabulary shards on the CPU, in float64, for both CPU engines: each row's partial statistics,
//! and a shard's gradient from the merged ones.

use super::gradient;
use super::reference::capped_row;
use crate::request::ROW_STATS;
use crate::request::{Checked, IGNORED, Scales, ShardInfo, ShardPass};

/// Each row's statistics over the shard, `ROW_STATS` values per row as the kernels write them:
/// max (at least the lowest finite f32), Σ exp(x − max), the target's logit, 1 when the target
/// is here, and with smoothing Σ w (x − max) and Σ w.
pub(crate) fn stats(req: &Checked) -> Vec<f32> {
    let targets = req.target.classes().unwrap_or_default();
    let smoothing = req.options.label_smoothing > 0.0;
    let mut out = vec![0.0_f32; req.batch * ROW_STATS];
    for (r, stats) in out.chunks_exact_mut(ROW_STATS).enumerate() {
        let x = capped_row(req, r);
        let m = x.iter().copied().fold(f64::from(f32::MIN), f64::max);
        let s: f64 = x.iter().map(|&v| (v - m).exp()).sum();
        let y = targets.get(r).map_or(IGNORED, |&y| y) as usize;
        let here = y < req.classes;
        stats[0] = m as f32;
        stats[1] = s as f32;
        stats[2] = if here { x[y] as f32 } else { 0.0 };
        stats[3] = if here { 1.0 } else { 0.0 };
        if smoothing {
            stats[4] = (0..req.classes)
                .filter(|&c| req.class_weight(c) != 0.0)
                .map(|c| req.class_weight(c) * (x[c] - m))
                .sum::<f64>() as f32;
            stats[5] = (0..req.classes).map(|c| req.class_weight(c)).sum::<f64>() as f32;
        }
    }
    out
}

/// The shard's slice of the gradient: for each row, from its merged (m, s, b), the cross-entropy
/// gradient α(b·softmax − w p′) + 2βs·lse·softmax ([`gradient::cross_entropy`], α and β the
/// main and z-loss scales), through the soft cap's chain rule; 0 on ignored rows.
pub(crate) fn grad(req: &Checked, grad: &mut [f32]) {
    let Some(ShardInfo {
        shard,
        pass: ShardPass::Grad { rows, scales },
    }) = &req.shard
    else {
        return;
    };
    let total_classes = shard.total_classes as f64;
    let targets = req.target.classes().unwrap_or_default();
    let o = &req.options;
    let eps = f64::from(o.label_smoothing);
    let Scales { main, z_loss } = *scales;
    let (main_scale, z_scale) = (f64::from(main), f64::from(z_loss));
    for (r, out) in grad.chunks_exact_mut(req.classes).enumerate() {
        let y = targets.get(r).map_or(IGNORED, |&y| y);
        if y == IGNORED {
            out.fill(0.0);
            continue;
        }
        let (m, s, b) = rows[r];
        let (m, log_s, b) = (f64::from(m), f64::from(s).ln(), f64::from(b));
        let lse = m + log_s;
        let z = gradient::z_coef(z_scale, f64::from(o.z_loss), lse);
        let x = capped_row(req, r);
        for (c, g) in out.iter_mut().enumerate() {
            let p = if c as u32 == y { 1.0 } else { 0.0 };
            let wp = gradient::smoothed_target(req.class_weight(c), p, eps, total_classes);
            let softmax = ((x[c] - m) - log_s).exp();
            let mut d = gradient::cross_entropy(main_scale, b, softmax, wp, z);
            if let Some(cap) = o.softcap {
                d = gradient::softcap(d, x[c], f64::from(cap));
            }
            *g = d as f32;
        }
    }
}
