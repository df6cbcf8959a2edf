//! The engine: one object that owns a backend and computes losses on it.

use std::sync::Arc;
use std::time::Instant;

use crate::cpu::fast::threads as pool;
use crate::cpu::{self, fast, reference};
use crate::error::{Error, Result};
use crate::gpu::{self, GpuEngine};
use crate::output::{Clock, KernelTime, Output};
use crate::request::{Checked, Input, Request, ShardPass};
use crate::request::{DeviceOutput, DeviceRequest};
use crate::request::{ROW_STATS, Shard, ShardStats, ShardedLoss};

/// Where an engine computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// A wgpu adapter (a hardware GPU, or a software one such as lavapipe).
    Gpu,
    /// The CPU.
    Cpu,
}

/// Which device an engine runs on, as the CLI and tests name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// GPU or CPU.
    pub kind: DeviceKind,
    /// The adapter's name, or the CPU path's.
    pub adapter: String,
    /// The wgpu backend (`Vulkan`, `Gl`, ...), or `cpu`.
    pub backend: String,
    /// The adapter type (`DiscreteGpu`, `Cpu`, ...), or `cpu`.
    pub device_type: String,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}/{}]", self.backend, self.adapter)
    }
}

#[derive(Clone)]
enum Backend {
    Gpu(Arc<GpuEngine>),
    Fast,
    Reference,
}

/// Computes losses on one device. It builds each pipeline once and reuses its buffers; cloning
/// it is cheap, and it is `Send + Sync`, so one engine can serve many threads.
///
/// ```
/// use xent::{Engine, Request};
/// let engine = Engine::cpu();
/// let logits = [2.0_f32, 1.0, 0.1, 0.5, 2.5, 0.3];
/// let targets = [0_i64, 1];
/// let out = engine
///     .compute(&Request::cross_entropy(&logits[..], [2, 3], &targets[..]))
///     .unwrap();
/// let mean = out.loss.scalar().unwrap();
/// assert!((mean - 0.3185).abs() < 1e-3);
/// ```
#[derive(Clone)]
pub struct Engine {
    backend: Backend,
    info: DeviceInfo,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("device", &self.info)
            .finish()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// The best backend there is: a hardware GPU (discrete, integrated or virtual) when one
    /// opens, or else the fast CPU path. A software adapter such as lavapipe is not chosen here,
    /// because on the same CPU the fast path beats it; ask for it with [`Engine::gpu`].
    pub fn new() -> Self {
        Self::all_gpus()
            .into_iter()
            .flatten()
            .find(|e| e.info.device_type != format!("{:?}", wgpu::DeviceType::Cpu))
            .unwrap_or_else(Self::cpu)
    }

