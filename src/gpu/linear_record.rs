//! The passes of a linear head, recorded into an encoder: for each chunk of rows, in order,
//! 1. L_c = H_c·Wᵀ (+ b), a product into one logits buffer of the request's byte budget;
//! 2. the cross-entropy row kernels over L_c, planned by the same `Plan` as any call, with the
//!    whole request's scales, writing G = ∂loss/∂L over it in place (or, in a vocabulary
//!    shard's statistics pass, each row's statistics);
//! 3. dW (+)= Gᵀ·H_c, db (+)= Σ_rows G and dH_c (+)= G·W, dH last (it may be over H).
//!
//! then the fixed-order tree sum of the rows' losses. A host call (`linear.rs`) records the same
//! passes on the buffers it uploads, so host and device calls give the same bits. No [N, V]
//! buffer exists; every element of every product is summed by one invocation in a fixed order,
//! and dW and db chunk by chunk in order.

use std::ops::Range;

use wgpu::util::DeviceExt;

use super::GpuEngine;
use super::bindings::Bound;
use super::buffer_pool::Slot;
use super::chunk::{WORD_BYTES, linear_chunks};
use super::gemm::{ColumnSums, F32s, Layout, Operand, Product};
use super::params::ParamArena;
use super::plan::{Call, Plan};
use super::resident::ChunkBuffers;
use super::timing::Timing;
use crate::error::Result;
use crate::request::{
    CheckedDeviceLinear, CheckedDeviceTarget, DeviceInput, DeviceLinearOutput, DeviceOutput, Dtype,
    GradTo, TargetKind, linear_chunk_rows,
};

/// The fewest rows a chunk of the default budget holds on a GPU (within one storage binding):
/// dW's product sums over a chunk's rows and adds into all of dW once a chunk, so chunks of a
/// few rows make it a pass over dW each (at 256×1024×8000 on lavapipe, the default's chunks of
/// 32 rows ran the backward products at 7 GFLOP/s).
const MIN_DEFAULT_CHUNK_ROWS: usize = 256;

/// A gradient's buffer and the byte offset it starts at.
type Dst = (wgpu::Buffer, u64);

