//! The contract every backend fulfils, and the three that do: the fast CPU path, the float64
//! reference, and a wgpu device. Every method is required, so a backend that lacks a capability
//! does not compile; where a capability has no meaning on a backend (autotune on the CPU), its
//! impl says so explicitly.

use std::sync::Arc;
use std::time::Instant;

use crate::cpu::fast::{self, threads};
use crate::cpu::{self, reference};
use crate::error::Result;
use crate::gpu::GpuEngine;
use crate::output::{Clock, KernelTime, LinearGradsMut, Output};
use crate::request::{Checked, CheckedLinear, Input};

/// What an [`Engine`](super::Engine) asks of the backend it owns. Requests arrive checked.
pub(crate) trait Backend: Send + Sync {
    /// Computes a request, writing its gradient into `grad` when given (of the request's B·C).
    fn compute(&self, req: &Checked, grad: Option<&mut [f32]>) -> Result<Output>;

    /// Computes a request over `logits` (its input) and writes the gradient over them.
    fn compute_in_place(&self, req: Checked, logits: &mut [f32]) -> Result<Output>;

    /// Computes a linear request, its gradients into the slices of `grads`.
    fn compute_linear(&self, req: &CheckedLinear, grads: LinearGradsMut) -> Result<Output>;

    /// [`Backend::compute_linear`], with the time spent in the kernels.
    fn compute_linear_timed(
        &self,
        req: &CheckedLinear,
        grads: LinearGradsMut,
    ) -> Result<(Output, KernelTime)>;

    /// Times the GEMMs of a linear request alone (with `backward`, all three).
    fn linear_probe(&self, req: &CheckedLinear, backward: bool) -> Result<KernelTime>;

    /// [`Backend::compute`], with the time spent in the kernels.
    fn compute_timed(
        &self,
        req: &Checked,
        grad: Option<&mut [f32]>,
    ) -> Result<(Output, KernelTime)>;

    /// Reads `data` once and sums it, timed: the ceiling for a kernel reading the same bytes.
    fn bandwidth_probe(&self, data: &[f32]) -> Result<KernelTime>;

    /// A vocabulary shard's statistics, `ROW_STATS` f32 per row.
    fn shard_stats(&self, req: &Checked) -> Result<Vec<f32>>;

    /// A vocabulary shard's slice of the gradient.
    fn shard_grad(&self, req: &Checked, grad: &mut [f32]) -> Result<()>;

    /// A vocabulary shard of a linear head's statistics, `ROW_STATS` f32 per row.
    fn shard_linear_stats(&self, req: &CheckedLinear) -> Result<Vec<f32>>;

    /// A vocabulary shard of a linear head's gradients into the slices of `grads`: its slices of
    /// dW and db, and its partial dH.
    fn shard_linear_grad(&self, req: &CheckedLinear, grads: LinearGradsMut) -> Result<()>;

    /// The same backend, opened afresh after its device was lost.
    fn rebuild(&self) -> Result<Arc<dyn Backend>>;

    /// Turns the autotune of the row kernels on or off.
    fn set_autotune(&self, on: bool);

    /// Whether the autotune is still trying candidates.
    fn autotuning(&self) -> bool;

    /// What the autotune has chosen, a line per class of shapes.
    fn autotuned(&self) -> Vec<String>;

    /// The seconds to upload `data` as a call uploads its input; `None` where nothing is
    /// uploaded.
    fn upload_time(&self, data: &[f32]) -> Result<Option<f64>>;

    /// Bytes of device memory kept between calls.
    fn pooled_bytes(&self) -> u64;

    /// The wgpu engine that device-resident requests are recorded on; `None` off a GPU.
    fn gpu(&self) -> Option<&GpuEngine>;
}

/// A CPU path.
#[derive(Clone, Copy)]
pub(crate) enum Cpu {
    /// SIMD, multi-threaded, f32.
    Fast,
    /// float64, the oracle.
    Reference,
}