    /// The best GPU adapter that opens: discrete, then integrated, then software, honouring
    /// `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`. An error when there is none.
    pub fn gpu() -> Result<Self> {
        let mut last = Error::NoAdapter("wgpu found no adapter".into());
        for engine in Self::all_gpus() {
            match engine {
                Ok(engine) => return Ok(engine),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// One engine per adapter wgpu finds, best first, each an error where its device would not
    /// open.
    pub fn all_gpus() -> Vec<Result<Self>> {
        let instance = gpu::adapter::instance();
        gpu::adapter::ranked(&instance)
            .iter()
            .map(|adapter| GpuEngine::open(adapter).map(Self::from_gpu))
            .collect()
    }

    /// The fast CPU path: SIMD, multi-threaded, f32.
    pub fn cpu() -> Self {
        Self::on_cpu(
            Backend::Fast,
            format!("cpu fast (SIMD, {} threads)", rayon::current_num_threads()),
        )
    }

    /// The float64 CPU reference, which every other backend is checked against.
    pub fn reference() -> Self {
        Self::on_cpu(Backend::Reference, "cpu reference (float64)".into())
    }

    fn on_cpu(backend: Backend, adapter: String) -> Self {
        Engine {
            backend,
            info: DeviceInfo {
                kind: DeviceKind::Cpu,
                adapter,
                backend: "cpu".into(),
                device_type: "cpu".into(),
            },
        }
    }

    /// An engine on a device the caller already owns. The caller's uncaptured-error handler is
    /// left in place; xent captures its own errors with error scopes.
    pub fn from_wgpu(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self::from_gpu(GpuEngine::borrowed(device, queue))
    }

    fn from_gpu(engine: GpuEngine) -> Self {
        let info = engine.info();
        let info = DeviceInfo {
            kind: DeviceKind::Gpu,
            adapter: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
        };
        Engine {
            backend: Backend::Gpu(Arc::new(engine)),
            info,
        }
    }

    /// A new engine like this one, for after [`Error::DeviceLost`]: on a GPU xent opened, the
    /// same adapter opened afresh (with the same autotune setting); on the CPU a clone. An engine
    /// made with [`Engine::from_wgpu`] is on the caller's device, which only the caller can
    /// replace: that is an error.
    ///
    /// ```
    /// let engine = xent::Engine::cpu();
    /// assert_eq!(engine.rebuild().unwrap().device(), engine.device());
    /// ```
    pub fn rebuild(&self) -> Result<Engine> {
        match &self.backend {
            Backend::Gpu(gpu) => gpu.reopen().map(Self::from_gpu),
            _ => Ok(self.clone()),
        }
    }

    /// The device this engine computes on.
    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    /// Checks a request, then computes it on this engine's device. The gradient, when asked for,
    /// comes back in [`Output::grad`].
    pub fn compute(&self, request: &Request) -> Result<Output> {
        let checked = request.check()?;
        let mut grad = vec![
            0.0;
            if checked.options.grad {
                checked.elements()
            } else {
                0
            }
        ];
        let mut out = self.run(&checked, checked.options.grad.then_some(&mut grad[..]))?;
        out.grad = checked.options.grad.then_some(grad);
        Ok(out)
    }

    /// Computes a request and its gradient, writing the gradient (row-major [B, C] f32) into
    /// `grad` rather than a new vector.
    ///
    /// ```
    /// use xent::{Engine, Request};
    /// let logits = [2.0_f32, 1.0, 0.1];
    /// let mut grad = [0.0_f32; 3];
    /// Engine::cpu()
    ///     .compute_into(&Request::cross_entropy(&logits[..], [1, 3], &[0_i64][..]), &mut grad)
    ///     .unwrap();
    /// assert!(grad[0] < 0.0 && grad[1] > 0.0); // softmax − one-hot
    /// assert!(grad.iter().sum::<f32>().abs() < 1e-6);
    /// ```
    pub fn compute_into(&self, request: &Request, grad: &mut [f32]) -> Result<Output> {
        let checked = request.with_grad(true).check()?;
        check_grad_len(&checked, grad)?;
        self.run(&checked, Some(grad))
    }

    /// Computes a request on the values of `logits` and writes its gradient over them, for a
    /// training step that needs the logits no more. The request names the loss, the shape, the
    /// target and the options, and is built over an empty input (`Input::F32(&[])`, or
    /// [`Request::with_input`]): its input is `logits`, checked as [`Engine::compute`] checks an
    /// input before anything is written, so an error leaves `logits` as they were. The gradient
    /// and the output are those of [`Engine::compute_into`], bit for bit; [`Output::grad`] is
    /// `None`.
    ///
    /// On the fast CPU path the gradient needs no memory of the batch's size: a cross-entropy row
    /// against an unweighted, unsmoothed class (of more than 32 logits) is computed over itself,
    /// and other rows are copied a task at a time (at most 1 MiB, or one row) before they are
    /// overwritten. A GPU writes the gradient over its
    /// uploaded copy of the logits, and the reference into a buffer of its own, then each copies
    /// it into `logits`.
    ///
    /// ```
    /// use xent::{Engine, Input, Request};
    /// let mut logits = vec![2.0_f32, 1.0, 0.1, 0.5, 2.5, 0.3];
    /// let targets = [0_i64, 1];
    /// let request = Request::cross_entropy(Input::F32(&[]), [2, 3], &targets[..]);
    /// let out = Engine::cpu().compute_in_place(&request, &mut logits).unwrap();
    /// assert!((out.loss.scalar().unwrap() - 0.3185).abs() < 1e-3);
    /// assert!(logits[0] < 0.0 && logits[1] > 0.0); // (softmax − one-hot) / 2
    /// ```
    pub fn compute_in_place(&self, request: &Request, logits: &mut [f32]) -> Result<Output> {
        let checked = request.check_in_place(logits)?;
        if let Backend::Fast = self.backend {
            pool::spin()?;
            return Ok(fast::compute_in_place(&checked, logits));
        }
        let mut grad = vec![0.0; logits.len()];
        let over_logits = Checked {
            input: Input::F32(logits),
            ..checked
        };
        let out = self.run(&over_logits, Some(&mut grad))?;
        logits.copy_from_slice(&grad);
        Ok(out)
    }

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
            check_grad_len(&checked, g)?;
        }
        let start = Instant::now();
        match &self.backend {
            Backend::Gpu(gpu) => {
                let (out, kernel) = gpu.compute(&checked, grad, true)?;
                let kernel = kernel.unwrap_or(KernelTime {
                    seconds: 0.0,
                    clock: Clock::Timestamps,
                });
                Ok((out, kernel))
            }
            _ => {
                let out = self.run(&checked, grad)?;
                let host = KernelTime {
                    seconds: start.elapsed().as_secs_f64(),
                    clock: Clock::Host,
                };
                Ok((out, host))
            }
        }
    }

    /// Reads `data` once and sums it, and returns the time of that read: the ceiling for a loss
    /// kernel reading the same bytes. On a GPU the data is uploaded first (not timed) and the
    /// probe is a trivial WGSL kernel; on the CPU it is a SIMD sum across the fast path's
    /// threads.
    pub fn bandwidth_probe(&self, data: &[f32]) -> Result<KernelTime> {
        match &self.backend {
            Backend::Gpu(gpu) => gpu.probe(data),
            _ => {
                let start = Instant::now();
                std::hint::black_box(fast::probe_sum(std::hint::black_box(data)));
                Ok(KernelTime {
                    seconds: start.elapsed().as_secs_f64(),
                    clock: Clock::Host,
                })
            }
        }
    }

    /// Turns on (or off) the autotune of a GPU engine's row kernels, for this engine and its
    /// clones: for each class of shapes (loss, dtype, gradient, and B and C to the next power of
    /// two), the first calls each run one candidate kernel (workgroup sizes, and on CPU adapters
    /// rows per invocation), timed, twice over, and from then on the fastest runs. Every call's
    /// result is checked as ever; but which candidate wins depends on timing, so two processes
    /// may give results that differ in the last bits. Off by default, where a fixed rule picks
    /// the kernel and the same input gives the same bits on every run. No effect on the CPU.
    #[must_use]
    pub fn autotune(self, on: bool) -> Self {
        if let Backend::Gpu(gpu) = &self.backend {
            gpu.set_autotune(on);
        }
        self
    }

    /// Whether the autotune is still trying candidates for some class of shapes it has seen
    /// (false on the CPU, or when it is off).
    pub fn autotuning(&self) -> bool {
        match &self.backend {
            Backend::Gpu(gpu) => gpu.autotuning(),
            _ => false,
        }
    }

    /// What the autotune has chosen so far, a line per class of shapes (empty on the CPU, or
    /// when it is off).
    pub fn autotuned(&self) -> Vec<String> {
        match &self.backend {
            Backend::Gpu(gpu) => gpu.autotuned(),
            _ => Vec::new(),
        }
    }

    /// On a GPU, the seconds to upload `data` the way a call uploads its input (same chunks,
    /// same staging buffers), until the device holds it; `None` on the CPU paths, which upload
    /// nothing. For the benchmark: the end-to-end time of a call is set against it.
    pub fn upload_time(&self, data: &[f32]) -> Result<Option<f64>> {
        match &self.backend {
            Backend::Gpu(gpu) => gpu.upload(data).map(Some),
            _ => Ok(None),
        }
    }

    /// Bytes of device memory a GPU engine keeps between calls in its reused buffers (0 on the
    /// CPU paths, which keep none). Each buffer is replaced only by a larger one (rounded up to a
    /// power of two), so this stays at what the largest call so far needed: per row chunk (at
    /// most 32 MiB of input) two staging buffers, two input and two dense-target chunks, a
    /// gradient chunk, an elementwise-values chunk and two readback buffers that bring a chunk's
    /// gradient and elementwise values back while later chunks compute; and 8 bytes per row for
    /// the per-row results. It does not grow with B·C past one chunk: a 4800 × 32000 f32 call
    /// with a gradient (586 MiB of it) leaves 224 MiB.
    pub fn pooled_bytes(&self) -> u64 {
        match &self.backend {
            Backend::Gpu(gpu) => gpu.pooled_bytes(),
            _ => 0,
        }
    }

    /// One vocabulary shard's statistics: `request` is cross-entropy on logits on the shard's
    /// columns ([B, C_s], with the weights of those classes) against the batch's class indices
    /// over all `shard.total_classes`; its reduction, lse and gradient options are set aside.
    /// The result goes to [`merge_shards`](crate::merge_shards) with the other shards'.
    pub fn shard_stats(&self, request: &Request, shard: Shard) -> Result<ShardStats> {
        let checked = request.check_shard(shard, ShardPass::Stats)?;
        let rows = match &self.backend {
            Backend::Gpu(gpu) => match gpu.compute(&checked, None, false)?.0.loss {
                crate::Loss::Unreduced { values, .. } => values,
                crate::Loss::Scalar(_) => Vec::new(),
            },
            _ => cpu::shard::stats(&checked),
        };
        Ok(ShardStats::from_rows(shard, checked.classes, &rows))
    }

    /// One vocabulary shard's slice of the gradient ([B, C_s], row-major) of the merged loss:
    /// `request` and `shard` as for [`Engine::shard_stats`], and `merged` what
    /// [`merge_shards`](crate::merge_shards) gave, whose scales carry the reduction (the
    /// request's own is set aside).
    pub fn shard_grad(
        &self,
        request: &Request,
        shard: Shard,
        merged: &ShardedLoss,
        grad: &mut [f32],
    ) -> Result<()> {
        let pass = ShardPass::Grad {
            rows: merged.rows.clone(),
            scales: merged.scales,
        };
        let checked = request.check_shard(shard, pass)?;
        check_grad_len(&checked, grad)?;
        match &self.backend {
            Backend::Gpu(gpu) => {
                gpu.compute(&checked, Some(grad), false)?;
            }
            _ => cpu::shard::grad(&checked, grad),
        }
        Ok(())
    }

    /// Records a request on device buffers into the caller's `encoder`: every pass, on buffers of
    /// its own and the caller's, with nothing read back. The results are in the returned
    /// buffers once the caller has submitted the encoder (and the gradient, in place, in the
    /// input buffer). Shapes, options, buffer usages, offsets, sizes and aliasing are checked
    /// here, so that the passes recorded are valid; device class targets are checked on the
    /// device (see [`Engine::check_targets`]). Only on a GPU engine, and with the caller's
    /// buffers on its device ([`Engine::from_wgpu`]). After an `Err`, some passes may already
    /// be in `encoder`: drop it rather than submit it.
    pub fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        request: &DeviceRequest,
    ) -> Result<DeviceOutput> {
        self.gpu_engine()?.record(encoder, request, None)
    }