impl GpuEngine {
    /// Records a checked linear head into `encoder` (timed by `timing`), its logits chunk by
    /// chunk in `chunk`, a buffer of the engine's kept for the next call. With `products_only`
    /// it records the products alone (the probe of their time): no row kernels, no reduction.
    pub(super) fn record_linear(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timing: &mut Timing,
        req: &CheckedDeviceLinear,
        chunk: &mut Slot,
        products_only: bool,
    ) -> Result<DeviceLinearOutput> {
        let [n, v] = req.rows.head.shape;
        if matches!(req.rows.target, CheckedDeviceTarget::Classes { .. }) {
            self.fits_binding("target counts", n, n as u64 * 8)?;
        }
        let call = Call::device(self, &req.rows, Dtype::F32)?;
        let status = self.storage_init(
            "xent target status",
            bytemuck::cast_slice(&[u32::MAX, 0, 0, 0]),
        );
        let results = self.results(&call)?;
        let o = &req.rows.head.options;
        let shard = req.rows.shard.map(|(s, _)| s);
        let grads = self.linear_grads(req)?;
        let mut output = DeviceLinearOutput {
            loss: DeviceOutput {
                values: call.merged.is_none().then(|| results.row_values.clone()),
                loss: None,
                lse: o.lse.then(|| results.lse.clone()),
                grad: None,
                status: status.clone(),
                batch: n,
                classes: shard.map_or(v, |s| s.total_classes),
                ignore_index: o.ignore_index,
                shard: shard.filter(|_| call.merged.is_none()).map(|s| (s, v)),
            },
            hidden: grads[0].as_ref().map(|(b, _)| b.clone()),
            weight: grads[1].as_ref().map(|(b, _)| b.clone()),
            bias: grads[2].as_ref().map(|(b, _)| b.clone()),
        };
        if let Some(empty) = call.empty() {
            output.loss.loss = empty
                .scalar
                .map(|zero| self.storage_init("xent loss", bytemuck::bytes_of(&zero)));
            self.zero_head_grads(encoder, req, &grads)?;
            return Ok(output);
        }
        let chunks = self.linear_chunks(req)?;
        let mut plan = Plan::over_chunks(self, call, chunks, false)?;
        let most = plan.chunks.iter().map(Range::len).max().unwrap_or(0);
        let logits = chunk
            .get(
                &self.ctx.device,
                (most as u64 * v as u64 * 4).max(WORD_BYTES),
            )
            .0
            .clone();
        let operands = Operands {
            req,
            logits: &logits,
            grads: &grads,
        };
        let products = operands.passes(&mut plan, &self.ctx.limits)?;
        let shared = self.prepare_device(encoder, &mut plan, &req.rows, &status)?;
        let dense = self.dense_target(&req.rows.target);
        for (k, rows) in plan.chunks.iter().enumerate() {
            let count = rows.len() as u64 * v as u64;
            let first = rows.start as u64 * v as u64;
            let merged = plan.merged_partials(k).map(|stats| {
                self.storage_init("xent merged statistics", bytemuck::cast_slice(&stats))
            });
            let chunk = ChunkBuffers {
                elements: first..first + count,
                input: Bound::range(&logits, 0, (count * 4).next_multiple_of(WORD_BYTES)),
                grad: Bound::whole(&shared.empty_writable),
                merged: merged.as_ref(),
            };
            let bindings = chunk.bindings(&shared, &results, dense.as_ref());
            let (forward, backward) = &products[k];
            for pass in forward {
                self.record_gemm(timing, encoder, &shared.params, pass)?;
            }
            if !products_only {
                plan.record_chunk(self, (timing, encoder), k, &bindings, None)?;
            }
            for pass in backward {
                self.record_gemm(timing, encoder, &shared.params, pass)?;
            }
        }
        if products_only {
            return Ok(output);
        }
        output.loss.loss = plan.record_reduce(
            self,
            (timing, encoder),
            &shared.params,
            results.row_values,
            |_, bytes| self.exact_output_buffer("xent partial sums", bytes),
        )?;
        Ok(output)
    }

    /// The chunks of rows a linear head's logits are made in: the request's byte budget's rows
    /// (see [`linear_chunk_rows`]; the default's at least `MIN_DEFAULT_CHUNK_ROWS`) within one
    /// storage binding, as `chunk::linear_chunks` cuts them.
    fn linear_chunks(&self, req: &CheckedDeviceLinear) -> Result<Vec<Range<usize>>> {
        let shape = req.rows.head.shape;
        let limits = &self.ctx.limits;
        let dense = req.rows.target_kind() == TargetKind::Dense;
        let align = u64::from(limits.min_storage_buffer_offset_alignment);
        let mut rows = linear_chunk_rows(shape, req.chunk_bytes);
        if req.chunk_bytes.is_none() {
            rows = rows.max(MIN_DEFAULT_CHUNK_ROWS);
        }
        linear_chunks(
            shape,
            rows,
            limits.max_storage_buffer_binding_size,
            (dense, align),
        )
    }

    /// The buffers the gradients go into, and the byte offsets they start at: a new buffer of
    /// the output's, or the caller's.
    fn linear_grads(&self, req: &CheckedDeviceLinear) -> Result<[Option<Dst>; 3]> {
        let [n, v] = req.rows.head.shape;
        let d = req.hidden.shape[1];
        let values = [n * d, v * d, v];
        let mut out = [None, None, None];
        for ((to, grad), values) in out.iter_mut().zip(&req.grads).zip(values) {
            *to = match grad {
                None => None,
                Some(GradTo::New) => {
                    let bytes = values as u64 * 4;
                    Some((self.output_buffer("xent linear gradient", bytes)?, 0))
                }
                Some(GradTo::Into { buffer, offset, .. }) => Some(((*buffer).clone(), *offset)),
            };
        }
        Ok(out)
    }

