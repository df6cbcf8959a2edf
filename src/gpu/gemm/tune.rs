//! The autotune of the products' tiles. With the engine's autotune on, the first product of each
//! class (its operands' dtypes and layouts, m, n and k in power-of-two buckets) times every
//! candidate tile that runs on the device, twice, on scratch operands of its shape (each side at
//! most `TUNE_SIDE`), and the fastest is kept for the class. Every tile gives the same bits, so
//! the choice changes the time only, never a result.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use wgpu::util::DeviceExt;

use super::{F32s, Layout, Operand, Product, Tile};
use crate::error::{Error, Result};
use crate::gpu::GpuEngine;
use crate::gpu::params::ParamArena;
use crate::gpu::timing::Timing;
use crate::request::Dtype;

/// The most rows, columns or depth a tile is timed on.
const TUNE_SIDE: u32 = 512;

/// Products that share a tuned tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TileClass {
    dtypes: [Dtype; 2],
    transposed: [bool; 2],
    log2: [u32; 3],
}

impl TileClass {
    fn of(p: &Product) -> Self {
        TileClass {
            dtypes: [p.a.dtype, p.b.dtype],
            transposed: [p.a.layout, p.b.layout].map(|l| l == Layout::Transposed),
            log2: p
                .shape
                .map(|s| s.max(1).next_power_of_two().trailing_zeros()),
        }
    }
}

/// The tiles the autotune has chosen, by class.
#[derive(Default)]
pub(crate) struct TileTable(Mutex<HashMap<TileClass, Tile>>);

impl TileTable {
    /// A line per class: what it is, and its tile.
    pub fn report(&self) -> Vec<String> {
        let table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lines: Vec<String> = table
            .iter()
            .map(|(c, tile)| {
                let [m, n, k] = c.log2;
                let t = c.transposed.map(|t| if t { "ᵀ" } else { "" });
                format!(
                    "product {}{} · {}{}, m ≤ 2^{m}, n ≤ 2^{n}, k ≤ 2^{k}: {tile:?}",
                    c.dtypes[0].name(),
                    t[0],
                    c.dtypes[1].name(),
                    t[1]
                )
            })
            .collect();
        lines.sort();
        lines
    }
}

impl GpuEngine {
    /// The tile a product runs on: the autotune's choice for its class where it has made one
    /// (making it now, with the autotune on, where it has not), else the rule's.
    pub(crate) fn product_tile(&self, product: &Product) -> Result<Tile> {
        let class = TileClass::of(product);
        let chosen = self
            .tiles
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&class)
            .copied();
        match chosen {
            Some(tile) => Ok(tile),
            None if self.tuner.is_on() => {
                let tile = self.fastest_tile(product)?;
                self.tiles
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(class, tile);
                Ok(tile)
            }
            None => Ok(self.gemm_tile(product.shape)),
        }
    }

    /// Times every candidate tile twice on scratch operands of `product`'s class, and returns
    /// the fastest (the rule's on a tie).
    fn fastest_tile(&self, product: &Product) -> Result<Tile> {
        let device = &self.ctx.device;
        let [m, n, k] = product.shape.map(|s| s.clamp(1, TUNE_SIDE));
        let scratch = |elements: u32, dtype: Dtype| {
            let bytes = (u64::from(elements) * dtype.size() as u64).next_multiple_of(16);
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("xent tile tune"),
                contents: &vec![0x3c; bytes as usize],
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let (a, b, c) = (
            scratch(m * k, product.a.dtype),
            scratch(k * n, product.b.dtype),
            scratch(m * n, Dtype::F32),
        );
        let operand = |buffer, of: &Operand, [rows, cols]: [u32; 2]| Operand {
            buffer,
            offset: 0,
            ld: if of.layout == Layout::Plain {
                cols
            } else {
                rows
            },
            ..*of
        };
        let trial = Product {
            shape: [m, n, k],
            a: operand(&a, &product.a, [m, k]),
            b: operand(&b, &product.b, [k, n]),
            c: F32s {
                buffer: &c,
                offset: 0,
            },
            ldc: n,
            bias: None,
            accumulate: false,
        };
        let params = self.params_of(&trial)?;
        let rule = self.gemm_tile(trial.shape);
        let mut best = (f64::INFINITY, rule);
        let candidates =
            std::iter::once(rule).chain(self.gemm_tiles().into_iter().filter(|&t| t != rule));
        for tile in candidates {
            let mut seconds = f64::INFINITY;
            for _ in 0..2 {
                let at = (&params, 0);
                seconds = seconds.min(self.time_product(&trial, at, tile)?);
            }
            if seconds < best.0 {
                best = (seconds, tile);
            }
        }
        Ok(best.1)
    }

    /// A uniform buffer holding `product`'s params alone, at offset 0.
    pub(super) fn params_of(&self, product: &Product) -> Result<wgpu::Buffer> {
        let mut arena = ParamArena::new(&self.ctx.limits);
        arena.push(&product.params(&self.ctx.limits)?);
        Ok(self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("xent product params"),
                contents: &arena.bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            }))
    }

    /// Runs `product` once on `tile` in a submission of its own (its params at `params`), and
    /// returns the pass's seconds by its own timing.
    pub(super) fn time_product(
        &self,
        product: &Product,
        params: (&wgpu::Buffer, u32),
        tile: Tile,
    ) -> Result<f64> {
        let mut timing = Timing::new(&self.ctx, true, 1);
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        self.record_product((&mut timing, &mut encoder), product, params, tile)?;
        self.ctx.queue.submit([encoder.finish()]);
        let time = timing.finish(&self.ctx)?.ok_or_else(|| Error::Wgpu {
            during: "timing a product",
            message: "the pass was not timed".into(),
        })?;
        Ok(time.seconds)
    }
}
