//! The benchmark's instruments: timed calls, the bandwidth probe, upload times, the autotune and
//! the memory a GPU engine keeps.

use super::Engine;
use crate::error::Result;
use crate::output::{KernelTime, LinearGradsMut, Output};
use crate::request::Request;

impl Engine {
    /// Computes a request as [`Engine::compute`] does, or with `grad` as
    /// [`Engine::compute_into`] does, and also returns the time spent in the kernels: on a GPU
    /// the compute passes alone (timestamps where the device has them), without the uploads and
    /// readbacks; on the CPU paths the whole call, which is all kernel. For the benchmark
    /// harness: timestamps cost a little, so [`Engine::compute`] takes none.
    pub fn compute_timed(
        &self,
        request: &Request,
        grad: Option<&mut [f32]>,
    ) -> Result<(Output, KernelTime)> {
        let checked = request.with_grad(grad.is_some()).check()?;
        if let Some(g) = &grad {
            checked.check_grad(g)?;
        }
        self.backend.compute_timed(&checked, grad)
    }

    /// [`Engine::compute_linear_into`] with the time spent in the kernels, as
    /// [`Engine::compute_timed`] gives it for a loss on logits: on a GPU the passes alone (the
    /// products, the row kernels and the reduction; timestamps where the device has them),
    /// without the uploads of H, W and b and the readbacks; on the CPU paths the whole call.
    pub fn compute_linear_timed(
        &self,
        request: &Request,
        grads: LinearGradsMut,
    ) -> Result<(Output, KernelTime)> {
        let checked = request.check_linear()?;
        checked.check_grads(&grads)?;
        self.backend.compute_linear_timed(&checked, grads)
    }

    /// Reads `data` once and sums it, and returns the time of that read: the ceiling for a loss
    /// kernel reading the same bytes. On a GPU the data is uploaded first (not timed) and the
    /// probe is a trivial WGSL kernel; on the CPU it is a SIMD sum across the fast path's
    /// threads.
    pub fn bandwidth_probe(&self, data: &[f32]) -> Result<KernelTime> {
        self.backend.bandwidth_probe(data)
    }

    /// Times the matrix products of a linear request ([`Request::linear_cross_entropy`]) alone,
    /// chunk by chunk through the same GEMM code as its computation: the logits' product, and
    /// with `backward` also the two of the gradients. The ceiling for the request's own time,
    /// as [`Engine::bandwidth_probe`] is for a loss on materialized logits.
    pub fn linear_probe(&self, request: &Request, backward: bool) -> Result<KernelTime> {
        self.backend
            .linear_probe(&request.check_linear()?, backward)
    }

    /// Turns on (or off) the autotune of a GPU engine's row kernels, for this engine and its
    /// clones: for each class of shapes (loss, dtype, gradient, and B and C to the next power of
    /// two), the first calls each run one candidate kernel (workgroup sizes, and on CPU adapters
    /// rows per invocation), timed, twice over, and from then on the fastest runs. Every call's
    /// result is checked as ever; but which candidate wins depends on timing, so two processes
    /// may give results that differ in the last bits. A linear head's matrix products are tuned
    /// too: the first product of each class times every candidate tile and keeps the fastest,
    /// and since every tile gives the same bits, that choice changes no result. Off by default,
    /// where a fixed rule picks the kernel and the same input gives the same bits on every run.
    /// No effect on the CPU.
    #[must_use]
    pub fn autotune(self, on: bool) -> Self {
        self.backend.set_autotune(on);
        self
    }

    /// Whether the autotune is still trying candidates for some class of shapes it has seen
    /// (false on the CPU, or when it is off).
    pub fn autotuning(&self) -> bool {
        self.backend.autotuning()
    }

    /// What the autotune has chosen so far, a line per class of shapes (empty on the CPU, or
    /// when it is off).
    pub fn autotuned(&self) -> Vec<String> {
        self.backend.autotuned()
    }

    /// On a GPU, the seconds to upload `data` the way a call uploads its input (same chunks,
    /// same staging buffers), until the device holds it; `None` on the CPU paths, which upload
    /// nothing. For the benchmark: the end-to-end time of a call is set against it.
    pub fn upload_time(&self, data: &[f32]) -> Result<Option<f64>> {
        self.backend.upload_time(data)
    }

    /// Bytes of device memory a GPU engine keeps between calls in its reused buffers (0 on the
    /// CPU paths, which keep none). Each buffer is replaced only by a larger one (rounded up to a
    /// power of two), so this stays at what the largest call so far needed: buffers for two row
    /// chunks in flight (a chunk holds at most 32 MiB of input), and 8 bytes per row for the
    /// per-row results. It does not grow with B·C past one chunk; measured figures are in
    /// `docs/performance.md`.
    pub fn pooled_bytes(&self) -> u64 {
        self.backend.pooled_bytes()
    }
}