    /// [`Engine::record`] into an encoder of the engine's own, submitted at once.
    pub fn submit(&self, request: &DeviceRequest) -> Result<DeviceOutput> {
        self.gpu_engine()?.submit(request)
    }

    /// [`Engine::shard_stats`] on device buffers, recorded into `encoder` as [`Engine::record`]
    /// records a request: `request` is cross-entropy on logits on the shard's columns
    /// ([B, C_s], with the weights of those classes) against the batch's class indices over all
    /// `shard.total_classes`, on the host or the device; its reduction, lse and gradient options
    /// are set aside. Once the encoder is submitted, [`Engine::read_shard_stats`] reads the
    /// statistics for [`merge_shards`](crate::merge_shards), a few numbers per row: the logits
    /// never leave the device.
    pub fn record_shard_stats(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        request: &DeviceRequest,
        shard: Shard,
    ) -> Result<DeviceOutput> {
        self.gpu_engine()?
            .record(encoder, request, Some((shard, &ShardPass::Stats)))
    }

    /// Blocks until the device is done, then reads what [`Engine::record_shard_stats`] left on
    /// it; a device class target out of range is [`Error::TargetOutOfRange`], as
    /// [`Engine::check_targets`] says.
    pub fn read_shard_stats(&self, out: &DeviceOutput) -> Result<ShardStats> {
        let (Some((shard, classes)), Some(values)) = (out.shard, &out.values) else {
            return Err(Error::DeviceBuffer {
                what: "values",
                reason: "are not a vocabulary shard's statistics (from record_shard_stats)".into(),
            });
        };
        let bytes = (out.batch * ROW_STATS * 4) as u64;
        let read = self
            .gpu_engine()?
            .read_buffers(&[(&out.status, 0..12), (values, 0..bytes)])?;
        target_status(out, &read[0])?;
        let rows: Vec<f32> = bytemuck::pod_collect_to_vec(&read[1]);
        Ok(ShardStats::from_rows(shard, classes, &rows))
    }

