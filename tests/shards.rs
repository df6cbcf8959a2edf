//! Vocabulary-parallel cross-entropy: C split into shards computed on different engines, merged,
//! and each shard's gradient, against the unsharded float64 reference.

mod common;

use rand::Rng;
use xent::{Engine, Error, Loss, Options, Reduction, Request, Shard, merge_shards};

/// Columns [c0, c1) of a row-major [B, C] array.
fn columns(x: &[f32], classes: usize, range: std::ops::Range<usize>) -> Vec<f32> {
    x.chunks_exact(classes)
        .flat_map(|row| row[range.clone()].to_vec())
        .collect()
}

fn request<'a>(
    x: impl Into<xent::Input<'a>>,
    shape: [usize; 2],
    t: &'a [i64],
    weight: Option<&'a [f32]>,
    o: &Options,
) -> Request<'a> {
    let r = Request::cross_entropy(x, shape, t)
        .reduction(o.reduction)
        .ignore_index(o.ignore_index)
        .label_smoothing(o.label_smoothing)
        .z_loss(o.z_loss);
    let r = match weight {
        Some(w) => r.weight(w),
        None => r,
    };
    match o.softcap {
        Some(c) => r.softcap(c),
        None => r,
    }
}

/// Shards `[B, C]` at `cuts` over `engines` (round robin), merges, writes each shard's gradient,
/// and checks the loss, lse and gradient against the reference on the whole rows.
fn check(engines: &[Engine], shape: [usize; 2], cuts: &[usize], o: Options, weighted: bool) {
    check_at(engines, shape, cuts, o, weighted, 0.0);
}

/// As `check`, with every logit moved by `offset`.
fn check_at(
    engines: &[Engine],
    shape: [usize; 2],
    cuts: &[usize],
    o: Options,
    weighted: bool,
    offset: f32,
) {
    let mut rng = common::rng("shards");
    let [batch, classes] = shape;
    let x: Vec<f32> = common::logits(&mut rng, batch * classes, 4.0)
        .iter()
        .map(|v| v + offset)
        .collect();
    let t = common::targets(&mut rng, batch, classes, 0.2);
    let weight: Vec<f32> = (0..classes).map(|_| rng.random_range(0.2..2.0)).collect();
    let weight = weighted.then_some(&weight[..]);
    let whole = request(&x[..], shape, &t, weight, &o)
        .with_lse(true)
        .with_grad(true);
    let want = Engine::reference().compute(&whole).unwrap();
    let bounds: Vec<usize> = [0].iter().chain(cuts).chain([&classes]).copied().collect();
    let pieces: Vec<(Shard, Vec<f32>, Option<Vec<f32>>)> = bounds
        .windows(2)
        .map(|w| {
            let shard = Shard {
                first_class: w[0],
                total_classes: classes,
            };
            (
                shard,
                columns(&x, classes, w[0]..w[1]),
                weight.map(|v| v[w[0]..w[1]].to_vec()),
            )
        })
        .collect();
    let engine = |k: usize| &engines[k % engines.len()];
    let stats: Vec<_> = pieces
        .iter()
        .enumerate()
        .map(|(k, (shard, xs, ws))| {
            let cs = xs.len() / batch;
            let r = request(&xs[..], [batch, cs], &t, ws.as_deref(), &o);
            engine(k).shard_stats(&r, *shard).unwrap()
        })
        .collect();
    let merged = merge_shards(&stats, &t, weight, &o).unwrap();
    let what = format!(
        "{:?} over {} on {}",
        o,
        bounds.len() - 1,
        engines
            .iter()
            .map(|e| e.device().to_string())
            .collect::<Vec<_>>()
            .join(" + ")
    );
    assert_eq!(merged.valid_rows, want.valid_rows);
    match (&merged.loss, &want.loss) {
        (Loss::Scalar(a), Loss::Scalar(b)) => common::assert_scalar(&what, *a, *b, 1e-5),
        (Loss::Unreduced { values: a, .. }, Loss::Unreduced { values: b, .. }) => {
            common::assert_close(&what, a, b, 1e-5, 1e-5);
        }
        other => panic!("{what}: {other:?}"),
    }
    common::assert_close(&what, &merged.lse, want.lse.as_ref().unwrap(), 1e-5, 1e-6);
    let mut grad = vec![0.0_f32; batch * classes];
    for (k, (shard, xs, ws)) in pieces.iter().enumerate() {
        let cs = xs.len() / batch;
        let r = request(&xs[..], [batch, cs], &t, ws.as_deref(), &o);
        let mut g = vec![f32::NAN; batch * cs];
        engine(k).shard_grad(&r, *shard, &merged, &mut g).unwrap();
        for (row, piece) in g.chunks_exact(cs).enumerate() {
            let start = row * classes + shard.first_class;
            grad[start..start + cs].copy_from_slice(piece);
        }
    }
    let error = common::relative_norm_error(&grad, want.grad.as_ref().unwrap());
    assert!(error <= 1e-5, "{what}: gradient error {error:e}");
}

