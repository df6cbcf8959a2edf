//! Host side of `shaders/gemm.wgsl`: matrix products C = A·B (plus a bias, or added to C) on
//! f32, f16 or bf16 operands stored plain or transposed, and the column sums of a matrix. Each is
//! recorded into the caller's encoder with params the caller has written beforehand
//! (`Product::params`, `ColumnSums::params`, pushed into a `ParamArena`), so that a call of
//! many products writes all its params at once.

mod span;
mod tile;
pub(super) mod tune;

#[cfg(test)]
mod speed;
#[cfg(test)]
mod tests;

use tile::Adapter;
pub(crate) use tile::{Kind, Tile};

use super::GpuEngine;
use super::bindings::{Bound, GemmBindings};
use super::pipelines::{Key, Pipeline};
use super::shaders::{COLUMNS_GROUP, Module, dtype_code};
use super::timing::Timing;
use crate::error::Result;
use crate::request::Dtype;
use span::{Span, Stored};

/// Mirrors `Params` in `gemm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub accumulate: u32,
    pub lda: u32,
    pub a_offset: u32,
    pub ldb: u32,
    pub b_offset: u32,
    pub ldc: u32,
    pub c_offset: u32,
    pub bias: u32,
    pub bias_offset: u32,
}

/// How an operand is stored: A as [M, K] and B as [K, N] (`Plain`), or A as [K, M] and B as
/// [N, K] (`Transposed`), row-major either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    Plain,
    Transposed,
}

/// A matrix a kernel reads: elements of `dtype` from element `offset` of `buffer`, its stored
/// rows `ld` elements apart. 16-bit elements are two to a 4-byte word, the lower first, and may
/// start mid-word.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'b> {
    pub buffer: &'b wgpu::Buffer,
    pub offset: u64,
    pub ld: u32,
    pub dtype: Dtype,
    pub layout: Layout,
}

/// f32 elements of `buffer` from element `offset`.
#[derive(Clone, Copy)]
pub(crate) struct F32s<'b> {
    pub buffer: &'b wgpu::Buffer,
    pub offset: u64,
}

/// C = A·B, with a `bias` C = A·B + bias (bias[j] added to column j after the whole sum), and
/// with `accumulate` C = C + that: `shape` is (m, n, k), C is [m, n] row-major with rows `ldc`
/// apart. Each element of C is one f32 sum over k in order, the same bits on every tile.
#[derive(Clone, Copy)]
pub(crate) struct Product<'b> {
    pub shape: [u32; 3],
    pub a: Operand<'b>,
    pub b: Operand<'b>,
    pub c: F32s<'b>,
    pub ldc: u32,
    pub bias: Option<F32s<'b>>,
    pub accumulate: bool,
}

/// out[j] = Σ_i G[i, j] over i in order (with `accumulate`, out[j] + that sum), for an [m, n] G
/// (`shape` is (m, n)) stored as an A operand is.
#[derive(Clone, Copy)]
pub(crate) struct ColumnSums<'b> {
    pub shape: [u32; 2],
    pub g: Operand<'b>,
    pub out: F32s<'b>,
    pub accumulate: bool,
}

/// What a product or a column sum binds (A, B, bias, C), and its params, which locate the
/// matrices within the ranges.
struct Binding<'b> {
    params: Params,
    spans: [Span<'b>; 4],
}

/// The most terms one dispatch sums into an element of C (of a product's k, or of a column
/// sum's rows). A longer sum is split into dispatches of this many, in order, each added to C:
/// every shader loop stays short (llvmpipe ends any loop of an invocation after 65 535 trips,
/// silently), and the sum is two-level, each piece's rounding then the pieces', whose error
/// grows with 1024 + K / 1024 terms rather than with K.
pub(crate) const MAX_DEPTH: u32 = 1024;

/// `depth` terms in pieces of at most [`MAX_DEPTH`]: each piece's first term and length; one
/// piece (of none) for an empty sum.
fn pieces(depth: u32) -> impl Iterator<Item = (u32, u32)> {
    (0..depth.div_ceil(MAX_DEPTH).max(1)).map(move |p| {
        (
            p * MAX_DEPTH,
            depth.saturating_sub(p * MAX_DEPTH).min(MAX_DEPTH),
        )
    })
}

impl<'b> Operand<'b> {
    /// The operand from term `k0` of the sum on: A's column k0 on (B's row k0 on) of the matrix
    /// as the product reads it, wherever its layout stores it. `a_side`: A ([m, k]), else B
    /// ([k, n]).
    fn at_term(self, k0: u32, a_side: bool) -> Self {
        let along_rows = (self.layout == Layout::Plain) != a_side;
        let step = if along_rows { u64::from(self.ld) } else { 1 };
        Operand {
            offset: self.offset + u64::from(k0) * step,
            ..self
        }
    }
}

