//! The measurements: for every shape and device, the probe, the upload and each pass's calls,
//! timed over rotating inputs after a warm-up, with a progress bar. A linear head's rows are
//! measured in [`super::linear`].

use indicatif::{ProgressBar, ProgressStyle};
use xent::{Input, LossKind, Result};

use super::args::BenchArgs;
use super::devices::Device;
use super::inputs::Inputs;
use super::linear;
use super::report::{Measure, Pass, Row, Shape, Work, moved_bytes};
use super::timing::{Bench, clock_name};

/// The progress bar of the whole run: a step per probe, upload and timed call.
fn progress_bar(
    args: &BenchArgs,
    shapes: &[Shape],
    passes: &[Pass],
    devices: &[Device],
    linear_devices: &[&Device],
) -> ProgressBar {
    let steps: usize = shapes
        .iter()
        .map(|&s| match s {
            Shape::Logits(..) => {
                let gpus = devices.iter().filter(|d| d.is_gpu()).count();
                let probes = devices.iter().filter(|d| !d.reference).count() + gpus;
                let calls: usize = devices
                    .iter()
                    .filter(|d| d.runs_at(s, args.reference_max_elements))
                    .map(|d| passes.iter().map(|&p| d.calls(p)).sum::<usize>())
                    .sum();
                probes + calls
            }
            Shape::Linear(..) => linear::steps(args, s, passes, linear_devices),
        })
        .sum();
    let progress = ProgressBar::new(steps as u64);
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    progress
}

/// The rows of `passes` at every shape on every device, in that order: of `loss` on logits, and
/// of linear heads.
pub fn measure(
    args: &BenchArgs,
    loss: LossKind,
    shapes: &[Shape],
    passes: &[Pass],
    devices: &[Device],
) -> Result<Vec<Row>> {
    let has_linear = shapes.iter().any(|s| matches!(s, Shape::Linear(..)));
    let linear_devices: Vec<&Device> = if has_linear {
        devices.iter().collect()
    } else {
        Vec::new()
    };
    let bench = Bench {
        args,
        passes,
        progress: progress_bar(args, shapes, passes, devices, &linear_devices),
    };
    let mut rows = Vec::new();
    for (i, &shape) in shapes.iter().enumerate() {
        let seed = 0x5eed + i as u64;
        rows.extend(match shape {
            Shape::Logits(b, c) => logits(&bench, loss, [b, c], seed, devices)?,
            Shape::Linear(n, d, v) => linear::measure(&bench, [n, d, v], seed, &linear_devices)?,
        });
    }
    bench.progress.finish_and_clear();
    Ok(rows)
}

/// The rows of `loss` on B × C logits on every device.
fn logits(
    bench: &Bench,
    loss: LossKind,
    [b, c]: [usize; 2],
    seed: u64,
    devices: &[Device],
) -> Result<Vec<Row>> {
    let (args, passes, progress) = (bench.args, bench.passes, &bench.progress);
    let shape = Shape::Logits(b, c);
    let dtype = args.dtype.dtype();
    let in_place = passes.contains(&Pass::FwdBwdInPlace);
    let mut rows = Vec::new();
    progress.set_message(format!("{shape}: drawing inputs"));
    let inputs = Inputs::draw([b, c], loss, dtype, seed);
    let mut grad = vec![
        0.0_f32;
        if passes.contains(&Pass::FwdBwd) {
            b * c
        } else {
            0
        }
    ];
    // In place, each call overwrites its set's logits with their gradient, and the next call
    // on the set reads that: values of another size, at the same cost per element.
    let mut overwritten = if in_place {
        inputs.f32_logits.clone()
    } else {
        Vec::new()
    };
    for device in devices {
        let name = device.engine.device().to_string();
        let row = |pass, measure: Measure, clock: &str, seconds| Row {
            shape,
            pass,
            path: name.clone(),
            measure,
            clock: clock.into(),
            device: device.probe_key.clone(),
            work: Work::Bytes(moved_bytes(b * c, loss, dtype, pass)),
            peak_bytes: None,
            seconds,
        };
        if !device.reference {
            progress.set_message(format!("{shape}: probe on {name}"));
            let mut clock = "";
            let seconds = bench.time(inputs.sets(), |k| {
                let t = device.engine.bandwidth_probe(inputs.probe(k))?;
                clock = clock_name(t.clock);
                Ok(Some(t.seconds))
            })?;
            rows.push(row(Pass::Read, Measure::Probe, clock, seconds));
        }
        if device.is_gpu() {
            progress.set_message(format!("{shape}: upload to {name}"));
            let seconds = bench.time(inputs.sets(), |k| {
                device.engine.upload_time(inputs.probe(k))
            })?;
            rows.push(row(Pass::Read, Measure::Upload, "host", seconds));
        }
        if !device.runs_at(shape, args.reference_max_elements) {
            continue;
        }
        let gpu = device.is_gpu();
        for &pass in passes.iter().filter(|&&p| device.calls(p) > 0) {
            let with_grad = pass == Pass::FwdBwd;
            progress.set_message(format!("{shape} {}: {name}", pass.name()));
            let mut call = |k: usize| -> Result<()> {
                let request = inputs.request(loss, k);
                match pass {
                    Pass::FwdBwd => device.engine.compute_into(&request, &mut grad)?,
                    Pass::FwdBwdInPlace => device.engine.compute_in_place(
                        &request.with_input(Input::F32(&[])),
                        &mut overwritten[k],
                    )?,
                    _ => device.engine.compute(&request)?,
                };
                Ok(())
            };
            // The autotune's trials run before any timed call: at most this many calls.
            for k in 0..if gpu && args.autotune { 64 } else { 0 } {
                call(k % inputs.sets())?;
                if !device.engine.autotuning() {
                    break;
                }
            }
            let measure = if gpu {
                Measure::EndToEnd
            } else {
                Measure::Call
            };
            let seconds = bench.time(inputs.sets(), |k| call(k).map(|()| None))?;
            rows.push(row(pass, measure, "host", seconds));
            if device.calls(pass) == 2 {
                let mut clock = "";
                let seconds = bench.time(inputs.sets(), |k| {
                    let request = inputs.request(loss, k);
                    let g = with_grad.then_some(&mut grad[..]);
                    let (_, t) = device.engine.compute_timed(&request, g)?;
                    clock = clock_name(t.clock);
                    Ok(Some(t.seconds))
                })?;
                rows.push(row(pass, Measure::Kernel, clock, seconds));
            }
        }
    }
    Ok(rows)
}