fn option_sets() -> Vec<(Options, bool)> {
    let base = Options::default();
    vec![
        (base, false),
        (
            Options {
                label_smoothing: 0.1,
                z_loss: 1e-3,
                ..base
            },
            true,
        ),
        (
            Options {
                reduction: Reduction::Sum,
                softcap: Some(15.0),
                ..base
            },
            false,
        ),
        (
            Options {
                reduction: Reduction::None,
                label_smoothing: 0.2,
                ..base
            },
            true,
        ),
    ]
}

#[test]
fn shards_on_two_adapters_match_the_unsharded_loss_and_gradient() {
    let gpus = common::gpus();
    common::check_expected_backends(gpus);
    if gpus.is_empty() {
        eprintln!("no GPU adapter: the CPU engines only");
    }
    let pair: Vec<Engine> = if gpus.len() >= 2 {
        gpus[..2].to_vec()
    } else {
        gpus.iter().cloned().chain([Engine::cpu()]).collect()
    };
    for (o, weighted) in option_sets() {
        check(&pair, [37, 5003], &[2500], o, weighted);
    }
    // A GPU and the fast CPU path, uneven shards, a huge shard that the kernels split.
    for gpu in gpus {
        let mixed = [gpu.clone(), Engine::cpu()];
        check(
            &mixed,
            [3, 100_003],
            &[70_001, 70_002],
            Options::default(),
            true,
        );
        check(&mixed, [9, 1001], &[1, 500], option_sets()[1].0, true);
        // One row: the kernels split each shard's row into segments for the statistics and the
        // gradient passes.
        check(&mixed, [1, 140_000], &[70_000], option_sets()[1].0, true);
    }
}

/// Logits near 1e6: the merged statistics reach the gradient passes as (max, sum-exp), never as
/// an f32 lse, so the gradient keeps the unsharded precision.
#[test]
fn shards_keep_their_precision_at_large_logits() {
    let engines: Vec<Engine> = common::gpus()
        .iter()
        .cloned()
        .chain([Engine::cpu(), Engine::reference()])
        .collect();
    for (o, weighted) in option_sets() {
        check_at(&engines, [5, 3001], &[1000, 2000], o, weighted, 1.0e6);
    }
}

#[test]
fn shards_on_the_cpu_engines_and_one_shard() {
    let cpus = [Engine::cpu(), Engine::reference()];
    for (o, weighted) in option_sets() {
        check(&cpus, [16, 777], &[100, 101, 600], o, weighted);
        check(&cpus[..1], [4, 50], &[], o, weighted);
    }
}