/// An in-place call for a backend that writes gradients into a buffer of its own: computed over
/// `logits` into a buffer, then copied over them.
fn via_buffer(backend: &dyn Backend, req: Checked, logits: &mut [f32]) -> Result<Output> {
    let mut grad = vec![0.0; logits.len()];
    let over_logits = Checked {
        input: Input::F32(logits),
        ..req
    };
    let out = backend.compute(&over_logits, Some(&mut grad))?;
    logits.copy_from_slice(&grad);
    Ok(out)
}

/// The time since `start` on the host's clock: a CPU path's kernel time, the whole call.
fn host_time(start: Instant) -> KernelTime {
    KernelTime {
        seconds: start.elapsed().as_secs_f64(),
        clock: Clock::Host,
    }
}

/// The kernel time of a GPU call that recorded no pass (an empty batch).
const NO_PASSES: KernelTime = KernelTime {
    seconds: 0.0,
    clock: Clock::Timestamps,
};

/// The CPU paths: all of a call is kernel, there is nothing to upload or autotune, no device
/// memory and no wgpu device.
impl Backend for Cpu {
    fn compute(&self, req: &Checked, grad: Option<&mut [f32]>) -> Result<Output> {
        match self {
            Cpu::Fast => {
                threads::spin()?;
                Ok(fast::compute(req, grad))
            }
            Cpu::Reference => Ok(reference::compute(req, grad)),
        }
    }

    fn compute_in_place(&self, req: Checked, logits: &mut [f32]) -> Result<Output> {
        match self {
            Cpu::Fast => {
                threads::spin()?;
                Ok(fast::compute_in_place(&req, logits))
            }
            Cpu::Reference => via_buffer(self, req, logits),
        }
    }

    fn compute_linear(&self, req: &CheckedLinear, grads: LinearGradsMut) -> Result<Output> {
        match self {
            Cpu::Fast => {
                threads::spin()?;
                Ok(cpu::linear::compute(req, grads))
            }
            Cpu::Reference => Ok(reference::linear::compute(req, grads)),
        }
    }

    fn compute_linear_timed(
        &self,
        req: &CheckedLinear,
        grads: LinearGradsMut,
    ) -> Result<(Output, KernelTime)> {
        let start = Instant::now();
        let out = self.compute_linear(req, grads)?;
        Ok((out, host_time(start)))
    }

    /// Both CPU paths set their linear rows against the fast path's GEMMs: the machine's roof.
    fn linear_probe(&self, req: &CheckedLinear, backward: bool) -> Result<KernelTime> {
        threads::spin()?;
        Ok(KernelTime {
            seconds: cpu::linear::probe(req, backward),
            clock: Clock::Host,
        })
    }

    fn compute_timed(
        &self,
        req: &Checked,
        grad: Option<&mut [f32]>,
    ) -> Result<(Output, KernelTime)> {
        let start = Instant::now();
        let out = self.compute(req, grad)?;
        Ok((out, host_time(start)))
    }

    fn bandwidth_probe(&self, data: &[f32]) -> Result<KernelTime> {
        let start = Instant::now();
        std::hint::black_box(fast::probe_sum(std::hint::black_box(data)));
        Ok(KernelTime {
            seconds: start.elapsed().as_secs_f64(),
            clock: Clock::Host,
        })
    }

    fn shard_stats(&self, req: &Checked) -> Result<Vec<f32>> {
        Ok(cpu::shard::stats(req))
    }

    fn shard_grad(&self, req: &Checked, grad: &mut [f32]) -> Result<()> {
        cpu::shard::grad(req, grad);
        Ok(())
    }

    fn shard_linear_stats(&self, req: &CheckedLinear) -> Result<Vec<f32>> {
        match self {
            Cpu::Fast => {
                threads::spin()?;
                Ok(cpu::linear_shard::stats(req))
            }
            Cpu::Reference => Ok(reference::linear::shard_stats(req)),
        }
    }

    fn shard_linear_grad(&self, req: &CheckedLinear, grads: LinearGradsMut) -> Result<()> {
        match self {
            Cpu::Fast => {
                threads::spin()?;
                cpu::linear_shard::grad(req, grads);
            }
            Cpu::Reference => reference::linear::shard_grad(req, grads),
        }
        Ok(())
    }

