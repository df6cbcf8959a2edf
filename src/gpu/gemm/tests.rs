//! The products and column sums on every adapter against an f64 product of the same (rounded)
//! values; every tile's bits against every other's; the errors of ranges that do not bind.

use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wgpu::util::DeviceExt;

use super::*;
use crate::error::Error;
use crate::gpu::faults::engines;
use crate::gpu::params::ParamArena;

const DTYPES: [Dtype; 3] = [Dtype::F32, Dtype::F16, Dtype::Bf16];
const LAYOUTS: [Layout; 2] = [Layout::Plain, Layout::Transposed];

/// A generator seeded from `XENT_SEED`, or at random (printed, to repeat a failure).
fn seeded() -> StdRng {
    let seed = std::env::var("XENT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (XENT_SEED={seed} repeats it)");
    StdRng::seed_from_u64(seed)
}

/// A buffer's elements as a kernel reads them, and the buffer.
struct Stored {
    values: Vec<f64>,
    buffer: wgpu::Buffer,
}

/// `len` random elements of `dtype` in [-1, 1), rounded to it, in a new buffer.
fn stored(engine: &GpuEngine, rng: &mut StdRng, len: usize, dtype: Dtype) -> Stored {
    let mut bytes = Vec::with_capacity(len * dtype.size() + 4);
    let values = (0..len)
        .map(|_| {
            let v: f32 = rng.random_range(-1.0..1.0);
            match dtype {
                Dtype::F32 => {
                    bytes.extend_from_slice(&v.to_le_bytes());
                    f64::from(v)
                }
                Dtype::F16 => {
                    let h = f16::from_f32(v);
                    bytes.extend_from_slice(&h.to_le_bytes());
                    h.to_f64()
                }
                Dtype::Bf16 => {
                    let h = bf16::from_f32(v);
                    bytes.extend_from_slice(&h.to_le_bytes());
                    h.to_f64()
                }
            }
        })
        .collect();
    bytes.resize(bytes.len().next_multiple_of(4).max(4), 0);
    let buffer = engine
        .ctx
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("xent test: gemm operand"),
            contents: &bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        });
    Stored { values, buffer }
}

/// Where logical element [r, c] of a matrix of `layout` at `offset`, rows `ld` apart, is stored.
fn index(layout: Layout, offset: u64, ld: u32, r: u32, c: u32) -> usize {
    let (row, col) = match layout {
        Layout::Plain => (r, c),
        Layout::Transposed => (c, r),
    };
    (offset + u64::from(row) * u64::from(ld) + u64::from(col)) as usize
}

/// An operand's buffer and where it lies there.
struct Side {
    stored: Stored,
    layout: Layout,
    dtype: Dtype,
    offset: u64,
    ld: u32,
}

impl Side {
    fn operand(&self) -> Operand<'_> {
        Operand {
            buffer: &self.stored.buffer,
            offset: self.offset,
            ld: self.ld,
            dtype: self.dtype,
            layout: self.layout,
        }
    }

    /// Logical element [r, c].
    fn at(&self, r: u32, c: u32) -> f64 {
        self.stored.values[index(self.layout, self.offset, self.ld, r, c)]
    }
}

/// One product's operands: an [m, k] A and a [k, n] B of the given element types and layouts,
/// at odd offsets with rows padded apart, and an [m, n] C among other values that it must not
/// touch.
struct Fixture {
    shape: [u32; 3],
    a: Side,
    b: Side,
    c: (Stored, u64, u32),
    bias: Option<(Stored, u64)>,
    accumulate: bool,
}

impl Fixture {
    fn new(
        engine: &GpuEngine,
        rng: &mut StdRng,
        shape: [u32; 3],
        (a, b): ((Dtype, Layout), (Dtype, Layout)),
        (bias, accumulate): (bool, bool),
    ) -> Self {
        let [m, n, k] = shape;
        let mut operand = |rows: u32, cols: u32, (dtype, layout): (Dtype, Layout)| {
            let (stored_rows, stored_cols) = match layout {
                Layout::Plain => (rows, cols),
                Layout::Transposed => (cols, rows),
            };
            // Half the operands' quads aligned, which the CPU adapters' kernels read whole.
            let quad: u32 = if rng.random() { 4 } else { 1 };
            let offset = u64::from(rng.random_range(0..300) / quad * quad);
            let ld = (stored_cols + rng.random_range(0..5)).next_multiple_of(quad);
            let len = offset as usize + (stored_rows * ld) as usize + rng.random_range(0..12);
            let stored = stored(engine, rng, len, dtype);
            Side {
                stored,
                layout,
                dtype,
                offset,
                ld,
            }
        };
        let a = operand(m, k, a);
        let b = operand(k, n, b);
        let c = operand(m, n, (Dtype::F32, Layout::Plain));
        let c = (c.stored, c.offset, c.ld);
        let bias = bias.then(|| {
            let offset = rng.random_range(0..100);
            (
                stored(engine, rng, offset as usize + n as usize, Dtype::F32),
                offset,
            )
        });
        Fixture {
            shape,
            a,
            b,
            c,
            bias,
            accumulate,
        }
    }