/// A refusal of the shards themselves: `Error::InvalidOption` naming `shard`.
fn assert_refused(err: &Error) {
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "shard",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn shards_that_do_not_tile_the_row_are_refused() {
    let x = [0.5_f32; 2 * 3];
    let t = [0_i64, 4];
    let stats = |first: usize| {
        Engine::cpu()
            .shard_stats(
                &Request::cross_entropy(&x[..], [2, 3], &t[..]),
                Shard {
                    first_class: first,
                    total_classes: 6,
                },
            )
            .unwrap()
    };
    let o = Options::default();
    for shards in [
        vec![stats(0)],
        vec![stats(0), stats(2)],
        vec![stats(3), stats(3)],
    ] {
        let err = merge_shards(&shards, &t, None, &o).unwrap_err();
        assert_refused(&err);
    }
    assert!(merge_shards(&[stats(3), stats(0)], &t, None, &o).is_ok());
    // Class counts that overflow a usize, and a shard past the row.
    let mut huge = stats(0);
    huge.classes = usize::MAX;
    let mut wrap = stats(3);
    wrap.shard.first_class = usize::MAX;
    let err = merge_shards(&[huge, wrap], &t, None, &o).unwrap_err();
    assert_refused(&err);
    let mut long = stats(3);
    long.classes = 4;
    let err = merge_shards(&[stats(0), long], &t, None, &o).unwrap_err();
    assert_refused(&err);
    let mut short = stats(3);
    short.sum_exp.pop();
    let err = merge_shards(&[stats(0), short], &t, None, &o).unwrap_err();
    assert_refused(&err);
    // A target past the row, and a shard past the row.
    let err = Engine::cpu()
        .shard_stats(
            &Request::cross_entropy(&x[..], [2, 3], &[0_i64, 6][..]),
            Shard {
                first_class: 0,
                total_classes: 6,
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TargetOutOfRange {
                row: 1,
                target: 6,
                classes: 6,
                ..
            }
        ),
        "{err}"
    );
    let err = Engine::cpu()
        .shard_stats(
            &Request::cross_entropy(&x[..], [2, 3], &t[..]),
            Shard {
                first_class: 4,
                total_classes: 6,
            },
        )
        .unwrap_err();
    assert_refused(&err);
}

/// A shard's device-resident request on its columns in `buffer`.
fn device_request<'a>(
    buffer: &'a wgpu::Buffer,
    shape: [usize; 2],
    dtype: xent::Dtype,
    target: xent::DeviceTarget<'a>,
    options: Options,
    weight: Option<&'a [f32]>,
) -> xent::DeviceRequest<'a> {
    let mut r = xent::DeviceRequest::new(
        xent::LossKind::CrossEntropy,
        xent::DeviceInput {
            buffer,
            offset: 0,
            shape,
            dtype,
        },
        target,
    );
    r.options = options;
    r.weight = weight;
    r
}

/// The device-resident shard passes against the host ones on the same engine, bit for bit: the
/// statistics (f32 and bf16 logits; targets on the host, or on the device as i64 or i32), the
/// merge of them, and each shard's gradient, separate and in place (bf16: the host's f32
/// gradient rounded once; a shard of one class makes rows share 16-bit words); and through the
/// merge, against the unsharded reference.
#[test]
fn device_resident_shards_match_host_shards_bit_for_bit() {
    for engine in common::gpus() {
        check_device_shards(engine, [37, 1003], &[400, 401]);
    }
    // Devices that bind at most 1 MiB at once: the second shard takes two row chunks.
    for (_, device, queue) in common::caller_devices_with(|limits| wgpu::Limits {
        max_storage_buffer_binding_size: 1 << 20,
        ..limits
    }) {
        check_device_shards(&Engine::from_wgpu(device, queue), [300, 2003], &[1000]);
    }
}

