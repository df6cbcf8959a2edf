// Multi-label binary cross-entropy, elementwise, with class weights w and, on logits, positive
// weights pw:
//   logits: w·[pw·y·(-log σ(x)) + (1 - y)·(-log(1 - σ(x)))], with -log σ(x) = log1p(e^-|x|) + max(-x, 0)
//           (for a label outside [0, 1], PyTorch's form of the same: see `bce_quad`)
//   probs:  -w·[y·max(log x, -100) + (1 - y)·max(log(1 - x), -100)]   (PyTorch's clamp)
// Rows sum it into c; `elementwise` writes it for the `none` reduction.

// log(1 + e^-|x|); WGSL has no log1p, and log(1 + u) loses u below f32 resolution, so small u
// takes the series.
fn softplus_neg_abs(x: vec4<f32>) -> vec4<f32> {
    let u = exp(-abs(x));
    return select(log(1.0 + u), u * (1.0 - u * (0.5 - u / 3.0)), u < vec4<f32>(1e-4));
}

fn bce_quad(q: u32, x: vec4<f32>, cls: vec4<u32>, inside: vec4<bool>) -> vec4<f32> {
    let y = dense[q];
    let w = quad_weights(cls, inside);
    if INPUT_KIND == LOGITS {
        let sp = softplus_neg_abs(x);
        let zero = vec4<f32>(0.0);
        let pw = pos_weights(cls, inside);
        let neg_log_sigmoid = sp + max(-x, zero);
        // A label in [0, 1] weighs two non-negative terms; one outside it would make them
        // cancel, so it takes PyTorch's form, (1 - y)·x + (1 + (pw - 1)·y)·(-log σ(x)).
        let labelled = pw * y * neg_log_sigmoid + (1.0 - y) * (sp + max(x, zero));
        let outside = (1.0 - y) * x + (1.0 + (pw - 1.0) * y) * neg_log_sigmoid;
        let in_range = y >= zero & y <= vec4<f32>(1.0);
        return w * select(outside, labelled, in_range);
    }
    let floor = vec4<f32>(-100.0);
    return -w * (y * max(log(x), floor) + (1.0 - y) * max(log(1.0 - x), floor));
}

// d/dx: main_scale·w·[σ(x)(1 + (pw - 1)y) - pw·y] on logits; on probabilities
// main_scale·w·(x - y) / max(x(1 - x), 1e-12), as PyTorch's backward.
fn grad_quad(row: u32, st: Stats, q: u32, x: vec4<f32>, cls: vec4<u32>, inside: vec4<bool>) -> vec4<f32> {
    let y = dense[q];
    let w = quad_weights(cls, inside);
    if INPUT_KIND == LOGITS {
        let pw = pos_weights(cls, inside);
        let sigmoid = 1.0 / (1.0 + exp(-x));
        return main_scale() * w * (sigmoid * (1.0 + (pw - 1.0) * y) - pw * y);
    }
    return main_scale() * w * (x - y) / max(x * (1.0 - x), vec4<f32>(1e-12));
}

fn add_quad(st: ptr<function, Stats>, q: u32, x: vec4<f32>, cls: vec4<u32>, inside: vec4<bool>) {
    (*st).c += sum4(select(vec4<f32>(0.0), bce_quad(q, x, cls, inside), inside));
}

fn finish_row(row: u32, st: Stats) {
    let g = params.row_base + row;
    values[g] = st.c * main_scale();
    row_lse[g] = 0.0;
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
    let idx = vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
    let inside = idx < vec4<u32>(total);
    let cls = idx % vec4<u32>(params.classes);
    let v = bce_quad(q, load_quad(q), cls, inside);
    for (var k = 0u; k < 4u; k++) {
        if inside[k] {
            values[idx[k]] = v[k] * main_scale();
        }
    }
}