impl<'b> Product<'b> {
    /// The dispatches of this product, in order, each summing at most [`MAX_DEPTH`] terms: the
    /// first as asked (with the bias, written or added to C), the rest added to C.
    pub fn pieces(self) -> Vec<Product<'b>> {
        let [m, n, k] = self.shape;
        pieces(k)
            .map(|(k0, depth)| Product {
                shape: [m, n, depth],
                a: self.a.at_term(k0, true),
                b: self.b.at_term(k0, false),
                bias: self.bias.filter(|_| k0 == 0),
                accumulate: self.accumulate || k0 > 0,
                ..self
            })
            .collect()
    }
}

impl<'b> ColumnSums<'b> {
    /// The dispatches of these sums, in order, each over at most [`MAX_DEPTH`] rows: the first
    /// as asked, the rest added to the output.
    pub fn pieces(self) -> Vec<ColumnSums<'b>> {
        let [m, n] = self.shape;
        pieces(m)
            .map(|(r0, rows)| ColumnSums {
                shape: [rows, n],
                g: self.g.at_term(r0, false),
                accumulate: self.accumulate || r0 > 0,
                ..self
            })
            .collect()
    }
}

impl Product<'_> {
    /// The product's params, for the caller's params buffer; `Error::TooLarge` where a range it
    /// reads or writes exceeds one storage binding, `Error::DeviceBuffer` where it does not fit
    /// its buffer or a leading dimension is shorter than a row.
    pub fn params(&self, limits: &wgpu::Limits) -> Result<Params> {
        Ok(self.binding(limits)?.params)
    }

    fn binding(&self, limits: &wgpu::Limits) -> Result<Binding<'_>> {
        let [m, n, k] = self.shape;
        let a = self.a.stored("gemm A", [m, k]).span(limits)?;
        let b = self.b.stored("gemm B", [k, n]).span(limits)?;
        let c = self.c.stored("gemm C", [m, n], self.ldc).span(limits)?;
        let bias = match self.bias {
            Some(bias) => bias.stored("gemm bias", [1, n], n).span(limits)?,
            None => a,
        };
        let params = Params {
            m,
            n,
            k,
            accumulate: u32::from(self.accumulate),
            lda: self.a.ld,
            a_offset: a.within,
            ldb: self.b.ld,
            b_offset: b.within,
            ldc: self.ldc,
            c_offset: c.within,
            bias: u32::from(self.bias.is_some()),
            bias_offset: bias.within,
        };
        Ok(Binding {
            params,
            spans: [a, b, bias, c],
        })
    }
}

impl ColumnSums<'_> {
    /// The column sums' params, for the caller's params buffer; errors as `Product::params`.
    pub fn params(&self, limits: &wgpu::Limits) -> Result<Params> {
        Ok(self.binding(limits)?.params)
    }

    fn binding(&self, limits: &wgpu::Limits) -> Result<Binding<'_>> {
        let [m, n] = self.shape;
        let g = self.g.stored("column sums' input", [m, n]).span(limits)?;
        let out = self
            .out
            .stored("column sums' output", [1, n], n)
            .span(limits)?;
        let params = Params {
            m,
            n,
            accumulate: u32::from(self.accumulate),
            lda: self.g.ld,
            a_offset: g.within,
            c_offset: out.within,
            ..Params::default()
        };
        Ok(Binding {
            params,
            spans: [g, g, g, out],
        })
    }
}

