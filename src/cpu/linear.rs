//! The fast path of a linear request. Rows are taken in chunks whose logits fit the request's
//! byte budget; for each chunk, in order:
//! 1. L = H_c·Wᵀ (+ b), by a GEMM into the one chunk buffer;
//! 2. the fast row pass over L, in place, with the whole request's reduction scales, which leaves
//!    G = ∂loss/∂L there (the soft cap's chain rule included);
//! 3. dH_c = G·W, dW += Gᵀ·H_c (GEMMs) and db += Σ_rows G.
//!
//! Without a gradient, step 2 only reads L, and step 3 is skipped. The chunk size comes from the
//! budget, never from the thread count, and every sum runs in a fixed order (the GEMMs', the row
//! pass's, db's row by row), so the result has the same bits on any number of threads. Memory
//! beyond the inputs and gradients: the chunk, the GEMMs' packing, and float32 copies of 16-bit
//! operands: a chunk of H, and a block of W's classes at a time ([`Weight`]).

use super::fast::{self, RowsOut};
use super::gemm::{Dst, Operand, matmul};
use crate::output::{LinearGradsMut, Loss, Output};
use crate::request::{CheckedLinear, Input, Reduction, scalar};
use std::ops::Range;

/// The most bytes of a 16-bit W converted to float32 at once.
const WEIGHT_BLOCK_BYTES: usize = 8 << 20;

/// W [V, D] as the GEMMs take it: float32 in place, whole; or 16-bit, a block of at most
/// [`WEIGHT_BLOCK_BYTES`] (64 classes at least) converted at a time into one reused buffer, so
/// that no float32 copy of the whole head is made.
struct Weight<'a> {
    input: Input<'a>,
    dim: usize,
    block: usize,
    classes: usize,
    buffer: Vec<f32>,
}

impl<'a> Weight<'a> {
    fn new(input: Input<'a>, [classes, dim]: [usize; 2]) -> Self {
        let block = match input {
            Input::F32(_) => classes.max(1),
            _ => (WEIGHT_BLOCK_BYTES / (4 * dim.max(1))).max(64),
        };
        Weight {
            input,
            dim,
            block,
            classes,
            buffer: Vec::new(),
        }
    }

    /// The blocks of classes the products take W in, in order.
    fn blocks(&self) -> Vec<Range<usize>> {
        (0..self.classes)
            .step_by(self.block)
            .map(|first| first..self.classes.min(first + self.block))
            .collect()
    }

    /// W's rows `classes` as float32.
    fn rows(&mut self, classes: Range<usize>) -> &[f32] {
        let values = classes.start * self.dim..classes.end * self.dim;
        match self.input {
            Input::F32(w) => &w[values],
            other => {
                other.widen_into(values, &mut self.buffer);
                &self.buffer
            }
        }
    }
}

/// Computes a checked linear request, putting the gradients into the slices `grads` holds.
pub(crate) fn compute(req: &CheckedLinear, grads: LinearGradsMut) -> Output {
    let logits = &req.logits;
    let n = logits.batch;
    let grad = grads.hidden.is_some() || grads.weight.is_some() || grads.bias.is_some();
    let unreduced = logits.options.reduction == Reduction::None;
    let mut row_values = vec![0.0_f32; if unreduced { n } else { 0 }];
    let mut lse = logits.options.lse.then(|| vec![0.0_f32; n]);
    let scales = logits.scales();
    let mut options = logits.options;
    options.grad = grad;
    let mut sums = (0.0, 0.0);
    chunks(req, grads, |rows, l| {
        let row_values = (!row_values.is_empty()).then(|| &mut row_values[rows.clone()]);
        let lse = lse.as_mut().map(|l| &mut l[rows.clone()]);
        // With a gradient the row pass writes G over the logits it reads; without, it only reads.
        let (input, grad_out) = if grad {
            (Input::F32(&[]), Some(l))
        } else {
            (Input::F32(l), None)
        };
        let out = RowsOut {
            in_place: grad_out.is_some(),
            grad: grad_out,
            values: None,
            row_values,
            lse,
        };
        let chunk_sums = fast::rows(&logits.rows(rows, input, options), scales, out);
        sums = (sums.0 + chunk_sums.0, sums.1 + chunk_sums.1);
    });
    let loss = if unreduced {
        Loss::Unreduced {
            values: row_values,
            shape: vec![n],
        }
    } else {
        scalar(sums, logits.divisors())
    };
    Output {
        loss,
        lse,
        grad: None,
        valid_rows: logits.valid_rows,
        linear_grads: None,
    }
}

