//! Vocabulary shards of a device-resident linear head: W (and b, and the class weights) split into
//! row blocks of uneven widths, one of a single class, each shard on a GPU adapter (round robin
//! over those there are): `Engine::record_linear_shard_stats`, `Engine::read_shard_stats`,
//! `merge_shards`, then `Engine::record_linear_shard_grad`. The merged loss and lse, the shards'
//! dW and db slices put together, and the sum of their partial dH must be the unsharded device
//! head's (on the first adapter) within 1e-5.

mod common;
#[path = "common/device_head.rs"]
mod device_head;

use std::borrow::Cow;

use device_head::{At, Head, OnDevice, all_new, gpus};
use xent::io::Floats;
use xent::{Dtype, Engine, Error, IndexType, Loss, Options, Reduction, Shard, merge_shards};

const TOL: f64 = 1e-5;

/// Rows `range` of a [rows, d] matrix.
fn rows(x: &Floats, range: std::ops::Range<usize>, d: usize) -> Floats<'static> {
    let r = range.start * d..range.end * d;
    match x {
        Floats::F32(v) => Floats::F32(Cow::Owned(v[r].to_vec())),
        Floats::F16(v) => Floats::F16(Cow::Owned(v[r].to_vec())),
        Floats::Bf16(v) => Floats::Bf16(Cow::Owned(v[r].to_vec())),
    }
}

/// The head of classes `range` of `head`: its W, b and class weights' rows, the same H, targets
/// (over every class) and options.
fn shard_of(head: &Head, range: std::ops::Range<usize>) -> Head {
    let [n, d, _] = head.size;
    Head {
        size: [n, d, range.len()],
        hidden: head.hidden.clone(),
        weight: rows(&head.weight, range.clone(), d),
        bias: head.bias.as_ref().map(|b| b[range.clone()].to_vec()),
        class_weight: head.class_weight.as_ref().map(|w| w[range].to_vec()),
        labels: head.labels.clone(),
        labels32: head.labels32.clone(),
        soft: Vec::new(),
        options: head.options,
        chunk_rows: head.chunk_rows,
    }
}

/// Asserts `got` within `TOL` of `want`, relative to `want`'s largest magnitude.
fn close(what: &str, got: &[f32], want: &[f32]) {
    let largest = want.iter().fold(0.0_f64, |m, &x| m.max(f64::from(x.abs())));
    common::assert_close(what, got, want, TOL * largest.max(1e-30), 0.0);
}

/// Splits `head` at `cuts` over `engines`, merges, and checks against the unsharded head.
fn check(engines: &[Engine], what: &str, head: &Head, cuts: &[usize], at: At) {
    let [n, d, v] = head.size;
    let whole_engine = &engines[0];
    let mut whole_head = Head {
        ..shard_of(head, 0..v)
    };
    whole_head.options.lse = true;
    let want = OnDevice::new(whole_engine, &whole_head).run(
        whole_engine,
        &whole_head,
        at,
        whole_head.new_grads(),
    );
    let bounds: Vec<usize> = [0].iter().chain(cuts).chain([&v]).copied().collect();
    let shards: Vec<(Shard, Head, &Engine)> = bounds
        .windows(2)
        .enumerate()
        .map(|(k, w)| {
            let shard = Shard {
                first_class: w[0],
                total_classes: v,
            };
            (
                shard,
                shard_of(head, w[0]..w[1]),
                &engines[k % engines.len()],
            )
        })
        .collect();
    let on: Vec<OnDevice> = shards.iter().map(|(_, h, e)| OnDevice::new(e, h)).collect();
    let stats: Vec<_> = shards
        .iter()
        .zip(&on)
        .map(|((shard, h, engine), on)| {
            let (device, queue) = engine.wgpu().unwrap();
            let mut encoder = device.create_command_encoder(&Default::default());
            let request = on.request(h, at, all_new());
            let out = engine
                .record_linear_shard_stats(&mut encoder, &request, *shard)
                .unwrap();
            assert!(out.hidden.is_none() && out.weight.is_none() && out.bias.is_none());
            queue.submit([encoder.finish()]);
            engine.read_shard_stats(&out.loss).unwrap()
        })
        .collect();
    let o = head.options;
    let merged = merge_shards(&stats, &head.labels, head.class_weight.as_deref(), &o).unwrap();
    match &merged.loss {
        Loss::Scalar(x) => common::assert_scalar(&format!("{what}: loss"), *x, want.loss[0], TOL),
        Loss::Unreduced { values, .. } => close(&format!("{what}: losses"), values, &want.loss),
    }
    close(&format!("{what}: lse"), &merged.lse, &want.lse);
    let mut grads = [vec![0.0_f64; n * d], Vec::new(), Vec::new()];
    for ((shard, h, engine), on) in shards.iter().zip(&on) {
        let (device, queue) = engine.wgpu().unwrap();
        let mut encoder = device.create_command_encoder(&Default::default());
        let request = on.request(h, at, h.new_grads());
        let out = engine
            .record_linear_shard_grad(&mut encoder, &request, *shard, &merged)
            .unwrap();
        queue.submit([encoder.finish()]);
        let vs = h.size[2];
        let read = |b: &Option<wgpu::Buffer>, len| {
            common::read_floats(engine, b.as_ref().unwrap(), 0, len)
        };
        for (sum, x) in grads[0].iter_mut().zip(read(&out.hidden, n * d)) {
            *sum += f64::from(x);
        }
        grads[1].extend(read(&out.weight, vs * d).iter().map(|&x| f64::from(x)));
        if head.bias.is_some() {
            grads[2].extend(read(&out.bias, vs).iter().map(|&x| f64::from(x)));
        }
    }
    for (k, name) in ["dH (the partials' sum)", "dW", "db"].iter().enumerate() {
        let got: Vec<f32> = grads[k].iter().map(|&x| x as f32).collect();
        close(&format!("{what}: {name}"), &got, &want.grads[k]);
    }
}

