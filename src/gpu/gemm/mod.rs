//! Host side of `shaders/gemm.wgsl`: matrix products C = A·B (plus a bias, or added to C) on
//! f32, f16 or bf16 operands stored plain or transposed, and the column sums of a matrix. Each is
//! recorded into the caller's encoder with params the caller has written beforehand
//! (`Product::params`, `ColumnSums::params`, pushed into a `ParamArena`), so that a call of
//! many products writes all its params at once.

mod tile;

#[cfg(test)]
mod tests;

pub(crate) use tile::Tile;

use super::GpuEngine;
use super::bindings::{Bound, GemmBindings};
use super::pipelines::Key;
use super::shaders::{COLUMNS_GROUP, Module, dtype_code};
use super::timing::Timing;
use crate::error::{Error, Result};
use crate::request::Dtype;

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
#[allow(dead_code, reason = "recorded by the linear head's call (linear.rs)")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    Plain,
    Transposed,
}

/// A matrix a kernel reads: elements of `dtype` from element `offset` of `buffer`, its stored
/// rows `ld` elements apart. 16-bit elements are two to a 4-byte word, the lower first, and may
/// start mid-word.
#[allow(dead_code, reason = "recorded by the linear head's call (linear.rs)")]
#[derive(Clone, Copy)]
pub(crate) struct Operand<'b> {
    pub buffer: &'b wgpu::Buffer,
    pub offset: u64,
    pub ld: u32,
    pub dtype: Dtype,
    pub layout: Layout,
}

/// f32 elements of `buffer` from element `offset`.
#[allow(dead_code, reason = "recorded by the linear head's call (linear.rs)")]
#[derive(Clone, Copy)]
pub(crate) struct F32s<'b> {
    pub buffer: &'b wgpu::Buffer,
    pub offset: u64,
}

/// C = A·B, C = A·B + bias (per column), or with `accumulate` C = C + A·B: `shape` is (m, n, k),
/// C is [m, n] row-major with rows `ldc` apart.
#[allow(dead_code, reason = "recorded by the linear head's call (linear.rs)")]
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
#[allow(dead_code, reason = "recorded by the linear head's call (linear.rs)")]
#[derive(Clone, Copy)]
pub(crate) struct ColumnSums<'b> {
    pub shape: [u32; 2],
    pub g: Operand<'b>,
    pub out: F32s<'b>,
    pub accumulate: bool,
}

/// `column_sums` reads no tile constant; it is built from this tile's module.
const COLUMNS_TILE: usize = 0;

/// The ranges a product binds, and its params, which locate its matrices within them.
struct Binding<'b> {
    params: Params,
    a: Bound<'b>,
    b: Bound<'b>,
    bias: Bound<'b>,
    c: Bound<'b>,
}

#[allow(dead_code, reason = "recorded by the linear head's call (linear.rs)")]
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
    fn from_term(self, k0: u32, a_side: bool) -> Self {
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
                a: self.a.from_term(k0, true),
                b: self.b.from_term(k0, false),
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
                g: self.g.from_term(r0, false),
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
        let (a, a_offset) = self.a.span("gemm A", [m, k], limits)?;
        let (b, b_offset) = self.b.span("gemm B", [k, n], limits)?;
        let (c, c_offset) = self.c.span("gemm C", [m, n], self.ldc, limits)?;
        let (bias, bias_offset) = match self.bias {
            Some(bias) => bias.span("gemm bias", [1, n], n, limits)?,
            None => (a, 0),
        };
        let params = Params {
            m,
            n,
            k,
            accumulate: u32::from(self.accumulate),
            lda: self.a.ld,
            a_offset,
            ldb: self.b.ld,
            b_offset,
            ldc: self.ldc,
            c_offset,
            bias: u32::from(self.bias.is_some()),
            bias_offset,
        };
        Ok(Binding {
            params,
            a,
            b,
            bias,
            c,
        })
    }
}

#[allow(dead_code, reason = "recorded by the linear head's call (linear.rs)")]
impl ColumnSums<'_> {
    /// The column sums' params, for the caller's params buffer; errors as `Product::params`.
    pub fn params(&self, limits: &wgpu::Limits) -> Result<Params> {
        Ok(self.binding(limits)?.params)
    }

    fn binding(&self, limits: &wgpu::Limits) -> Result<Binding<'_>> {
        let [m, n] = self.shape;
        let (g, g_offset) = self.g.span("column sums' input", [m, n], limits)?;
        let (out, out_offset) = self.out.span("column sums' output", [1, n], n, limits)?;
        let params = Params {
            m,
            n,
            accumulate: u32::from(self.accumulate),
            lda: self.g.ld,
            a_offset: g_offset,
            c_offset: out_offset,
            ..Params::default()
        };
        Ok(Binding {
            params,
            a: g,
            b: g,
            bias: g,
            c: out,
        })
    }
}