/// A linear request's chunks of rows, in order: for each, L = H_c·Wᵀ + b into the one chunk
/// buffer, then `pass(rows, L)`, the row pass. Where `grads` holds any slice, the row pass
/// leaves G = ∂loss/∂L in L, and the backward products follow: dH_c = G·W into the hidden
/// states' rows, dW += Gᵀ·H_c and db += Σ_rows G, each written or, with `add`, added to what
/// its slice holds.
pub(super) fn chunks(
    req: &CheckedLinear,
    grads: LinearGradsMut,
    mut pass: impl FnMut(Range<usize>, &mut [f32]),
) {
    let (n, v, d) = (req.logits.batch, req.logits.classes, req.head.dim);
    let LinearGradsMut {
        mut hidden,
        mut weight,
        mut bias,
        add,
    } = grads;
    let grad = hidden.is_some() || weight.is_some() || bias.is_some();
    if !add {
        weight.iter_mut().for_each(|w| w.fill(0.0));
        bias.iter_mut().for_each(|b| b.fill(0.0));
    }
    let mut w = Weight::new(req.head.weight, [v, d]);
    let rows_per_chunk = req.chunk_rows();
    let mut chunk = vec![0.0_f32; rows_per_chunk.min(n) * v];
    for start in (0..n).step_by(rows_per_chunk) {
        let rows = start..n.min(start + rows_per_chunk);
        let m = rows.len();
        let h = req.head.hidden.f32s(rows.start * d..rows.end * d);
        let l = &mut chunk[..m * v];
        forward(l, &h, &mut w, req.head.bias, [m, d, v]);
        pass(rows.clone(), l);
        if !grad {
            continue;
        }
        let g = &chunk[..m * v];
        let dh = hidden
            .as_deref_mut()
            .map(|dh| &mut dh[rows.start * d..rows.end * d]);
        backward(g, &h, &mut w, dh, weight.as_deref_mut(), add, [m, d, v]);
        if let Some(db) = bias.as_deref_mut() {
            for row in g.chunks_exact(v) {
                db.iter_mut().zip(row).for_each(|(b, g)| *b += g);
            }
        }
    }
}

/// L [m, v] ← h [m, d] · wᵀ, a block of W's classes at a time, then + `bias` on each row: added
/// once to each finished product, so that a product's rounding never depends on the bias.
fn forward(l: &mut [f32], h: &[f32], w: &mut Weight, bias: Option<&[f32]>, [m, d, v]: [usize; 3]) {
    for classes in w.blocks() {
        let (first, width) = (classes.start, classes.len());
        let w_block = Operand::transposed(w.rows(classes));
        let dst = Dst::write(&mut l[first..]).strided(v);
        matmul([m, width, d], dst, Operand::plain(h), w_block);
    }
    if let Some(b) = bias {
        for row in l.chunks_exact_mut(v) {
            row.iter_mut().zip(b).for_each(|(x, b)| *x += b);
        }
    }
}

/// The most bytes of G one of dW's products reads: the GEMM packs that block of G whole, so this
/// bounds its copy (at least 64 classes a block, however many rows).
const DW_BLOCK_BYTES: usize = 512 << 10;

/// dh [m, d] ← g [m, v] · w, summed over W's blocks of classes in order (with `add`, dh += that
/// product, formed whole first), and dw [v, d] += gᵀ · h, each when given. dw takes the product's
/// transpose, hᵀ · g, written transposed, a block of [`DW_BLOCK_BYTES`] of g at a time, so that
/// the GEMM never copies the whole of g.
fn backward(
    g: &[f32],
    h: &[f32],
    w: &mut Weight,
    dh: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    add: bool,
    [m, d, v]: [usize; 3],
) {
    if let Some(dh) = dh {
        let mut product = if add { vec![0.0; m * d] } else { Vec::new() };
        let to: &mut [f32] = if add { &mut product } else { dh };
        for (k, classes) in w.blocks().into_iter().enumerate() {
            let (first, width) = (classes.start, classes.len());
            let g_block = Operand::plain(&g[first..]).strided(v);
            let dst = Dst::write(&mut *to).adding(k > 0);
            matmul([m, d, width], dst, g_block, Operand::plain(w.rows(classes)));
        }
        if add {
            dh.iter_mut().zip(&product).for_each(|(x, p)| *x += p);
        }
    }
    if let Some(dw) = dw {
        let block = (DW_BLOCK_BYTES / (4 * m.max(1))).max(64);
        for first in (0..v).step_by(block) {
            let classes = first..v.min(first + block);
            let g_block = Operand::plain(&g[first..]).strided(v);
            let dst = Dst::write(&mut dw[classes.start * d..classes.end * d]).transposed();
            matmul(
                [d, classes.len(), m],
                dst.adding(true),
                Operand::transposed(h),
                g_block,
            );
        }
    }
}

/// The seconds the GEMMs of a linear request take alone, chunk by chunk as [`compute`] runs
/// them: the logits' product, and with `backward` the two of the gradients (over the logits in
/// place of G). The buffers are made, and their pages touched, before the clock starts, as a
/// training loop's are.
pub(crate) fn probe(req: &CheckedLinear, backward_too: bool) -> f64 {
    let (n, v, d) = (req.logits.batch, req.logits.classes, req.head.dim);
    let mut w = Weight::new(req.head.weight, [v, d]);
    let rows_per_chunk = req.chunk_rows();
    let touched = |len: usize| vec![1.0_f32; len];
    let mut chunk = touched(rows_per_chunk.min(n) * v);
    let mut dh = touched(if backward_too { n * d } else { 0 });
    let mut dw = touched(if backward_too { v * d } else { 0 });
    let start = std::time::Instant::now();
    for first in (0..n).step_by(rows_per_chunk) {
        let rows = first..n.min(first + rows_per_chunk);
        let m = rows.len();
        let h = req.head.hidden.f32s(rows.start * d..rows.end * d);
        forward(&mut chunk[..m * v], &h, &mut w, req.head.bias, [m, d, v]);
        if backward_too {
            let dh = &mut dh[rows.start * d..rows.end * d];
            backward(
                &chunk[..m * v],
                &h,
                &mut w,
                Some(dh),
                Some(&mut dw),
                false,
                [m, d, v],
            );
        }
    }
    start.elapsed().as_secs_f64()
}