    /// For a head of no rows: writes zeros where dW and db are written (not added to) into the
    /// caller's buffers, by products of no depth. New buffers are zeros already; dH has nothing.
    fn zero_head_grads(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        req: &CheckedDeviceLinear,
        grads: &[Option<Dst>; 3],
    ) -> Result<()> {
        let [_, v] = req.rows.head.shape;
        let d = req.hidden.shape[1];
        let mut arena = ParamArena::new(&self.ctx.limits);
        let mut passes = Vec::new();
        let weight = operand(&req.weight, 0, Layout::Plain);
        for (i, shape) in [(1, [v as u32, d as u32]), (2, [1, v as u32])] {
            let (Some(GradTo::Into { add: false, .. }), Some((buffer, offset))) =
                (req.grads[i], &grads[i])
            else {
                continue;
            };
            let product = Product {
                shape: [shape[0], shape[1], 0],
                a: weight,
                b: weight,
                c: F32s {
                    buffer,
                    offset: offset / 4,
                },
                ldc: shape[1],
                bias: None,
                accumulate: false,
            };
            let at = arena.push(&product.params(&self.ctx.limits)?);
            passes.push((Gemm::Product(product), at));
        }
        if passes.is_empty() {
            return Ok(());
        }
        let params = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("xent params"),
                contents: &arena.bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        for pass in &passes {
            self.record_gemm(&mut Timing::Off, encoder, &params, pass)?;
        }
        Ok(())
    }

    /// Records one of a linear head's products, its params at `offset` of `params`.
    fn record_gemm(
        &self,
        timing: &mut Timing,
        encoder: &mut wgpu::CommandEncoder,
        params: &wgpu::Buffer,
        (pass, offset): &(Gemm, u32),
    ) -> Result<()> {
        let at = (params, *offset);
        match pass {
            Gemm::Product(p) => {
                let tile = self.product_tile(p)?;
                self.record_product((timing, encoder), p, at, tile)
            }
            Gemm::Sums(sums) => self.record_column_sums((timing, encoder), sums, at),
        }
    }
}

