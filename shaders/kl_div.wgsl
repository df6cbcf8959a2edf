// KL divergence: elementwise k = p (log p - log q), with 0 where p = 0. Rows sum it from
// c = Σ p log p, a = Σ p·(log q_unshifted - max) and b = Σ p (see `add_relative`), as
// c - (a - log(s)·b). `elementwise` writes k itself, for the `none` reduction, from the row
// statistics that the row pass kept (KEEP_STATS).

// The target probability of four elements and p log p, both 0 where p = 0.
fn target_quad(q: u32) -> array<vec4<f32>, 2> {
    let t = dense[q];
    if LOG_TARGET {
        let p = exp(t);
        return array<vec4<f32>, 2>(p, select(vec4<f32>(0.0), p * t, p > vec4<f32>(0.0)));
    }
    return array<vec4<f32>, 2>(t, select(vec4<f32>(0.0), t * log(t), t > vec4<f32>(0.0)));
}

fn add_quad(st: ptr<function, Stats>, q: u32, x: vec4<f32>, cls: vec4<u32>, inside: vec4<bool>) {
    let m0 = (*st).m;
    if INPUT_KIND == LOGITS {
        add_exp(st, x, inside, false);
    }
    let target_terms = target_quad(q);
    let p = target_terms[0];
    let live = inside & (p > vec4<f32>(0.0));
    (*st).c += sum4(select(vec4<f32>(0.0), target_terms[1], live));
    add_relative(st, m0, p, log_q_unshifted(x), live);
}

fn finish_row(row: u32, st: Stats) {
    let lse = row_lse_of(st);
    let g = params.row_base + row;
    values[g] = (st.c - (st.a - lse_over_base(st) * st.b)) * main_scale();
    row_lse[g] = lse;
}

// d/dx of main_scale·Σ p (log p - log q): main_scale·(b·softmax - p) on logits with b = Σ p;
// -main_scale·p on log-probs; -main_scale·p / x on probabilities.
fn grad_quad(row: u32, st: Stats, q: u32, x: vec4<f32>, cls: vec4<u32>, inside: vec4<bool>) -> vec4<f32> {
    let p = select(vec4<f32>(0.0), target_quad(q)[0], inside);
    if INPUT_KIND == LOGITS {
        return main_scale() * (st.b * exp(log_q_of(st, x)) - p);
    }
    if INPUT_KIND == LOG_PROBS {
        return -main_scale() * p;
    }
    return select(vec4<f32>(0.0), -main_scale() * p / x, p != vec4<f32>(0.0));
}

@compute @workgroup_size(ELEMENTWISE_GROUP)
fn elementwise(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let quad = element_quad(wg, groups, lid);
    if quad.y == 0u {
        return;
    }
    let q = quad.x;
    let total = params.rows * params.classes;
    let target_terms = target_quad(q);
    let p = target_terms[0];
    let x = transform(load_quad(q));
    for (var k = 0u; k < 4u; k++) {
        let i = q * 4u + k;
        if i < total {
            var v = 0.0;
            if p[k] > 0.0 {
                // The row's statistics, kept by the row pass (KEEP_STATS).
                let st = partials[(i / params.classes) * params.segments];
                v = target_terms[1][k] - p[k] * log_q_of(st, vec4<f32>(x[k])).x;
            }
            values[i] = v * main_scale();
        }
    }
}
