//! The engine: one object that owns a backend and computes losses on it. Its methods are split by
//! what they serve: host calls (`compute`), device-resident calls (`resident`), and the
//! benchmark's instruments (`instrument`); each hands a checked request to the [`Backend`].

mod backend;
mod compute;
mod instrument;
mod linear;
mod resident;

use std::sync::Arc;

use backend::{Backend, Cpu};

use crate::error::{Error, Result};
use crate::gpu::{self, GpuEngine};

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
    backend: Arc<dyn Backend>,
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
            .find(|e| e.backend.gpu().is_some_and(|gpu| !gpu.cpu_adapter()))
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
            Cpu::Fast,
            format!("cpu fast (SIMD, {} threads)", rayon::current_num_threads()),
        )
    }

    /// The float64 CPU reference, which every other backend is checked against.
    pub fn reference() -> Self {
        Self::on_cpu(Cpu::Reference, "cpu reference (float64)".into())
    }

    fn on_cpu(backend: Cpu, adapter: String) -> Self {
        Engine {
            backend: Arc::new(backend),
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
            backend: Arc::new(engine),
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
        Ok(Engine {
            backend: self.backend.rebuild()?,
            info: self.info.clone(),
        })
    }

    /// The device this engine computes on.
    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }
}
