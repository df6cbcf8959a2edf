//! A linear head's rows (`--linear-shape NxDxV`): on each CPU device, the GEMM probe of each
//! pass (the same matrix products alone, through the same GEMM code: one for the forward, three
//! for forward+backward), then the calls, fwd (the loss alone) and fwd+bwd (the gradients of H,
//! W and b into the caller's buffers), each with its peak memory from a process of its own. A
//! GPU engine has no linear head yet: it gets a note, and no rows.

use xent::{Error, LinearGradsMut, Request, Result};

use super::args::BenchArgs;
use super::devices::Device;
use super::inputs::LinearInputs;
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

/// The devices among `devices` that compute a linear head; each that answers that it has none
/// (a GPU engine, for now) gets a note on stderr, and no rows.
pub fn devices(devices: &[Device]) -> Result<Vec<&Device>> {
    let (hidden, weight, target) = ([0.0_f32], [0.0_f32], [0_i64]);
    let request =
        Request::linear_cross_entropy(&hidden[..], [1, 1], &weight[..], [1, 1], &target[..]);
    let mut taking = Vec::new();
    for device in devices {
        match device.engine.linear_probe(&request, false) {
            Ok(_) => taking.push(device),
            Err(e @ Error::NotOnThisEngine { .. }) => {
                eprintln!(
                    "xent bench: no linear rows on {}: {e}",
                    device.engine.device()
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(taking)
}

/// The progress bar's steps of a linear `shape` on `devices`: a probe and a call per pass.
pub fn steps(args: &BenchArgs, shape: Shape, passes: &[Pass], devices: &[&Device]) -> usize {
    let passes = linear_passes(passes).len();
    devices
        .iter()
        .map(|d| {
            let probes = usize::from(!d.reference);
            let calls = usize::from(d.runs_at(shape, args.reference_max_elements));
            passes * (probes + calls)
        })
        .sum()
}

/// The rows of a linear head of N × D × V on each of `devices`, inputs drawn from `seed`.
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
    let buffer = |len| {
        vec![
            0.0_f32;
            if passes.contains(&Pass::FwdBwd) {
                len
            } else {
                0
            }
        ]
    };
    let (mut d_hidden, mut d_weight, mut d_bias) = (buffer(n * d), buffer(v * d), buffer(v));
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
            progress.set_message(format!("{shape} {}: {name}", pass.name()));
            let seconds = bench.time(sets, |k| {
                let request = inputs.request(k);
                match pass {
                    Pass::FwdBwd => {
                        let grads = LinearGradsMut {
                            hidden: Some(&mut d_hidden),
                            weight: Some(&mut d_weight),
                            bias: Some(&mut d_bias),
                            add: false,
                        };
                        device.engine.compute_linear_into(&request, grads)?
                    }
                    _ => device.engine.compute(&request)?,
                };
                Ok(None)
            })?;
            progress.set_message(format!("{shape} {}: {name}, peak memory", pass.name()));
            let peak = peak::linear([n, d, v], pass, device)?;
            rows.push(row(pass, name.clone(), measure, "host", seconds, peak));
        }
    }
    Ok(rows)
}