    fn product(&self) -> Product<'_> {
        Product {
            shape: self.shape,
            a: self.a.operand(),
            b: self.b.operand(),
            c: F32s {
                buffer: &self.c.0.buffer,
                offset: self.c.1,
            },
            ldc: self.c.2,
            bias: self.bias.as_ref().map(|(s, offset)| F32s {
                buffer: &s.buffer,
                offset: *offset,
            }),
            accumulate: self.accumulate,
        }
    }

    /// C's buffer as the product leaves it, from f64 sums, each with the bound on its error
    /// (zero where C's buffer must keep its value).
    fn expected(&self) -> Vec<(f64, f64)> {
        let [m, n, k] = self.shape;
        let (c, c_offset, ldc) = &self.c;
        let mut out: Vec<(f64, f64)> = c.values.iter().map(|&v| (v, 0.0)).collect();
        // fma steps, then the bias, then the accumulation: k + 2 roundings at most.
        let unit = f64::from(k + 2) * f64::from(f32::EPSILON) / 2.0 * 1.01;
        for i in 0..m {
            for j in 0..n {
                let (mut sum, mut size) = (0.0, 0.0);
                for kk in 0..k {
                    let term = self.a.at(i, kk) * self.b.at(kk, j);
                    sum += term;
                    size += term.abs();
                }
                if let Some((bias, offset)) = &self.bias {
                    let b = bias.values[*offset as usize + j as usize];
                    sum += b;
                    size += b.abs();
                }
                let slot = index(Layout::Plain, *c_offset, *ldc, i, j);
                if self.accumulate {
                    sum += c.values[slot];
                    size += c.values[slot].abs();
                }
                out[slot] = (sum, unit * size + f64::from(f32::MIN_POSITIVE));
            }
        }
        out
    }
}

/// Records `products` on `tile` into one encoder, their params in one buffer, and runs them.
fn run(engine: &GpuEngine, products: &[Product], tile: Tile) -> Result<()> {
    let ctx = &engine.ctx;
    let mut arena = ParamArena::new(&ctx.limits);
    let offsets = products
        .iter()
        .map(|p| Ok(arena.push(&p.params(&ctx.limits)?)))
        .collect::<Result<Vec<u32>>>()?;
    ctx.scoped("a test's products", || {
        let params = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("xent test: gemm params"),
                contents: &arena.bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut timing = Timing::Off;
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        for (product, &offset) in products.iter().zip(&offsets) {
            engine.record_product(
                (&mut timing, &mut encoder),
                product,
                (&params, offset),
                tile,
            )?;
        }
        ctx.queue.submit([encoder.finish()]);
        ctx.wait()
    })
}

/// The f32 elements of `buffer`.
fn read(engine: &GpuEngine, buffer: &wgpu::Buffer) -> Vec<f32> {
    let bytes = engine.read_buffer(buffer, 0..buffer.size()).unwrap();
    bytemuck::pod_collect_to_vec(&bytes)
}

/// Asserts that C's buffer after `fixture`'s product is within each element's bound of the f64
/// product, and untouched elsewhere.
fn check(engine: &GpuEngine, fixture: &Fixture, label: &str) {
    let got = read(engine, &fixture.c.0.buffer);
    for (slot, (&got, &(want, bound))) in got.iter().zip(&fixture.expected()).enumerate() {
        let ok = if bound == 0.0 {
            f64::from(got) == want
        } else {
            (f64::from(got) - want).abs() <= bound
        };
        assert!(
            ok,
            "{}: {label}: C's element {slot} is {got}, expected {want} ± {bound}",
            engine.info().name
        );
    }
}

#[test]
fn every_layout_and_dtype_matches_the_f64_product() {
    let mut rng = seeded();
    let sizes = [1, 3, 17, 65, 100];
    for engine in engines() {
        // The rule's tile for few rows: every other tile gives the same bits (tested below).
        let tile = engine.gemm_tile([8, 64, 64]);
        let mut flags = 0;
        for a_layout in LAYOUTS {
            for b_layout in LAYOUTS {
                for a_dtype in DTYPES {
                    for b_dtype in DTYPES {
                        let shape = [0; 3].map(|_| sizes[rng.random_range(0..sizes.len())]);
                        flags += 1;
                        let (bias, accumulate) = (flags & 1 == 1, flags & 2 == 2);
                        let fixture = Fixture::new(
                            &engine,
                            &mut rng,
                            shape,
                            ((a_dtype, a_layout), (b_dtype, b_layout)),
                            (bias, accumulate),
                        );
                        run(&engine, &[fixture.product()], tile).unwrap();
                        let label = format!(
                            "{shape:?} A {a_dtype:?} {a_layout:?}, B {b_dtype:?} {b_layout:?}, \
                             bias {bias}, accumulate {accumulate}"
                        );
                        check(&engine, &fixture, &label);
                    }
                }
            }
        }
    }
}