    /// [`Engine::shard_grad`] on device buffers, recorded into `encoder`: `request` and `shard` as
    /// for [`Engine::record_shard_stats`], and `merged` what [`merge_shards`](crate::merge_shards)
    /// gave, whose scales carry the reduction. The shard's slice of the gradient goes to
    /// [`DeviceOutput::grad`], or over the input in its dtype with `grad_in_place`.
    pub fn record_shard_grad(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        request: &DeviceRequest,
        shard: Shard,
        merged: &ShardedLoss,
    ) -> Result<DeviceOutput> {
        let pass = ShardPass::Grad {
            rows: merged.rows.clone(),
            scales: merged.scales,
        };
        self.gpu_engine()?
            .record(encoder, request, Some((shard, &pass)))
    }

    /// Blocks until the device is done, then returns a device-resident call's scalar loss; the
    /// first out-of-range device class target is an error, as [`Engine::check_targets`] says.
    pub fn read_loss(&self, out: &DeviceOutput) -> Result<f32> {
        let Some(loss) = &out.loss else {
            self.check_targets(out)?;
            return Err(Error::DeviceBuffer {
                what: "loss",
                reason: "there is no scalar (reduction none, or a vocabulary shard's pass, whose loss the merge gives); read the values buffer".into(),
            });
        };
        // The status and the loss in one read, so one wait.
        let bytes = self
            .gpu_engine()?
            .read_buffers(&[(&out.status, 0..12), (loss, 0..4)])?;
        target_status(out, &bytes[0])?;
        let loss = &bytes[1];
        Ok(f32::from_le_bytes([loss[0], loss[1], loss[2], loss[3]]))
    }