fn check_device_shards(engine: &Engine, [batch, classes]: [usize; 2], cuts: &[usize]) {
    use half::bf16;
    use xent::{DeviceTarget, Dtype, IndexType, Target};
    let mut rng = common::rng("device shards");
    let bounds: Vec<usize> = [0].iter().chain(cuts).chain([&classes]).copied().collect();
    let x = common::logits(&mut rng, batch * classes, 4.0);
    let t = common::targets(&mut rng, batch, classes, 0.2);
    let t32: Vec<i32> = t.iter().map(|&y| y as i32).collect();
    let weight: Vec<f32> = (0..classes).map(|_| rng.random_range(0.2..2.0)).collect();
    let (device, queue) = engine.wgpu().unwrap();
    let labels64 = common::storage_buffer(engine, bytemuck::cast_slice(&t));
    let labels32 = common::storage_buffer(engine, bytemuck::cast_slice(&t32));
    for (o, weighted) in option_sets() {
        let weight = weighted.then_some(&weight[..]);
        for dtype in [Dtype::F32, Dtype::Bf16] {
            let rounded: Vec<f32> = match dtype {
                Dtype::Bf16 => x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect(),
                _ => x.clone(),
            };
            let targets = [
                ("host i64", DeviceTarget::Host(Target::ClassesI64(&t))),
                (
                    "device i64",
                    DeviceTarget::Classes {
                        buffer: &labels64,
                        offset: 0,
                        index: IndexType::I64,
                    },
                ),
                (
                    "device i32",
                    DeviceTarget::Classes {
                        buffer: &labels32,
                        offset: 0,
                        index: IndexType::I32,
                    },
                ),
            ];
            for (label, target) in targets {
                let what = format!("{} {o:?} {dtype:?}, targets {label}", engine.device());
                let mut host_stats = Vec::new();
                let mut device_outs = Vec::new();
                let mut inputs = Vec::new();
                for w in bounds.windows(2) {
                    let shard = Shard {
                        first_class: w[0],
                        total_classes: classes,
                    };
                    let cs = w[1] - w[0];
                    let xs = columns(&rounded, classes, w[0]..w[1]);
                    let ws = weight.map(|v| v[w[0]..w[1]].to_vec());
                    let halves: Vec<bf16> = xs.iter().map(|&v| bf16::from_f32(v)).collect();
                    let host = match dtype {
                        Dtype::Bf16 => request(&halves[..], [batch, cs], &t, ws.as_deref(), &o),
                        _ => request(&xs[..], [batch, cs], &t, ws.as_deref(), &o),
                    };
                    host_stats.push(engine.shard_stats(&host, shard).unwrap());
                    let bytes: Vec<u8> = match dtype {
                        Dtype::Bf16 => bytemuck::cast_slice(&halves).to_vec(),
                        _ => bytemuck::cast_slice(&xs).to_vec(),
                    };
                    inputs.push((shard, cs, xs, ws, common::storage_buffer(engine, &bytes)));
                }
                let mut encoder = device.create_command_encoder(&Default::default());
                for (shard, cs, _, ws, buffer) in &inputs {
                    let r = device_request(buffer, [batch, *cs], dtype, target, o, ws.as_deref());
                    device_outs.push(engine.record_shard_stats(&mut encoder, &r, *shard).unwrap());
                }
                queue.submit([encoder.finish()]);
                let device_stats: Vec<_> = device_outs
                    .iter()
                    .map(|out| engine.read_shard_stats(out).unwrap())
                    .collect();
                assert_eq!(device_stats, host_stats, "{what}: statistics");
                let merged = merge_shards(&device_stats, &t, weight, &o).unwrap();
                let mut grad = vec![0.0_f32; batch * classes];
                for (shard, cs, xs, ws, buffer) in &inputs {
                    // The host pass on the same values in the same dtype; its f32 gradient,
                    // rounded to bf16 once, is what the device writes for bf16 logits.
                    let halves: Vec<bf16> = xs.iter().map(|&v| bf16::from_f32(v)).collect();
                    let host = match dtype {
                        Dtype::Bf16 => request(&halves[..], [batch, *cs], &t, ws.as_deref(), &o),
                        _ => request(&xs[..], [batch, *cs], &t, ws.as_deref(), &o),
                    };
                    let mut want = vec![0.0_f32; batch * cs];
                    engine
                        .shard_grad(&host, *shard, &merged, &mut want)
                        .unwrap();
                    if dtype == Dtype::Bf16 {
                        want.iter_mut()
                            .for_each(|w| *w = bf16::from_f32(*w).to_f32());
                    }
                    let mut r =
                        device_request(buffer, [batch, *cs], dtype, target, o, ws.as_deref());
                    let mut encoder = device.create_command_encoder(&Default::default());
                    let separate = engine
                        .record_shard_grad(&mut encoder, &r, *shard, &merged)
                        .unwrap();
                    r.options.grad_in_place = true;
                    let in_place = engine
                        .record_shard_grad(&mut encoder, &r, *shard, &merged)
                        .unwrap();
                    assert!(in_place.grad.is_none());
                    // A gradient pass writes no values, and says so.
                    assert!(separate.values.is_none() && in_place.values.is_none());
                    queue.submit([encoder.finish()]);
                    engine.check_targets(&separate).unwrap();
                    let size = batch * cs * dtype.size();
                    let sep = engine
                        .read_buffer(separate.grad.as_ref().unwrap(), 0..size as u64)
                        .unwrap();
                    let over = engine.read_buffer(buffer, 0..size as u64).unwrap();
                    assert_eq!(sep, over, "{what}: separate and in-place gradients");
                    let g: Vec<f32> = match dtype {
                        Dtype::Bf16 => sep
                            .chunks_exact(2)
                            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                            .collect(),
                        _ => common::floats(&sep),
                    };
                    assert_eq!(g, want, "{what}: gradient of {shard:?}");
                    for (row, piece) in g.chunks_exact(*cs).enumerate() {
                        let start = row * classes + shard.first_class;
                        grad[start..start + cs].copy_from_slice(piece);
                    }
                }
                let whole = request(&rounded[..], [batch, classes], &t, weight, &o).with_grad(true);
                let reference = Engine::reference().compute(&whole).unwrap();
                let bound = if dtype == Dtype::Bf16 { 1e-2 } else { 1e-5 };
                let error = common::relative_norm_error(&grad, reference.grad.as_ref().unwrap());
                assert!(error <= bound, "{what}: gradient error {error:e}");
            }
        }
    }
}