/// A chunk's products, each with its params' offset: the logits', then the gradients'.
type ChunkProducts<'b> = (Vec<(Gemm<'b>, u32)>, Vec<(Gemm<'b>, u32)>);

/// One of a linear head's products.
enum Gemm<'b> {
    Product(Product<'b>),
    Sums(ColumnSums<'b>),
}

/// The matrices of a linear head's products: H, W and b (the request's), the logits chunk, and
/// the gradients' buffers.
struct Operands<'r, 'b> {
    req: &'r CheckedDeviceLinear<'b, 'r>,
    logits: &'b wgpu::Buffer,
    grads: &'b [Option<Dst>; 3],
}

impl<'b> Operands<'_, 'b> {
    /// Every product of every chunk, in the order they run, each with its params pushed into
    /// the plan's arena (before the arena is written): the logits' product, then the
    /// gradients' asked for (dW, db, then dH, which may be over H). Each product takes W (and
    /// dW) a block of classes at a time, blocks that fit one storage binding (`class_blocks`):
    /// one block for a head within it, and then dH sums its blocks' products in order; and each
    /// is dispatched in pieces of at most `gemm::MAX_DEPTH` terms (`Product::pieces`).
    fn passes(&self, plan: &mut Plan, limits: &wgpu::Limits) -> Result<Vec<ChunkProducts<'b>>> {
        let req = self.req;
        let [_, v] = req.rows.head.shape;
        let d = req.hidden.shape[1];
        let backward = req.rows.head.options.grad;
        let add = |i: usize| matches!(req.grads[i], Some(GradTo::Into { add: true, .. }));
        let f32s = |buffer, offset| F32s { buffer, offset };
        let g = |layout, first: usize| Operand {
            buffer: self.logits,
            offset: first as u64,
            ld: v as u32,
            dtype: Dtype::F32,
            layout,
        };
        let dst = |i: usize| {
            let (buffer, offset) = self.grads[i].as_ref().expect("a gradient's buffer");
            (buffer, offset / 4)
        };
        let blocks = class_blocks([v, d], limits);
        let chunks = plan.chunks.clone();
        let mut all = Vec::with_capacity(chunks.len());
        for (k, rows) in chunks.iter().enumerate() {
            let m = rows.len() as u32;
            let hidden = operand(&req.hidden, rows.start * d, Layout::Plain);
            let mut forward = Vec::new();
            for classes in &blocks {
                let (first, width) = (classes.start, classes.len() as u32);
                forward.push(Gemm::Product(Product {
                    shape: [m, width, d as u32],
                    a: hidden,
                    b: operand(&req.weight, first * d, Layout::Transposed),
                    c: f32s(self.logits, first as u64),
                    ldc: v as u32,
                    bias: req
                        .bias
                        .map(|b| f32s(b.buffer, b.offset / 4 + first as u64)),
                    accumulate: false,
                }));
            }
            let mut passes = Vec::new();
            if backward && self.grads[1].is_some() {
                let (buffer, offset) = dst(1);
                for classes in &blocks {
                    let (first, width) = (classes.start, classes.len() as u32);
                    passes.push(Gemm::Product(Product {
                        shape: [width, d as u32, m],
                        a: g(Layout::Transposed, first),
                        b: hidden,
                        c: f32s(buffer, offset + (first * d) as u64),
                        ldc: d as u32,
                        bias: None,
                        accumulate: add(1) || k > 0,
                    }));
                }
            }
            if backward && self.grads[2].is_some() {
                let (buffer, offset) = dst(2);
                passes.push(Gemm::Sums(ColumnSums {
                    shape: [m, v as u32],
                    g: g(Layout::Plain, 0),
                    out: f32s(buffer, offset),
                    accumulate: add(2) || k > 0,
                }));
            }
            if backward && self.grads[0].is_some() {
                let (buffer, offset) = dst(0);
                for (j, classes) in blocks.iter().enumerate() {
                    let (first, width) = (classes.start, classes.len() as u32);
                    passes.push(Gemm::Product(Product {
                        shape: [m, d as u32, width],
                        a: g(Layout::Plain, first),
                        b: operand(&req.weight, first * d, Layout::Plain),
                        c: f32s(buffer, offset + (rows.start * d) as u64),
                        ldc: d as u32,
                        bias: None,
                        accumulate: add(0) || j > 0,
                    }));
                }
            }
            let mut push = |list: Vec<Gemm<'b>>| -> Result<Vec<(Gemm<'b>, u32)>> {
                list.into_iter()
                    .flat_map(|pass| match pass {
                        Gemm::Product(p) => p.pieces().into_iter().map(Gemm::Product).collect(),
                        Gemm::Sums(s) => s.pieces().into_iter().map(Gemm::Sums).collect::<Vec<_>>(),
                    })
                    .map(|pass| {
                        let params = match &pass {
                            Gemm::Product(p) => p.params(limits)?,
                            Gemm::Sums(s) => s.params(limits)?,
                        };
                        Ok((pass, plan.arena.push(&params)))
                    })
                    .collect()
            };
            all.push((push(forward)?, push(passes)?));
        }
        Ok(all)
    }
}

/// The operand of `input`'s values from element `first`, its rows as the input's are.
fn operand<'b>(input: &DeviceInput<'b>, first: usize, layout: Layout) -> Operand<'b> {
    let size = input.dtype.size() as u64;
    Operand {
        buffer: input.buffer,
        offset: input.offset / size + first as u64,
        ld: input.shape[1] as u32,
        dtype: input.dtype,
        layout,
    }
}

/// The blocks of classes whose rows of W, and of dW in f32, fit one storage binding: W [V, D]
/// whole where it fits.
pub(super) fn class_blocks([classes, dim]: [usize; 2], limits: &wgpu::Limits) -> Vec<Range<usize>> {
    let row_bytes = (dim as u64 * 4).max(4);
    let per = usize::try_from(limits.max_storage_buffer_binding_size / row_bytes)
        .unwrap_or(usize::MAX)
        .max(1);
    (0..classes)
        .step_by(per)
        .map(|first| first..classes.min(first + per))
        .collect()
}