    /// Blocks until the device is done, then gives [`Error::TargetOutOfRange`] for the first row
    /// whose device class target was neither in [0, C) nor the ignore index (that row's loss and
    /// gradient are NaN).
    pub fn check_targets(&self, out: &DeviceOutput) -> Result<()> {
        target_status(out, &self.read_buffer(&out.status, 0..12)?)
    }

    /// Blocks until the device is done, then copies bytes `range` of `buffer` (with `COPY_SRC`
    /// usage) to the host: for reading a device-resident call's buffers.
    pub fn read_buffer(
        &self,
        buffer: &wgpu::Buffer,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>> {
        self.gpu_engine()?.read_buffer(buffer, range)
    }

    /// The wgpu device and queue of a GPU engine (the caller's, for [`Engine::from_wgpu`]), for
    /// making the buffers of device-resident requests; `None` on the CPU.
    pub fn wgpu(&self) -> Option<(&wgpu::Device, &wgpu::Queue)> {
        match &self.backend {
            Backend::Gpu(gpu) => Some(gpu.wgpu()),
            _ => None,
        }
    }

    fn gpu_engine(&self) -> Result<&GpuEngine> {
        match &self.backend {
            Backend::Gpu(gpu) => Ok(gpu),
            _ => Err(Error::DeviceBuffer {
                what: "engine",
                reason: format!(
                    "{} has no wgpu device; device-resident requests need a GPU engine",
                    self.info.adapter
                ),
            }),
        }
    }

    fn run(&self, checked: &Checked, grad: Option<&mut [f32]>) -> Result<Output> {
        match &self.backend {
            Backend::Gpu(gpu) => Ok(gpu.compute(checked, grad, false)?.0),
            Backend::Fast => {
                pool::spin()?;
                Ok(fast::compute(checked, grad))
            }
            Backend::Reference => Ok(reference::compute(checked, grad)),
        }
    }
}

/// A caller's gradient slice must hold the whole [B, C].
fn check_grad_len(checked: &Checked, grad: &[f32]) -> Result<()> {
    if grad.len() == checked.elements() {
        return Ok(());
    }
    Err(Error::LengthMismatch {
        what: "grad",
        shape: format!("[{}, {}]", checked.batch, checked.classes),
        expected: checked.elements(),
        actual: grad.len(),
    })
}

/// What a device-resident call's status words say: `Ok` when every device class target was
/// valid, else the first bad row and its target.
fn target_status(out: &DeviceOutput, bytes: &[u8]) -> Result<()> {
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    match word(0) {
        u32::MAX => Ok(()),
        row => Err(Error::TargetOutOfRange {
            row: row as usize,
            target: (u64::from(word(8)) << 32 | u64::from(word(4))) as i64,
            classes: out.classes,
            ignore_index: out.ignore_index,
        }),
    }
}
