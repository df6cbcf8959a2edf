// Cross-entropy H(p', q) = -Σ_c w_c p'_c log q_c with p' = (1 - ε)p + ε/C, against class indices
// (CLASS_TARGETS) or dense distributions, plus the z-loss s·lse² on logits.
//
// With log q = x - lse for logits (x itself for log-probs, log x for probabilities), the sums
// a = Σ w p' (x - max) and b = Σ w p' give the loss -(a - log(s)·b) in one pass (see
// `add_relative`). For class targets the target term is read directly, and a and b carry only the
// smoothing part, Σ w (x - max) and Σ w.

// Vocabulary shards (SHARD): the input holds classes [c0, c0 + C_s) of rows of `total_classes`,
// and a class target outside them is ELSEWHERE. The statistics pass writes each row's partial
// statistics into `values`, 8 per row: m, s, the target's logit (0 when elsewhere), 1 when the
// target is here (else 0), a = Σ w (x - m) and b = Σ w over the shard (with smoothing; else 0),
// and two zeros. The gradient pass (`segment_grad`) reads each row's merged statistics from
// `partials`: m and s over every shard, and b = (1 - ε) w_y + ε/C Σ w over every class.

fn add_quad(st: ptr<function, Stats>, q: u32, x: vec4<f32>, cls: vec4<u32>, inside: vec4<bool>) {
    let m0 = (*st).m;
    if INPUT_KIND == LOGITS {
        add_exp(st, x, inside, false);
    }
    let w = quad_weights(cls, inside);
    let lq = log_q_unshifted(x);
    // 0·log 0 = 0: a class with no target mass adds nothing, even at log q = -inf.
    if CLASS_TARGETS {
        if params.label_smoothing > 0.0 {
            add_relative(st, m0, w, lq, w != vec4<f32>(0.0));
        }
    } else {
        let eps = params.label_smoothing;
        let wp = select(vec4<f32>(0.0), w * ((1.0 - eps) * dense[q] + eps / f32(params.total_classes)), inside);
        add_relative(st, m0, wp, lq, wp != vec4<f32>(0.0));
    }
}

fn finish_row(row: u32, st: Stats) {
    let lse = row_lse_of(st);
    let g = params.row_base + row;
    if SHARD {
        let y = class_targets[g];
        let here = y < params.classes;
        var x_y = 0.0;
        if here {
            x_y = load_element(row * params.classes + y);
        }
        let at = 8u * g;
        values[at] = st.m;
        values[at + 1u] = st.s;
        values[at + 2u] = x_y;
        values[at + 3u] = select(0.0, 1.0, here);
        values[at + 4u] = st.a;
        values[at + 5u] = st.b;
        values[at + 6u] = 0.0;
        values[at + 7u] = 0.0;
        return;
    }
    let eps = params.label_smoothing;
    var main = 0.0;
    var counted = true;
    if CLASS_TARGETS {
        let y = class_targets[g];
        if y == BAD {
            values[g] = bitcast<f32>(NAN_BITS);
            row_lse[g] = lse;
            return;
        }
        counted = y != IGNORED;
        if counted {
            let log_q_y = log_q_of(st, vec4<f32>(load_element(row * params.classes + y))).x;
            main = -(1.0 - eps) * class_weight(y) * log_q_y;
            if eps > 0.0 {
                main -= eps / f32(params.total_classes) * (st.a - lse_over_base(st) * st.b);
            }
        }
    } else {
        main = -(st.a - lse_over_base(st) * st.b);
    }
    var z = 0.0;
    if counted && params.z_loss > 0.0 {
        z = params.z_loss * lse * lse;
    }
    values[g] = main * main_scale() + z * z_scale();
    row_lse[g] = lse;
}

// d/dx' of main_scale·(-Σ w p' log q) + z_scale·s·lse²: on logits
// main_scale·(b·softmax - w p') + 2·z_scale·s·lse·softmax, with b = Σ w p'; -main_scale·w p' on
// log-probs; -main_scale·w p' / x on probabilities. Ignored rows get 0. For one unweighted class
// without smoothing this is main_scale·(softmax_y - 1), formed in f32 as such.
fn grad_quad(row: u32, st: Stats, q: u32, x: vec4<f32>, cls: vec4<u32>, inside: vec4<bool>) -> vec4<f32> {
    let eps = params.label_smoothing;
    let w = quad_weights(cls, inside);
    var wp = vec4<f32>(0.0);
    var b = st.b;
    if CLASS_TARGETS {
        let y = class_targets[params.row_base + row];
        if y == IGNORED {
            return vec4<f32>(0.0);
        }
        if y == BAD {
            return vec4<f32>(bitcast<f32>(NAN_BITS));
        }
        wp = w * (eps / f32(params.total_classes)) + select(vec4<f32>(0.0), (1.0 - eps) * w, cls == vec4<u32>(y));
        if SHARD {
            b = st.b;
        } else {
            b = (1.0 - eps) * class_weight(y) + eps / f32(params.total_classes) * st.b;
        }
    } else {
        wp = select(vec4<f32>(0.0), w * ((1.0 - eps) * dense[q] + eps / f32(params.total_classes)), inside);
    }
    if INPUT_KIND == LOGITS {
        let lse = row_lse_of(st);
        let softmax = exp(log_q_of(st, x));
        return main_scale() * (b * softmax - wp) + (2.0 * z_scale() * params.z_loss * lse) * softmax;
    }
    if INPUT_KIND == LOG_PROBS {
        return -main_scale() * wp;
    }
    return select(vec4<f32>(0.0), -main_scale() * wp / x, wp != vec4<f32>(0.0));
}
