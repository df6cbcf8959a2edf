//! The engine: one object that owns a backend and computes losses on it.

use std::sync::Arc;

use crate::cpu::{fast, reference};
use crate::error::{Error, Result};
use crate::gpu::{self, GpuEngine};
use crate::loss::{Checked, Request};
use crate::output::Output;

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
        if grad.len() != checked.elements() {
            return Err(Error::LengthMismatch {
                what: "grad",
                shape: format!("[{}, {}]", checked.batch, checked.classes),
                expected: checked.elements(),
                actual: grad.len(),
            });
        }
        self.run(&checked, Some(grad))
    }

    fn run(&self, checked: &Checked, grad: Option<&mut [f32]>) -> Result<Output> {
        match &self.backend {
            Backend::Gpu(gpu) => gpu.compute(checked, grad),
            Backend::Fast => Ok(fast::compute(checked, grad)),
            Backend::Reference => Ok(reference::compute(checked, grad)),
        }
    }
}