impl<'b> Operand<'b> {
    /// The binding of the operand as a [rows, cols] matrix (A: [m, k], B: [k, n]), stored as
    /// its layout says.
    fn span(
        &self,
        what: &'static str,
        [rows, cols]: [u32; 2],
        limits: &wgpu::Limits,
    ) -> Result<(Bound<'b>, u32)> {
        let stored = match self.layout {
            Layout::Plain => [rows, cols],
            Layout::Transposed => [cols, rows],
        };
        let bytes = self.dtype.size() as u64;
        span(
            what,
            self.buffer,
            (self.offset, bytes),
            stored,
            self.ld,
            limits,
        )
    }
}

impl<'b> F32s<'b> {
    /// The binding of a [rows, cols] f32 matrix here, rows `ld` apart.
    fn span(
        &self,
        what: &'static str,
        shape: [u32; 2],
        ld: u32,
        limits: &wgpu::Limits,
    ) -> Result<(Bound<'b>, u32)> {
        span(what, self.buffer, (self.offset, 4), shape, ld, limits)
    }
}

/// The smallest binding of a [rows, cols] matrix of `bytes`-byte elements, from element `offset`
/// of `buffer` with rows `ld` apart: a range from a start aligned down to the storage offset
/// alignment, and the matrix's first element counted from that start. An empty matrix binds its
/// first word.
fn span<'b>(
    what: &'static str,
    buffer: &'b wgpu::Buffer,
    (offset, bytes): (u64, u64),
    [rows, cols]: [u32; 2],
    ld: u32,
    limits: &wgpu::Limits,
) -> Result<(Bound<'b>, u32)> {
    let misfit = |reason: String| Err(Error::DeviceBuffer { what, reason });
    if rows > 1 && ld < cols {
        return misfit(format!("rows {ld} elements apart are shorter than {cols}"));
    }
    let extent = match (rows, cols) {
        (0, _) | (_, 0) => 1,
        _ => u64::from(rows - 1) * u64::from(ld) + u64::from(cols),
    };
    let align = u64::from(limits.min_storage_buffer_offset_alignment).max(4);
    let (Some(first), Some(last)) = (
        offset.checked_mul(bytes),
        offset
            .checked_add(extent)
            .and_then(|end| end.checked_mul(bytes)),
    ) else {
        return misfit(format!("element {offset} is past any buffer"));
    };
    let start = first / align * align;
    let end = last.next_multiple_of(4);
    let binding = limits.max_storage_buffer_binding_size;
    let within = offset - start / bytes;
    if end - start > binding || within + extent > u64::from(u32::MAX) {
        return Err(Error::TooLarge {
            what,
            reason: format!(
                "[{rows}, {cols}] with rows {ld} apart takes {} bytes, over the {binding}-byte \
                 storage binding",
                end - start
            ),
        });
    }
    if end > buffer.size() {
        return misfit(format!(
            "[{rows}, {cols}] with rows {ld} apart from element {offset} ends at byte {end}, past \
             the buffer's {}",
            buffer.size()
        ));
    }
    Ok((Bound::range(buffer, start, end - start), within as u32))
}

/// The pipeline of `entry` on `tile`'s module, for operands `a` and `b`.
fn key(tile: Tile, entry: &'static str, a: &Operand, b: &Operand) -> Key {
    let transposed = |o: &Operand| u32::from(o.layout == Layout::Transposed);
    Key {
        module: Module::Gemm { tile },
        entry,
        constants: vec![
            ("A_DTYPE", dtype_code(a.dtype)),
            ("B_DTYPE", dtype_code(b.dtype)),
            ("A_TRANSPOSED", transposed(a)),
            ("B_TRANSPOSED", transposed(b)),
        ],
    }
}

#[allow(dead_code, reason = "recorded by the linear head's call (linear.rs)")]
impl GpuEngine {
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
        let pipeline = self.pipeline(&key(tile, tile.entry(), &product.a, &product.b));
        let bind = GemmBindings {
            params: Bound::params::<Params>(params),
            a: binding.a,
            b: binding.b,
            bias: binding.bias,
            c: binding.c,
        }
        .bind(&self.ctx.device, &pipeline.layout);
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
        let tile = Tile::candidates()[COLUMNS_TILE];
        let pipeline = self.pipeline(&key(tile, "column_sums", &sums.g, &sums.g));
        let bind = GemmBindings {
            params: Bound::params::<Params>(params),
            a: binding.a,
            b: binding.b,
            bias: binding.bias,
            c: binding.c,
        }
        .bind(&self.ctx.device, &pipeline.layout);
        let groups = n.div_ceil(COLUMNS_GROUP);
        self.dispatch(timing, encoder, &pipeline.pipeline, &bind, offset, groups)
    }
}
