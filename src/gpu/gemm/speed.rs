//! The products' speed on every adapter and tile, in GFLOP/s (ignored: run with
//! `cargo test --release --lib gpu::gemm::speed -- --ignored --nocapture`, on an idle machine).
//! `XENT_GEMM_TILES=i,j` times only those candidates; `XENT_GEMM_SHAPES=i,j` only those shapes.

use wgpu::util::DeviceExt;

use super::*;
use crate::gpu::faults::engines;

/// The shapes timed: (m, n, k), A's layout, B's element type and layout, and a name. The others
/// are a linear head's products on a chunk of 512 tokens, D = 1024, V = 32000: the logits H·Wᵀ,
/// dH = G·W (W as given, [V, D], or a copy stored transposed), and dW = Gᵀ·H.
const SHAPES: [([u32; 3], Layout, Dtype, Layout, &str); 6] = [
    (
        [1024, 1024, 1024],
        Layout::Plain,
        Dtype::F32,
        Layout::Plain,
        "NN f32 1024³",
    ),
    (
        [512, 32000, 1024],
        Layout::Plain,
        Dtype::F32,
        Layout::Transposed,
        "NT f32 logits",
    ),
    (
        [512, 32000, 1024],
        Layout::Plain,
        Dtype::Bf16,
        Layout::Transposed,
        "NT bf16 W logits",
    ),
    (
        [512, 1024, 32000],
        Layout::Plain,
        Dtype::F32,
        Layout::Plain,
        "NN f32 dH",
    ),
    (
        [32000, 1024, 512],
        Layout::Transposed,
        Dtype::F32,
        Layout::Plain,
        "TN f32 dW",
    ),
    (
        [512, 1024, 32000],
        Layout::Plain,
        Dtype::F32,
        Layout::Transposed,
        "NT f32 dH, Wᵀ copy",
    ),
];

/// Indices picked by the comma-separated list in `var`, or all `len`.
fn picked(var: &str, len: usize) -> Vec<usize> {
    match std::env::var(var) {
        Ok(list) => list
            .split(',')
            .filter_map(|i| i.trim().parse().ok())
            .collect(),
        Err(_) => (0..len).collect(),
    }
}

/// A buffer of `bytes` bytes of values near 1, which the products only read.
fn filled(engine: &GpuEngine, bytes: u64) -> wgpu::Buffer {
    // Two bf16, or one f32, of 1 + (i mod 7) / 128.
    let words: Vec<u32> = (0..bytes / 4)
        .map(|i| {
            let half = 0x3f80 + (i % 7) as u32;
            (half << 16) | half
        })
        .collect();
    engine
        .ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("xent speed: operand"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::STORAGE,
        })
}

/// The process's CPU seconds so far (user and system, from /proc/self/stat), where Linux tells:
/// on a CPU adapter, the kernels' own time whatever else the machine runs.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Of `runs` runs of `product` on `tile`: the fastest's seconds by the pass's own timing, and the
/// least CPU seconds one took.
fn seconds(engine: &GpuEngine, product: &Product, tile: Tile, runs: usize) -> (f64, f64) {
    let params = engine.params_of(product).unwrap();
    (0..runs)
        .map(|_| {
            let cpu = cpu_seconds();
            let wall = engine.time_product(product, (&params, 0), tile).unwrap();
            let cpu = cpu.zip(cpu_seconds()).map_or(f64::NAN, |(a, b)| b - a);
            (wall, cpu)
        })
        .fold((f64::INFINITY, f64::INFINITY), |(w, c), (wall, cpu)| {
            (w.min(wall), c.min(cpu))
        })
}

#[test]
#[ignore = "a measurement: minutes on a CPU adapter"]
fn gflops_per_adapter_and_tile() {
    let tiles = picked("XENT_GEMM_TILES", Tile::candidates().len());
    let shapes = picked("XENT_GEMM_SHAPES", SHAPES.len());
    for engine in engines() {
        for &s in &shapes {
            let ([m, n, k], a_layout, b_dtype, b_layout, name) = SHAPES[s];
            let a = filled(&engine, u64::from(m * k) * 4);
            let b = filled(&engine, u64::from(k * n) * b_dtype.size() as u64);
            let c = filled(&engine, u64::from(m * n) * 4);
            let product = Product {
                shape: [m, n, k],
                a: Operand {
                    buffer: &a,
                    offset: 0,
                    ld: if a_layout == Layout::Plain { k } else { m },
                    dtype: Dtype::F32,
                    layout: a_layout,
                },
                b: Operand {
                    buffer: &b,
                    offset: 0,
                    ld: if b_layout == Layout::Plain { n } else { k },
                    dtype: b_dtype,
                    layout: b_layout,
                },
                c: F32s {
                    buffer: &c,
                    offset: 0,
                },
                ldc: n,
                bias: None,
                accumulate: false,
            };
            let flops = 2.0 * f64::from(m) * f64::from(n) * f64::from(k);
            for &t in &tiles {
                let tile = Tile::candidates()[t];
                if !engine.gemm_tiles().contains(&tile) {
                    continue;
                }
                let runs = if flops > 1e10 { 2 } else { 5 };
                let (wall, cpu) = seconds(&engine, &product, tile, runs);
                eprintln!(
                    "{:?} | {name} | tile {t} {:?} {}×{} | {wall:.3} s | {:.1} GFLOP/s | \
                     {:.1} GFLOP per CPU second",
                    engine.info().backend,
                    tile.kind,
                    tile.bm,
                    tile.bn,
                    flops / wall * 1e-9,
                    flops / cpu * 1e-9
                );
            }
        }
    }
}
