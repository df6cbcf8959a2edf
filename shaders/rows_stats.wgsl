// The running statistics of a row: how a quad folds into them, how two of them merge, what the
// row's lse and log q follow from them, and an invocation's statistics over its quads of a row.

// The max of an empty run: the lowest finite f32, so that exp(EMPTY - EMPTY) stays finite. A row
// of only -inf logits keeps max EMPTY and sum 0, and so gets lse -inf.
const EMPTY: f32 = -3.40282347e38;

// Running statistics of a row. m and s are the online max and Σ exp(x - m) of the logits, t is
// Σ exp(x - m)·(x - m); a, b and c are plain sums whose meaning each family defines.
struct Stats {
    m: f32,
    s: f32,
    t: f32,
    a: f32,
    b: f32,
    c: f32,
}

fn empty_stats() -> Stats {
    return Stats(EMPTY, 0.0, 0.0, 0.0, 0.0, 0.0);
}

// t moves to the new max m with its own s: Σ e^(x-m)(x-m) = e^(m0-m)·(t0 + (m0 - m)·s0).
fn shift_t(st: Stats, m: f32) -> f32 {
    return exp(st.m - m) * (st.t + (st.m - m) * st.s);
}

// The cross-entropy and KL families keep a = Σ v·(log q_unshifted - base) with weight b = Σ v,
// where the base is the running max for logits (0 otherwise): relative to the max, a - log(s)·b
// loses nothing where the logits and the lse are large (summed as Σ v·x, an f32 near 1e6 steps by
// 0.06, and a - lse·b cancels to noise). a moves to a new base m as t does: a + (m0 - m)·b.
fn shift_a(a: f32, b: f32, m0: f32, m: f32) -> f32 {
    if b == 0.0 || INPUT_KIND != LOGITS {
        return a;
    }
    return a + (m0 - m) * b;
}

// The base of `a`, and the lse over it (log s for logits, where the lse is m + log s).
fn a_base(st: Stats) -> f32 {
    if INPUT_KIND == LOGITS {
        return st.m;
    }
    return 0.0;
}

fn lse_over_base(st: Stats) -> f32 {
    if INPUT_KIND == LOGITS {
        return log(st.s);
    }
    return 0.0;
}

// Folds Σ v·(lq - base) and Σ v over the `live` lanes into a and b, after add_exp moved the max
// from m0.
fn add_relative(st: ptr<function, Stats>, m0: f32, v: vec4<f32>, lq: vec4<f32>, live: vec4<bool>) {
    (*st).a = shift_a((*st).a, (*st).b, m0, (*st).m);
    (*st).a += sum4(select(vec4<f32>(0.0), v * (lq - vec4<f32>(a_base(*st))), live));
    (*st).b += sum4(select(vec4<f32>(0.0), v, live));
}

fn merge(x: Stats, y: Stats) -> Stats {
    let m = max(x.m, y.m);
    let s = x.s * exp(x.m - m) + y.s * exp(y.m - m);
    let a = shift_a(x.a, x.b, x.m, m) + shift_a(y.a, y.b, y.m, m);
    return Stats(m, s, shift_t(x, m) + shift_t(y, m), a, x.b + y.b, x.c + y.c);
}

fn sum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// Folds four logits into the online (m, s), and into t when `with_t`. t is kept relative to the
// running max, t = Σ exp(x - m)·(x - m), so that entropy = log s - t / s has no cancellation.
fn add_exp(st: ptr<function, Stats>, x: vec4<f32>, inside: vec4<bool>, with_t: bool) {
    let v = select(vec4<f32>(EMPTY), x, inside);
    let m = max((*st).m, max(max(v.x, v.y), max(v.z, v.w)));
    // The sums move to a new max only when it rises: the rescale's exp is taken only then.
    var scale = 1.0;
    if m > (*st).m {
        scale = exp((*st).m - m);
    }
    let e = exp(v - vec4<f32>(m)) * select(vec4<f32>(0.0), vec4<f32>(1.0), inside);
    if with_t {
        // exp(-inf)·(-inf) would be NaN; a cls of probability 0 adds nothing.
        let own = sum4(select(vec4<f32>(0.0), e * (v - vec4<f32>(m)), e > vec4<f32>(0.0)));
        (*st).t = scale * ((*st).t + ((*st).m - m) * (*st).s) + own;
    }
    (*st).s = (*st).s * scale + sum4(e);
    (*st).m = m;
}

// The row's log-sum-exp, for logits; 0 (no shift) for the other input kinds.
fn row_lse_of(st: Stats) -> f32 {
    if INPUT_KIND == LOGITS {
        return st.m + log(st.s);
    }
    return 0.0;
}

// log q of four inputs of a row with these statistics. For logits (x - m) - log s, the max taken
// off first: x - lse would lose log s wherever m + log s rounds to m (an f32 near 1e8 steps by
// 8), and three equal maxima there would each get log q = 0 instead of -log 3.
fn log_q_of(st: Stats, x: vec4<f32>) -> vec4<f32> {
    if INPUT_KIND == LOGITS {
        return (x - vec4<f32>(st.m)) - vec4<f32>(log(st.s));
    }
    return log_q_unshifted(x);
}

// The quads [x, y) that hold chunk row `row`; the first and last may hold other rows' elements.
fn row_span(row: u32) -> vec2<u32> {
    let start = row * params.classes;
    return vec2<u32>(start / 4u, (start + params.classes + 3u) / 4u);
}

// The quads of segment `segment` of chunk row `row`.
fn segment_span(row: u32, segment: u32) -> vec2<u32> {
    let whole = row_span(row);
    let first = min(whole.x + segment * params.segment_quads, whole.y);
    return vec2<u32>(first, min(first + params.segment_quads, whole.y));
}

// Quads an invocation folds into a block's statistics before merging them into its total: the
// f32 sums then grow over at most SCAN_BLOCK quads and over the blocks, not over a whole row, whose
// rounding error would grow with the row's length (a lane may scan a whole row alone).
const SCAN_BLOCK: u32 = 256u;

// One invocation's statistics over quads span.x + lane, span.x + lane + lanes, ... of a chunk
// row, up to span.y.
fn scan_quads(row: u32, span: vec2<u32>, lane: u32, lanes: u32) -> Stats {
    let start = row * params.classes;
    let end = start + params.classes;
    var total = empty_stats();
    var q = span.x + lane;
    while q < span.y {
        var block = empty_stats();
        let block_end = q + min(span.y - q, SCAN_BLOCK * lanes);
        for (; q < block_end; q += lanes) {
            let idx = vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
            let inside = (idx >= vec4<u32>(start)) & (idx < vec4<u32>(end));
            add_quad(&block, q, transform(load_quad(q)), idx - vec4<u32>(start), inside);
        }
        total = merge(total, block);
    }
    return total;
}