    fn rebuild(&self) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(*self))
    }

    fn set_autotune(&self, _on: bool) {}

    fn autotuning(&self) -> bool {
        false
    }

    fn autotuned(&self) -> Vec<String> {
        Vec::new()
    }

    fn upload_time(&self, _data: &[f32]) -> Result<Option<f64>> {
        Ok(None)
    }

    fn pooled_bytes(&self) -> u64 {
        0
    }

    fn gpu(&self) -> Option<&GpuEngine> {
        None
    }
}

impl Backend for GpuEngine {
    fn compute(&self, req: &Checked, grad: Option<&mut [f32]>) -> Result<Output> {
        Ok(GpuEngine::compute(self, req, grad, false)?.0)
    }

    fn compute_linear(&self, req: &CheckedLinear, grads: LinearGradsMut) -> Result<Output> {
        Ok(GpuEngine::compute_linear(self, req, grads, false)?.0)
    }

    fn compute_linear_timed(
        &self,
        req: &CheckedLinear,
        grads: LinearGradsMut,
    ) -> Result<(Output, KernelTime)> {
        let (out, kernel) = GpuEngine::compute_linear(self, req, grads, true)?;
        Ok((out, kernel.unwrap_or(NO_PASSES)))
    }

    fn linear_probe(&self, req: &CheckedLinear, backward: bool) -> Result<KernelTime> {
        GpuEngine::linear_probe(self, req, backward)
    }

    fn compute_in_place(&self, req: Checked, logits: &mut [f32]) -> Result<Output> {
        via_buffer(self, req, logits)
    }

    fn compute_timed(
        &self,
        req: &Checked,
        grad: Option<&mut [f32]>,
    ) -> Result<(Output, KernelTime)> {
        let (out, kernel) = GpuEngine::compute(self, req, grad, true)?;
        Ok((out, kernel.unwrap_or(NO_PASSES)))
    }

    fn bandwidth_probe(&self, data: &[f32]) -> Result<KernelTime> {
        GpuEngine::bandwidth_probe(self, data)
    }

    fn shard_stats(&self, req: &Checked) -> Result<Vec<f32>> {
        Ok(match GpuEngine::compute(self, req, None, false)?.0.loss {
            crate::Loss::Unreduced { values, .. } => values,
            crate::Loss::Scalar(_) => Vec::new(),
        })
    }

    fn shard_grad(&self, req: &Checked, grad: &mut [f32]) -> Result<()> {
        GpuEngine::compute(self, req, Some(grad), false).map(drop)
    }

    fn shard_linear_stats(&self, req: &CheckedLinear) -> Result<Vec<f32>> {
        let out = GpuEngine::compute_linear(self, req, LinearGradsMut::default(), false)?.0;
        Ok(match out.loss {
            crate::Loss::Unreduced { values, .. } => values,
            crate::Loss::Scalar(_) => Vec::new(),
        })
    }

    fn shard_linear_grad(&self, req: &CheckedLinear, grads: LinearGradsMut) -> Result<()> {
        GpuEngine::compute_linear(self, req, grads, false).map(drop)
    }

    fn rebuild(&self) -> Result<Arc<dyn Backend>> {
        Ok(Arc::new(GpuEngine::rebuild(self)?))
    }

    fn set_autotune(&self, on: bool) {
        GpuEngine::set_autotune(self, on);
    }

    fn autotuning(&self) -> bool {
        GpuEngine::autotuning(self)
    }

    fn autotuned(&self) -> Vec<String> {
        GpuEngine::autotuned(self)
    }

    fn upload_time(&self, data: &[f32]) -> Result<Option<f64>> {
        GpuEngine::upload_time(self, data).map(Some)
    }

    fn pooled_bytes(&self) -> u64 {
        GpuEngine::pooled_bytes(self)
    }

    fn gpu(&self) -> Option<&GpuEngine> {
        Some(self)
    }
}
