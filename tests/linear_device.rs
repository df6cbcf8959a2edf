//! Device-resident linear heads (`Engine::record_linear`): H, W, b and the targets in the
//! caller's wgpu buffers, the passes recorded into the caller's encoder, the gradients left on
//! the device. On every GPU adapter: the same bits as the host call on the same adapter, in
//! every dtype, target and reduction, over several chunks; a gradient added into the caller's
//! buffer is the written one plus the old contents; dH in place over H is dH; the same bits run
//! to run and engine to engine; several heads recorded into one encoder. Bad requests:
//! `tests/linear_device_errors.rs`; vocabulary shards: `tests/linear_device_shards.rs`.

mod common;
#[path = "common/device_head.rs"]
mod device_head;

use common::{GUARD, GUARD_BYTE, guarded_buffer, read_floats};
use device_head::{At, Head, OnDevice, all_new, gpus};
use rand::Rng;
use xent::{DeviceGrad, DeviceLinearGrads, Dtype, IndexType, Options, Reduction};

/// A shape and the options that go with it.
struct Shape {
    name: &'static str,
    size: [usize; 3],
    options: Options,
    /// Rows of a chunk (its byte budget's), when not the default's.
    chunk_rows: Option<usize>,
    weighted: bool,
    ignored: f64,
}

fn shapes() -> Vec<Shape> {
    let base = Options::default();
    let shape = |name, size| Shape {
        name,
        size,
        options: base,
        chunk_rows: None,
        weighted: false,
        ignored: 0.0,
    };
    vec![
        shape("1x1x1", [1, 1, 1]),
        Shape {
            options: Options {
                label_smoothing: 0.1,
                ..base
            },
            ..shape("one row", [1, 7, 5])
        },
        Shape {
            weighted: true,
            ignored: 0.3,
            ..shape("D = 1", [9, 1, 13])
        },
        Shape {
            options: Options {
                z_loss: 1e-3,
                softcap: Some(8.0),
                ..base
            },
            chunk_rows: Some(10),
            ..shape("odd, V < 32, 4 chunks", [37, 19, 29])
        },
        Shape {
            options: Options {
                label_smoothing: 0.05,
                ..base
            },
            chunk_rows: Some(8),
            weighted: true,
            ignored: 0.1,
            ..shape("odd, 9 chunks", [70, 33, 257])
        },
        Shape {
            options: Options {
                base: xent::Base::Two,
                ..base
            },
            chunk_rows: Some(4),
            ..shape("V over the tiles, 2 chunks", [6, 40, 1000])
        },
    ]
}

const DTYPES: [[Dtype; 2]; 5] = [
    [Dtype::F32, Dtype::F32],
    [Dtype::F16, Dtype::F16],
    [Dtype::Bf16, Dtype::Bf16],
    [Dtype::F32, Dtype::Bf16],
    [Dtype::F16, Dtype::F32],
];

const TARGETS: [At; 5] = [
    At::HostI64,
    At::HostI32,
    At::Device(IndexType::I64),
    At::Device(IndexType::I32),
    At::DeviceDense,
];

const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

#[test]
fn device_heads_give_the_host_calls_bits() {
    let mut rng = common::rng("device heads against host calls");
    for engine in gpus("device heads against host calls") {
        for s in shapes() {
            for (i, dtypes) in DTYPES.into_iter().enumerate() {
                for (j, at) in TARGETS.into_iter().enumerate() {
                    let mut options = s.options;
                    options.reduction = REDUCTIONS[(i + j) % 3];
                    options.lse = j % 2 == 0;
                    let bias = (i + j) % 2 == 0;
                    let mut head = Head::draw(&mut rng, s.size, dtypes, bias, s.ignored);
                    head.options = options;
                    head.chunk_rows = s.chunk_rows;
                    if !s.weighted {
                        head.class_weight = None;
                    }
                    let what = format!(
                        "{} {} {dtypes:?} {at:?} {:?} bias {bias} lse {}",
                        engine.device(),
                        s.name,
                        options.reduction,
                        options.lse
                    );
                    let on = OnDevice::new(engine, &head);
                    let got = on.run(engine, &head, at, head.new_grads());
                    head.host(engine, at, true).assert_same(&what, &got);
                    // The loss alone: no backward products, and the host's loss-only bits.
                    if j == 0 {
                        let got = on.run(engine, &head, at, DeviceLinearGrads::default());
                        let want = head.host(engine, at, false);
                        want.assert_same(&format!("{what} loss only"), &got);
                    }
                }
            }
        }
    }
}

/// Random contents for a gradient's buffer to start from, none of them zero.
fn old_contents(rng: &mut rand::rngs::StdRng, len: usize) -> Vec<f32> {
    let x = common::logits(rng, len, 0.05);
    x.into_iter()
        .map(|v| if v == 0.0 { 0.5 } else { v })
        .collect()
}

