//! Vocabulary shards on a GPU engine's buffers: each shard's statistics recorded into one
//! encoder and read back, their merge, and each shard's gradient in a buffer of its own and in
//! place, with the class targets on the host, or on the device in i64 or i32.

use xent::{
    DeviceInput, DeviceOutput, DeviceRequest, DeviceTarget, Dtype, Engine, IndexType, LossKind,
    Result, Shard, Target, merge_shards,
};

use crate::case::{Case, Data, Values};
use crate::device::{GUARD, buffer, whole_buffer};
use crate::fnv::Fnv;
use crate::report::Report;
use crate::shards::{Cut, columns, option_cases};

/// Where a case's class targets are.
#[derive(Clone, Copy)]
enum Where {
    Host,
    Device(IndexType),
}

/// Every device shard case on `engine`, with data from `seed`.
pub fn run(engine: &Engine, seed: u64, report: &mut Report) {
    let places = [
        ("host", Where::Host),
        ("device i64", Where::Device(IndexType::I64)),
        ("device i32", Where::Device(IndexType::I32)),
    ];
    for (i, case) in option_cases([37, 1003]).into_iter().enumerate() {
        for dtype in [Dtype::F32, Dtype::Bf16] {
            let case = case.with(|c| c.dtype = dtype);
            let data = Data::draw(&case, seed.wrapping_add(i as u64));
            let cut = Cut {
                case,
                cuts: vec![400, 401],
            };
            for (label, at) in places {
                let name = format!("device-resident, targets on the {label}: {}", cut.name());
                one(engine, &cut, &data, at, &name, report);
            }
        }
    }
}

/// A shard's device request on its columns in `input`.
fn request<'a>(
    case: &Case,
    input: &'a wgpu::Buffer,
    classes: usize,
    target: DeviceTarget<'a>,
    weight: &'a [f32],
) -> DeviceRequest<'a> {
    let input = DeviceInput {
        buffer: input,
        offset: GUARD,
        shape: [case.shape[0], classes],
        dtype: case.dtype,
    };
    let mut r = DeviceRequest::new(LossKind::CrossEntropy, input, target);
    r.options = case.options;
    r.weight = case.weight.then_some(weight);
    r
}

fn one(engine: &Engine, cut: &Cut, data: &Data, at: Where, name: &str, report: &mut Report) {
    let (device, queue) = engine.wgpu().expect("a GPU engine");
    let case = &cut.case;
    let [batch, classes] = case.shape;
    let labels = match at {
        Where::Host => None,
        Where::Device(IndexType::I64) => Some(buffer(engine, bytemuck::cast_slice(&data.classes))),
        Where::Device(IndexType::I32) => {
            Some(buffer(engine, bytemuck::cast_slice(&data.classes32)))
        }
    };
    let target = match (&labels, at) {
        (Some(buffer), Where::Device(index)) => DeviceTarget::Classes {
            buffer,
            offset: GUARD,
            index,
        },
        _ => DeviceTarget::Host(Target::ClassesI64(&data.classes)),
    };
    let pieces: Vec<(Shard, usize, wgpu::Buffer, Vec<f32>)> = cut
        .shards()
        .into_iter()
        .map(|(shard, range)| {
            let xs = Values::of(case.dtype, &columns(&data.x, classes, range.clone()));
            let input = buffer(engine, xs.bytes());
            (shard, range.len(), input, data.weight[range].to_vec())
        })
        .collect();

    let mut encoder = device.create_command_encoder(&Default::default());
    let outs: Vec<Result<DeviceOutput>> = pieces
        .iter()
        .map(|(shard, cs, input, ws)| {
            let r = request(case, input, *cs, target, ws);
            engine.record_shard_stats(&mut encoder, &r, *shard)
        })
        .collect();
    queue.submit([encoder.finish()]);
    let stats: Vec<Result<_>> = outs
        .into_iter()
        .map(|out| out.and_then(|out| engine.read_shard_stats(&out)))
        .collect();
    report.hashed(&format!("{name} | record_shard_stats"), |h| {
        stats
            .iter()
            .for_each(|s| h.result(s, |h, s| h.shard_stats(s)));
    });
    let Ok(stats) = stats.into_iter().collect::<Result<Vec<_>>>() else {
        report.surprise(name, "a shard's statistics failed");
        return;
    };
    let weight = case.weight.then_some(&data.weight[..]);
    let merged = merge_shards(&stats, &data.classes, weight, &case.options);
    report.ok(&format!("{name} | merge_shards"), &merged, |h, m| {
        h.merged(m)
    });
    let Ok(merged) = merged else { return };

    let mut h = Fnv::default();
    for (shard, cs, input, ws) in &pieces {
        let mut r = request(case, input, *cs, target, ws);
        let mut encoder = device.create_command_encoder(&Default::default());
        let separate = engine.record_shard_grad(&mut encoder, &r, *shard, &merged);
        r.options.grad_in_place = true;
        let in_place = engine.record_shard_grad(&mut encoder, &r, *shard, &merged);
        queue.submit([encoder.finish()]);
        if separate.is_err() || in_place.is_err() {
            report.surprise(name, "a shard's gradient failed");
        }
        let len = (batch * cs * case.dtype.size()) as u64;
        h.result(&separate, |h, out| {
            h.result(&engine.check_targets(out), |_, ()| {});
            match &out.grad {
                Some(grad) => h.result(&engine.read_buffer(grad, 0..len), |h, bytes| {
                    h.values(case.dtype, bytes);
                }),
                None => h.tag("no gradient"),
            }
        });
        h.result(&in_place, |h, out| {
            h.result(&engine.check_targets(out), |_, ()| {});
            whole_buffer(h, engine, input, case.dtype, len);
        });
    }
    report.line(&format!("{name} | record_shard_grad"), h.finish());
}
