//! The devices `xent bench` measures, and which rows each gives.

use xent::{DeviceKind, Engine};

use super::args::BenchDevice;
use super::report::{CPU_PROBE, Pass, Shape};

/// One device under test.
pub struct Device {
    /// Its engine.
    pub engine: Engine,
    /// The probe it is set against: its adapter, or the CPU.
    pub probe_key: String,
    /// Whether it is the float64 reference.
    pub reference: bool,
    /// A GPU adapter's index among [`Engine::all_gpus`], by which a child process opens it.
    pub adapter: Option<usize>,
}

impl Device {
    /// The devices of `choice` (every kind when it is empty, or holds `all`), each GPU
    /// autotuned when `autotune` is set; an adapter that fails to open is reported and skipped.
    pub fn open(choice: &[BenchDevice], autotune: bool) -> Vec<Device> {
        let all = [BenchDevice::Gpu, BenchDevice::Cpu, BenchDevice::Reference];
        let choice = if choice.is_empty() || choice.contains(&BenchDevice::All) {
            &all[..]
        } else {
            choice
        };
        let cpu_key = CPU_PROBE.to_string();
        let mut devices = Vec::new();
        for &c in choice {
            match c {
                BenchDevice::Gpu => {
                    for (index, engine) in Engine::all_gpus().into_iter().enumerate() {
                        match engine {
                            Ok(engine) => devices.push(Device {
                                probe_key: engine.device().to_string(),
                                engine: engine.autotune(autotune),
                                reference: false,
                                adapter: Some(index),
                            }),
                            Err(e) => eprintln!("xent bench: an adapter failed to open: {e}"),
                        }
                    }
                }
                BenchDevice::Cpu => devices.push(Device {
                    engine: Engine::cpu(),
                    probe_key: cpu_key.clone(),
                    reference: false,
                    adapter: None,
                }),
                BenchDevice::Reference => devices.push(Device {
                    engine: Engine::reference(),
                    probe_key: cpu_key.clone(),
                    reference: true,
                    adapter: None,
                }),
                // Expanded into every kind above.
                BenchDevice::All => {}
            }
        }
        devices
    }

    /// Whether it is a GPU adapter.
    pub fn is_gpu(&self) -> bool {
        self.engine.device().kind == DeviceKind::Gpu
    }

    /// Whether it runs `shape`: the reference runs shapes of at most `reference_max_elements`
    /// elements, B·C logits or, for a linear head, N·D·V multiply-adds (each logit costs it D of
    /// them in float64).
    pub fn runs_at(&self, shape: Shape, reference_max_elements: usize) -> bool {
        let elements = match shape {
            Shape::Logits(b, c) => b * c,
            Shape::Linear(n, d, v) => n * d * v,
        };
        !self.reference || elements <= reference_max_elements
    }

    /// The rows its call gives for `pass`: end to end and kernel on a GPU (in place, end to end
    /// only), the call on the CPU paths; the reference computes no gradient in place of its own,
    /// so it has no in-place row.
    pub fn calls(&self, pass: Pass) -> usize {
        match (pass, self.engine.device().kind) {
            (Pass::FwdBwdInPlace, _) if self.reference => 0,
            (Pass::FwdBwdInPlace, _) | (_, DeviceKind::Cpu) => 1,
            (_, DeviceKind::Gpu) => 2,
        }
    }
}