impl<'b> Operand<'b> {
    /// The operand as a [rows, cols] matrix (A: [m, k], B: [k, n]), stored as its layout says.
    fn stored(&self, what: &'static str, [rows, cols]: [u32; 2]) -> Stored<'b> {
        Stored {
            what,
            buffer: self.buffer,
            offset: self.offset,
            bytes: self.dtype.size() as u64,
            shape: match self.layout {
                Layout::Plain => [rows, cols],
                Layout::Transposed => [cols, rows],
            },
            ld: self.ld,
        }
    }
}

impl<'b> F32s<'b> {
    /// A [rows, cols] f32 matrix here, rows `ld` apart.
    fn stored(&self, what: &'static str, shape: [u32; 2], ld: u32) -> Stored<'b> {
        Stored {
            what,
            buffer: self.buffer,
            offset: self.offset,
            bytes: 4,
            shape,
            ld,
        }
    }
}

impl Binding<'_> {
    /// The bind group of `pipeline`, for a kernel that reads quads (`quads`) or not.
    fn bind(
        &self,
        device: &wgpu::Device,
        params: &wgpu::Buffer,
        pipeline: &Pipeline,
        quads: Option<(Bound, Bound)>,
    ) -> wgpu::BindGroup {
        let [a, b, bias, c] = self.spans;
        let (a_quads, b_quads) = quads.unwrap_or((a.range, b.range));
        GemmBindings {
            params: Bound::params::<Params>(params),
            a: a.range,
            b: b.range,
            bias: bias.range,
            c: c.range,
            a_quads,
            b_quads,
        }
        .bind(device, &pipeline.layout)
    }
}

/// The pipeline of `entry` on `tile`'s module, for operands `a` and `b`, whose quads are
/// aligned as `quads` says where the tile reads quads.
fn key(tile: Tile, entry: &'static str, (a, b): (&Operand, &Operand), quads: [bool; 2]) -> Key {
    let transposed = |o: &Operand| u32::from(o.layout == Layout::Transposed);
    let mut constants = vec![
        ("A_DTYPE", dtype_code(a.dtype)),
        ("B_DTYPE", dtype_code(b.dtype)),
        ("A_TRANSPOSED", transposed(a)),
        ("B_TRANSPOSED", transposed(b)),
    ];
    if tile.reads_quads() {
        constants.extend([
            ("A_QUADS", u32::from(quads[0])),
            ("B_QUADS", u32::from(quads[1])),
        ]);
    }
    Key {
        module: Module::Gemm { tile },
        entry,
        constants,
    }
}

impl GpuEngine {
    /// The tile of the rule for a product of `shape` (m, n, k) on this device.
    pub(crate) fn gemm_tile(&self, shape: [u32; 3]) -> Tile {
        Tile::rule(self.tile_adapter(), shape)
    }

    /// The candidate tiles that run on this device: what the autotune times.
    pub(crate) fn gemm_tiles(&self) -> Vec<Tile> {
        let adapter = self.tile_adapter();
        Tile::candidates()
            .iter()
            .copied()
            .filter(|t| t.runs_on(adapter))
            .collect()
    }

    fn tile_adapter(&self) -> Adapter {
        let info = &self.ctx.info;
        Adapter {
            cpu: self.ctx.cpu_adapter,
            subgroups: self.ctx.subgroups,
            subgroup_sizes: (info.subgroup_min_size, info.subgroup_max_size),
        }
    }

    /// Records `product` into `encoder` (timed as `timing` says) on `tile`, reading its params at
    /// byte `offset` of `params`, where the caller wrote `product.params(limits)`. Errors as
    /// `Product::params`; records nothing for an empty C.
    pub(crate) fn record_product(
        &self,
        (timing, encoder): (&mut Timing, &mut wgpu::CommandEncoder),
        product: &Product,
        (params, offset): (&wgpu::Buffer, u32),
        tile: Tile,
    ) -> Result<()> {
        let [m, n, _] = product.shape;
        let binding = product.binding(&self.ctx.limits)?;
        if m == 0 || n == 0 {
            return Ok(());
        }
        let [a, b, ..] = binding.spans;
        let quads = a.quads.zip(b.quads).filter(|_| tile.reads_quads());
        // Every tile gives the same bits: where a matrix is too near its buffer's end for the
        // quads of the CPU adapters' kernels, another tile serves.
        let tile = match quads {
            None if tile.reads_quads() => Tile::FALLBACK,
            _ => tile,
        };
        let aligned = quads.map_or([false; 2], |((_, a), (_, b))| [a, b]);
        let operands = (&product.a, &product.b);
        let pipeline = self.pipeline(&key(tile, tile.entry(), operands, aligned));
        let quads = quads.map(|((a, _), (b, _))| (a, b));
        let bind = binding.bind(&self.ctx.device, params, &pipeline, quads);
        let groups = tile.groups(m, n);
        self.dispatch(timing, encoder, &pipeline.pipeline, &bind, offset, groups)
    }

    /// Records `sums` into `encoder` as `record_product` records a product, its params
    /// (`sums.params(limits)`) at byte `offset` of `params`.
    pub(crate) fn record_column_sums(
        &self,
        (timing, encoder): (&mut Timing, &mut wgpu::CommandEncoder),
        sums: &ColumnSums,
        (params, offset): (&wgpu::Buffer, u32),
    ) -> Result<()> {
        let binding = sums.binding(&self.ctx.limits)?;
        let n = sums.shape[1];
        if n == 0 {
            return Ok(());
        }
        let operands = (&sums.g, &sums.g);
        let pipeline = self.pipeline(&key(Tile::WIDE, "column_sums", operands, [false; 2]));
        let bind = binding.bind(&self.ctx.device, params, &pipeline, None);
        let groups = n.div_ceil(COLUMNS_GROUP);
        self.dispatch(timing, encoder, &pipeline.pipeline, &bind, offset, groups)
    }
}
