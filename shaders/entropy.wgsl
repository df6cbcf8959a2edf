// Entropy H(q) = -Σ q log q of each row. On logits, from the running statistics:
// H = log s - t / s with t = Σ e^(x-m)(x-m); otherwise c = -Σ q log q directly, with 0·log 0 = 0.

fn add_quad(st: ptr<function, Stats>, q: u32, x: vec4<f32>, cls: vec4<u32>, inside: vec4<bool>) {
    if INPUT_KIND == LOGITS {
        add_exp(st, x, inside, true);
        return;
    }
    var p = x;
    var lq = log(x);
    if INPUT_KIND == LOG_PROBS {
        p = exp(x);
        lq = x;
    }
    (*st).c += sum4(select(vec4<f32>(0.0), -p * lq, inside & (p > vec4<f32>(0.0))));
}

fn row_entropy(st: Stats) -> f32 {
    if INPUT_KIND == LOGITS {
        return log(st.s) - st.t / st.s;
    }
    return st.c;
}

fn finish_row(row: u32, st: Stats) {
    let lse = row_lse_of(st);
    let h = row_entropy(st);
    let g = params.row_base + row;
    values[g] = h * main_scale();
    row_lse[g] = lse;
}

// dH/dx: -q (log q + H) on logits; -(log x + 1) on probabilities; -e^x (x + 1) on log-probs.
fn grad_quad(row: u32, st: Stats, q: u32, x: vec4<f32>, cls: vec4<u32>, inside: vec4<bool>) -> vec4<f32> {
    if INPUT_KIND == LOGITS {
        let log_q = log_q_of(st, x);
        let p = exp(log_q);
        return select(vec4<f32>(0.0), -main_scale() * p * (log_q + row_entropy(st)), p > vec4<f32>(0.0));
    }
    if INPUT_KIND == PROBS {
        return -main_scale() * (log(x) + 1.0);
    }
    return -main_scale() * exp(x) * (x + 1.0);
}