#[test]
fn every_tile_gives_the_same_bits_run_after_run() {
    let mut rng = seeded();
    let shapes = [
        [1, 1, 1],
        [3, 17, 1000],
        [65, 67, 33],
        [130, 70, 17],
        [17, 129, 64],
        [5, 9, 0],
    ];
    for engine in engines() {
        for (s, shape) in shapes.into_iter().enumerate() {
            let a = (DTYPES[s % 3], LAYOUTS[s % 2]);
            let b = (DTYPES[(s + 1) % 3], LAYOUTS[(s / 2) % 2]);
            let fixture = Fixture::new(&engine, &mut rng, shape, (a, b), (s % 2 == 0, false));
            let mut first: Option<Vec<f32>> = None;
            let tiles = engine.gemm_tiles();
            for &tile in tiles.iter().chain(&tiles[..1]) {
                run(&engine, &[fixture.product()], tile).unwrap();
                let got = read(&engine, &fixture.c.0.buffer);
                let label = format!("{shape:?}, A {a:?}, B {b:?} on {tile:?}");
                match &first {
                    None => {
                        check(&engine, &fixture, &label);
                        first = Some(got);
                    }
                    Some(first) => assert!(
                        first
                            .iter()
                            .zip(&got)
                            .all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{}: {label} differs from the first tile's bits",
                        engine.info().name
                    ),
                }
            }
        }
    }
}

#[test]
fn column_sums_add_each_column_in_row_order() {
    let mut rng = seeded();
    for engine in engines() {
        for (m, n, accumulate) in [
            (1, 1, false),
            (1000, 3, true),
            (17, 200, false),
            (65, 65, true),
        ] {
            let offset = rng.random_range(0..300);
            let ld = n + rng.random_range(0..5);
            let g = stored(&engine, &mut rng, (offset + m * ld) as usize, Dtype::F32);
            let out_offset = rng.random_range(0..100);
            let out = stored(&engine, &mut rng, (out_offset + n + 2) as usize, Dtype::F32);
            let sums = ColumnSums {
                shape: [m, n],
                g: Operand {
                    buffer: &g.buffer,
                    offset: u64::from(offset),
                    ld,
                    dtype: Dtype::F32,
                    layout: Layout::Plain,
                },
                out: F32s {
                    buffer: &out.buffer,
                    offset: u64::from(out_offset),
                },
                accumulate,
            };
            let ctx = &engine.ctx;
            let params = sums.params(&ctx.limits).unwrap();
            ctx.scoped("a test's column sums", || {
                let uniform = ctx
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("xent test: column sums params"),
                        contents: bytemuck::bytes_of(&params),
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                let mut timing = Timing::Off;
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                engine.record_column_sums((&mut timing, &mut encoder), &sums, (&uniform, 0))?;
                ctx.queue.submit([encoder.finish()]);
                ctx.wait()
            })
            .unwrap();
            let got = read(&engine, &out.buffer);
            let mut want: Vec<f32> = out.values.iter().map(|&v| v as f32).collect();
            for j in 0..n {
                let sum = (0..m).fold(0.0_f32, |sum, i| {
                    sum + g.values[(offset + i * ld + j) as usize] as f32
                });
                let slot = (out_offset + j) as usize;
                want[slot] = if accumulate { want[slot] + sum } else { sum };
            }
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{}: column sums of [{m}, {n}]: {got:?} against {want:?}",
                engine.info().name
            );
        }
    }
}

#[test]
fn a_range_over_one_binding_is_too_large() {
    for engine in engines() {
        let mut rng = seeded();
        let fixture = Fixture::new(
            &engine,
            &mut rng,
            [2, 2, 2],
            ((Dtype::F32, Layout::Plain), (Dtype::F16, Layout::Plain)),
            (false, false),
        );
        let binding = engine.ctx.limits.max_storage_buffer_binding_size;
        let k = u32::try_from(binding / 2).unwrap_or(u32::MAX);
        let product = Product {
            shape: [2, 2, k],
            a: Operand {
                ld: k,
                ..fixture.product().a
            },
            ..fixture.product()
        };
        let err = run(&engine, &[product], Tile::candidates()[0]).unwrap_err();
        assert!(
            matches!(err, Error::TooLarge { what: "gemm A", .. }),
            "{err:?}"
        );
        let product = Product {
            shape: [2, 2, 2],
            b: Operand {
                offset: 1 << 20,
                ..fixture.product().b
            },
            ..fixture.product()
        };
        let err = run(&engine, &[product], Tile::candidates()[0]).unwrap_err();
        assert!(
            matches!(err, Error::DeviceBuffer { what: "gemm B", .. }),
            "{err:?}"
        );
    }
}