/// Device-resident shard requests that cannot be one, or read as one, are typed errors: a target
/// past the row's total classes on the device (named, with the total), soft targets, a shard
/// past the row, statistics read from a plain call, and a merged loss of another batch.
#[test]
fn device_resident_shard_refusals() {
    use xent::{DeviceInput, DeviceRequest, DeviceTarget, Dtype, IndexType, LossKind, Target};
    let x = [0.5_f32, -1.0, 2.0, 0.25, 1.5, -0.5];
    let t = [4_i64, 9];
    for engine in common::gpus() {
        let (device, queue) = engine.wgpu().unwrap();
        let logits = common::storage_buffer(engine, bytemuck::cast_slice(&x));
        let labels = common::storage_buffer(engine, bytemuck::cast_slice(&t));
        let shard = Shard {
            first_class: 3,
            total_classes: 6,
        };
        let base = DeviceRequest::new(
            LossKind::CrossEntropy,
            DeviceInput {
                buffer: &logits,
                offset: 0,
                shape: [2, 3],
                dtype: Dtype::F32,
            },
            DeviceTarget::Classes {
                buffer: &labels,
                offset: 0,
                index: IndexType::I64,
            },
        );
        let mut encoder = device.create_command_encoder(&Default::default());
        let stats = engine
            .record_shard_stats(&mut encoder, &base, shard)
            .unwrap();
        let plain = engine.record(&mut encoder, &base).unwrap();
        queue.submit([encoder.finish()]);
        let err = engine.read_shard_stats(&stats).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TargetOutOfRange {
                    row: 1,
                    target: 9,
                    classes: 6,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = engine.read_shard_stats(&plain).unwrap_err();
        assert!(
            matches!(err, Error::DeviceBuffer { what: "values", .. }),
            "{err:?}"
        );

        let dense = [0.5_f32; 6];
        let soft = DeviceRequest {
            target: DeviceTarget::Host(Target::Dense(&dense)),
            ..base
        };
        let mut encoder = device.create_command_encoder(&Default::default());
        assert_refused(
            &engine
                .record_shard_stats(&mut encoder, &soft, shard)
                .unwrap_err(),
        );
        let past = Shard {
            first_class: 4,
            total_classes: 6,
        };
        assert_refused(
            &engine
                .record_shard_stats(&mut encoder, &base, past)
                .unwrap_err(),
        );

        let t_ok = [4_i64, 1];
        let host = DeviceRequest {
            target: DeviceTarget::Host(Target::ClassesI64(&t_ok)),
            ..base
        };
        let stats = engine
            .record_shard_stats(&mut encoder, &host, shard)
            .unwrap();
        queue.submit([encoder.finish()]);
        let other = Request::cross_entropy(&x[..3], [1, 3], &[1_i64][..]);
        let other_stats = Engine::cpu()
            .shard_stats(
                &other,
                Shard {
                    first_class: 0,
                    total_classes: 3,
                },
            )
            .unwrap();
        let one_row = merge_shards(&[other_stats], &[1], None, &Options::default()).unwrap();
        let mut encoder = device.create_command_encoder(&Default::default());
        assert_refused(
            &engine
                .record_shard_grad(&mut encoder, &host, shard, &one_row)
                .unwrap_err(),
        );
        let read = engine.read_shard_stats(&stats).unwrap();
        assert_eq!(read.target_logit, vec![Some(x[1]), None]);
    }
}
