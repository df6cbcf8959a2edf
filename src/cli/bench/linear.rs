//! A linear head's rows (`--linear-shape NxDxV`): on each device (every GPU adapter, the fast
//! CPU path), the GEMM probe of each pass (the same matrix products alone, through the same GEMM
//! code: one for the forward, three for forward+backward), then the calls, fwd (the loss alone)
//! and fwd+bwd (the gradients of H, W and b into the caller's buffers), each with its peak memory
//! from a process of its own; on a GPU, each call end to end and its kernels alone.

use xent::Result;

use super::args::BenchArgs;
use super::devices::Device;
use super::inputs::LinearInputs;
use super::linear_call::LinearCall;
use super::peak;
use super::report::{Measure, Pass, Row, Shape, Work, linear_flops};
use super::timing::{Bench, clock_name};

/// The passes of a linear head among `passes`: fwd and fwd+bwd (it has no in-place pass).
fn linear_passes(passes: &[Pass]) -> Vec<Pass> {
    passes
        .iter()
        .copied()
        .filter(|p| matches!(p, Pass::Fwd | Pass::FwdBwd))
        .collect()
}

/// The progress bar's steps of a linear `shape` on `devices`: per pass a probe, and the timings
/// of its call (on a GPU, end to end and kernel).
pub fn steps(args: &BenchArgs, shape: Shape, passes: &[Pass], devices: &[&Device]) -> usize {
    let passes = linear_passes(passes);
    devices
        .iter()
        .map(|d| {
            let probes = usize::from(!d.reference);
            let runs = d.runs_at(shape, args.reference_max_elements);
            passes
                .iter()
                .map(|&p| probes + if runs { d.calls(p) } else { 0 })
                .sum::<usize>()
        })
        .sum()
}

/// The rows of a linear head of N × D × V on each of `devices`, inputs drawn from `seed`: on
/// every device but the reference, the GEMM probe of each pass; then each pass's call, on the
/// host clock (a GPU's end to end: uploads, kernels, readbacks), on a GPU its kernel time too,
/// each with its peak memory.
pub fn measure(
    bench: &Bench,
    [n, d, v]: [usize; 3],
    seed: u64,
    devices: &[&Device],
) -> Result<Vec<Row>> {
    let shape = Shape::Linear(n, d, v);
    let passes = linear_passes(bench.passes);
    let mut rows = Vec::new();
    if passes.is_empty() || devices.is_empty() {
        return Ok(rows);
    }
    let progress = &bench.progress;
    progress.set_message(format!("{shape}: drawing inputs"));
    let sets = LinearInputs::sets([n, d, v]);
    let inputs = LinearInputs::draw([n, d, v], sets, seed);
    for device in devices {
        let name = device.engine.device().to_string();
        let row = |pass, path: String, measure, clock: &str, seconds, peak_bytes| Row {
            shape,
            pass,
            path,
            measure,
            clock: clock.into(),
            device: device.probe_key.clone(),
            work: Work::Flops(linear_flops([n, d, v], pass)),
            seconds,
            peak_bytes,
        };
        if !device.reference {
            for &pass in &passes {
                progress.set_message(format!("{shape} {}: GEMM probe on {name}", pass.name()));
                let mut clock = "";
                let seconds = bench.time(sets, |k| {
                    let t = device
                        .engine
                        .linear_probe(&inputs.request(k), pass == Pass::FwdBwd)?;
                    clock = clock_name(t.clock);
                    Ok(Some(t.seconds))
                })?;
                let path = format!("{} gemm probe", device.probe_key);
                rows.push(row(pass, path, Measure::Probe, clock, seconds, None));
            }
        }
        if !device.runs_at(shape, bench.args.reference_max_elements) {
            continue;
        }
        let measure = if device.is_gpu() {
            Measure::EndToEnd
        } else {
            Measure::Call
        };
        for &pass in &passes {
            let mut call = LinearCall::new([n, d, v], pass, 0.0);
            progress.set_message(format!("{shape} {}: {name}", pass.name()));
            let seconds = bench.time(sets, |k| {
                call.run(&device.engine, &inputs.request(k), false)
                    .map(|_| None)
            })?;
            progress.set_message(format!("{shape} {}: {name}, peak memory", pass.name()));
            let peak = peak::linear([n, d, v], pass, device)?;
            rows.push(row(pass, name.clone(), measure, "host", seconds, peak));
            if device.calls(pass) == 2 {
                progress.set_message(format!("{shape} {}: {name}, kernels", pass.name()));
                let mut clock = "";
                let seconds = bench.time(sets, |k| {
                    let t = call.run(&device.engine, &inputs.request(k), true)?;
                    Ok(t.map(|t| {
                        clock = clock_name(t.clock);
                        t.seconds
                    }))
                })?;
                rows.push(row(
                    pass,
                    name.clone(),
                    Measure::Kernel,
                    clock,
                    seconds,
                    None,
                ));
            }
        }
    }
    Ok(rows)
}