#[test]
fn shards_of_a_device_head_match_the_unsharded_head() {
    let mut rng = common::rng("device head shards");
    let engines = gpus("device head shards");
    if engines.is_empty() {
        return;
    }
    let names: Vec<String> = engines.iter().map(|e| e.device().to_string()).collect();
    let o = Options::default();
    let mut head = |size, dtypes, options, chunk_rows, bias, weighted: bool| {
        let mut head = Head::draw(&mut rng, size, dtypes, bias, 0.2);
        head.options = options;
        head.chunk_rows = chunk_rows;
        if !weighted {
            head.class_weight = None;
        }
        head
    };
    let (f32, f16, bf16) = (Dtype::F32, Dtype::F16, Dtype::Bf16);
    let smoothing = |label_smoothing| Options {
        label_smoothing,
        ..o
    };
    let capped = Options {
        reduction: Reduction::Sum,
        z_loss: 1e-3,
        softcap: Some(15.0),
        ..o
    };
    let none = Options {
        reduction: Reduction::None,
        ..o
    };
    let cases: Vec<(Head, &[usize], At)> = vec![
        (
            head(
                [37, 19, 29],
                [f32, f32],
                smoothing(0.1),
                Some(8),
                true,
                true,
            ),
            &[13, 14],
            At::Device(IndexType::I64),
        ),
        (
            head([70, 33, 257], [bf16, f16], capped, Some(16), true, true),
            &[100],
            At::Device(IndexType::I32),
        ),
        (
            head([9, 1, 13], [f16, f32], none, None, true, false),
            &[1, 12],
            At::HostI64,
        ),
        (
            head([1, 7, 5], [f32, bf16], smoothing(0.2), None, false, true),
            &[2, 3],
            At::HostI32,
        ),
    ];
    for (head, cuts, at) in &cases {
        let what = format!(
            "{:?} {:?} {:?} cut at {cuts:?} on {}",
            head.size,
            head.hidden.dtype(),
            head.weight.dtype(),
            names.join(" + ")
        );
        check(engines, &what, head, cuts, *at);
    }
}

/// A shard's pass needs class indices: a dense target is a typed error naming the shard.
#[test]
fn a_shard_of_a_device_head_needs_class_targets() {
    let mut rng = common::rng("device head shards, dense targets");
    for engine in gpus("device head shards, dense targets") {
        let head = Head::draw(&mut rng, [4, 3, 6], [Dtype::F32, Dtype::F32], true, 0.0);
        let on = OnDevice::new(engine, &head);
        let (device, _) = engine.wgpu().unwrap();
        let mut encoder = device.create_command_encoder(&Default::default());
        let request = on.request(&head, At::DeviceDense, all_new());
        let shard = Shard {
            first_class: 0,
            total_classes: 12,
        };
        let err = engine
            .record_linear_shard_stats(&mut encoder, &request, shard)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidOption {
                    option: "shard",
                    ..
                }
            ),
            "{}: {err:?}",
            engine.device()
        );
    }
}