/// dH, dW and db into one flat buffer of the caller's (as a training loop holds all its
/// gradients), each at an aligned offset, with guard bytes between them: written over random
/// contents, they are the new buffers' bits; added, dH is the f32 sum of the old value and the
/// written one, and dW and db are within the 2K − 1 roundings of their K chunks' additions
/// (`common::assert_added`: the GPU forms each chunk's product, then adds it to the buffer; writing
/// adds every chunk's but the first's).
#[test]
fn gradients_added_into_the_callers_buffer_are_the_written_ones_plus_the_old_contents() {
    let mut rng = common::rng("device heads adding into the caller's buffer");
    // V a multiple of 4: a chunk is exactly the budget's 8 rows, so K = 6 chunks.
    let [n, d, v] = [45, 19, 516];
    let (chunk_rows, chunks) = (8, 6);
    for engine in gpus("device heads adding into the caller's buffer") {
        let (device, _) = engine.wgpu().unwrap();
        let align = u64::from(device.limits().min_storage_buffer_offset_alignment);
        for dtypes in [[Dtype::F32, Dtype::F32], [Dtype::F16, Dtype::Bf16]] {
            let what = format!("{} {dtypes:?}", engine.device());
            let mut head = Head::draw(&mut rng, [n, d, v], dtypes, true, 0.2);
            head.options.label_smoothing = 0.1;
            head.chunk_rows = Some(chunk_rows);
            let on = OnDevice::new(engine, &head);
            let at = At::Device(IndexType::I64);
            let new = on.run(engine, &head, at, all_new());
            // The three gradients' places in the flat buffer, each aligned, guards between.
            let lens = [n * d, v * d, v];
            let mut offsets = [GUARD; 3];
            for k in 1..3 {
                let end = offsets[k - 1] + lens[k - 1] as u64 * 4 + GUARD;
                offsets[k] = end.next_multiple_of(align);
            }
            let total = offsets[2] as usize + v * 4;
            for add in [false, true] {
                let start: Vec<Vec<f32>> =
                    lens.iter().map(|&l| old_contents(&mut rng, l)).collect();
                let mut bytes = vec![GUARD_BYTE; total - GUARD as usize];
                for k in 0..3 {
                    let at = offsets[k] as usize - GUARD as usize;
                    bytes[at..at + lens[k] * 4].copy_from_slice(bytemuck::cast_slice(&start[k]));
                }
                let flat = guarded_buffer(engine, &bytes);
                let into = |k: usize| DeviceGrad::Into {
                    buffer: &flat,
                    offset: offsets[k],
                    add,
                };
                let grads = DeviceLinearGrads {
                    hidden: into(0),
                    weight: into(1),
                    bias: into(2),
                };
                let out = on.record(engine, &head, at, grads);
                for (k, buffer) in [&out.hidden, &out.weight, &out.bias].iter().enumerate() {
                    assert!(
                        buffer.as_ref().is_some_and(|b| *b == flat),
                        "{what}: gradient {k} is not in the caller's buffer"
                    );
                }
                let got: Vec<Vec<f32>> = (0..3)
                    .map(|k| read_floats(engine, &flat, offsets[k], lens[k]))
                    .collect();
                let after = engine.read_buffer(&flat, 0..flat.size()).unwrap();
                let mut outside = after.clone();
                for k in 0..3 {
                    outside[offsets[k] as usize..][..lens[k] * 4].fill(GUARD_BYTE);
                }
                assert!(
                    outside.iter().all(|&b| b == GUARD_BYTE),
                    "{what} add {add}: a gradient wrote outside its place"
                );
                if !add {
                    new.assert_grads_same(&format!("{what} written over old contents"), &got);
                    continue;
                }
                let dh = &got[0];
                for (i, ((&g, &s), &w)) in dh.iter().zip(&start[0]).zip(&new.grads[0]).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        (s + w).to_bits(),
                        "{what}: dH[{i}]: {w} added to {s} is {g}"
                    );
                }
                let [dw_size, db_size] = head.product_magnitudes(at);
                let roundings = 2 * chunks - 1;
                common::assert_added(
                    &format!("{what}: dW"),
                    &got[1],
                    &start[1],
                    &new.grads[1],
                    roundings,
                    &dw_size,
                );
                common::assert_added(
                    &format!("{what}: db"),
                    &got[2],
                    &start[2],
                    &new.grads[2],
                    roundings,
                    &db_size,
                );
            }
        }
    }
}

/// dH written over H in its buffer, chunk by chunk, is the dH of a new buffer bit for bit, and
/// dW and db (whose products read H_c before its dH overwrites it) are unchanged by it.
#[test]
fn the_hidden_states_gradient_in_place_is_the_one_written_apart() {
    let mut rng = common::rng("device heads, dH in place");
    for engine in gpus("device heads, dH in place") {
        for w_dtype in [Dtype::F32, Dtype::Bf16] {
            let what = format!("{} W {w_dtype:?}", engine.device());
            let [n, d, v] = [37, 21, 130];
            let mut head = Head::draw(&mut rng, [n, d, v], [Dtype::F32, w_dtype], true, 0.1);
            head.chunk_rows = Some(8);
            let on = OnDevice::new(engine, &head);
            let at = At::HostI64;
            let apart = on.run(engine, &head, at, all_new());
            let grads = DeviceLinearGrads {
                hidden: DeviceGrad::InPlace,
                ..all_new()
            };
            let out = on.record(engine, &head, at, grads);
            assert!(
                out.hidden.as_ref().is_some_and(|b| *b == on.hidden),
                "{what}: dH in place is not in H's buffer"
            );
            let mut in_place = on.read(engine, &head, &out);
            in_place.grads[0] = read_floats(engine, &on.hidden, GUARD, n * d);
            apart.assert_same(&format!("{what}: in place"), &in_place);
            let after = engine.read_buffer(&on.hidden, 0..on.hidden.size()).unwrap();
            let data = GUARD as usize..GUARD as usize + n * d * 4;
            assert!(
                after[..data.start]
                    .iter()
                    .chain(&after[data.end..])
                    .all(|&b| b == GUARD_BYTE),
                "{what}: dH in place wrote outside H"
            );
        }
    }
}

#[test]
fn the_same_bits_run_to_run_and_engine_to_engine() {
    let mut rng = common::rng("device heads, run to run");
    for engine in gpus("device heads, run to run") {
        let other = engine.rebuild().unwrap();
        for dtypes in [[Dtype::F32, Dtype::F32], [Dtype::Bf16, Dtype::F16]] {
            let what = format!("{} {dtypes:?}", engine.device());
            let mut head = Head::draw(&mut rng, [70, 33, 257], dtypes, true, 0.1);
            head.options.label_smoothing = 0.05;
            head.options.lse = true;
            head.chunk_rows = Some(8);
            let at = At::Device(IndexType::I64);
            let on = OnDevice::new(engine, &head);
            let first = on.run(engine, &head, at, all_new());
            let second = on.run(engine, &head, at, all_new());
            first.assert_same(&format!("{what}: run to run"), &second);
            let on_other = OnDevice::new(&other, &head);
            let elsewhere = on_other.run(&other, &head, at, all_new());
            first.assert_same(&format!("{what}: engine to engine"), &elsewhere);
        }
    }
}

/// Three heads recorded into one encoder (the second's logits chunk larger than the first's, the
/// third's smaller), submitted once, give what each gives submitted alone.
#[test]
fn heads_recorded_into_one_encoder_keep_their_own_results() {
    let mut rng = common::rng("device heads, one encoder");
    for engine in gpus("device heads, one encoder") {
        let (device, queue) = engine.wgpu().unwrap();
        let specs = [
            (
                [40, 17, 300],
                [Dtype::F32, Dtype::F32],
                Some(10),
                At::Device(IndexType::I64),
            ),
            (
                [90, 33, 1001],
                [Dtype::Bf16, Dtype::Bf16],
                Some(16),
                At::HostI32,
            ),
            ([5, 9, 31], [Dtype::F16, Dtype::F32], None, At::DeviceDense),
        ];
        let heads: Vec<Head> = specs
            .iter()
            .enumerate()
            .map(|(k, &(size, dtypes, chunk_rows, _))| {
                let mut head = Head::draw(&mut rng, size, dtypes, k != 1, 0.1);
                head.chunk_rows = chunk_rows;
                head.options.lse = true;
                head.options.reduction = REDUCTIONS[k];
                head.options.label_smoothing = rng.random_range(0.0..0.2);
                head
            })
            .collect();
        let ons: Vec<OnDevice> = heads.iter().map(|h| OnDevice::new(engine, h)).collect();
        let grads = |k: usize| match k {
            1 => DeviceLinearGrads {
                bias: DeviceGrad::Skip,
                ..all_new()
            },
            _ => all_new(),
        };
        let mut encoder = device.create_command_encoder(&Default::default());
        let outs: Vec<_> = (0..3)
            .map(|k| {
                let request = ons[k].request(&heads[k], specs[k].3, grads(k));
                engine.record_linear(&mut encoder, &request).unwrap()
            })
            .collect();
        queue.submit([encoder.finish()]);
        for k in 0..3 {
            let together = ons[k].read(engine, &heads[k], &outs[k]);
            let alone = ons[k].run(engine, &heads[k], specs[k].3, grads(k));
            alone.assert_same(&format!("{} head {k}", engine.device()), &together);
        }
    }
}
