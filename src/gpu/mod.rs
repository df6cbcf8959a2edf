//! The wgpu backend: the device, its pipelines and reused buffers, and the passes of one loss
//! call, planned once (`plan.rs`) and recorded for a host call (`host.rs`) or on the caller's
//! buffers (`resident.rs`).

pub(crate) mod adapter;
mod bindings;
mod buffer_pool;
mod chunk;
mod context;
mod gemm;
mod host;
mod linear;
mod linear_record;
mod params;
mod pipelines;
mod plan;
mod probe;
mod readback;
mod record;
mod resident;
mod rows;
mod shaders;
mod spec;
mod staging;
mod targets;
mod timing;
mod tree_sum;
mod tune;
mod variant;
mod workspace;

use std::sync::{Mutex, PoisonError};

pub use adapter::{ADAPTER_NAME_VAR, AdapterSummary, adapters};
pub use shaders::{ShaderModule, shader_modules};

use crate::error::{Error, Result};
use context::Context;
use pipelines::{Key, Pipelines};
use workspace::Workspace;

/// A device with xent's pipelines and buffers on it.
pub(crate) struct GpuEngine {
    ctx: Context,
    pipelines: Pipelines,
    workspace: Mutex<Workspace>,
    tuner: tune::Tuner,
    /// The products' tiles the autotune has chosen.
    tiles: gemm::tune::TileTable,
}

/// Bytes of a buffer bound where a kernel reads nothing: at least one element of every binding's
/// type (24 bytes for the row statistics).
const UNUSED_BYTES: u64 = 32;

impl GpuEngine {
    pub fn open(adapter: &wgpu::Adapter) -> Result<Self> {
        Ok(Self::with_context(Context::open(adapter)?))
    }

    pub fn borrowed(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        Self::with_context(Context::borrowed(device, queue))
    }

    fn with_context(ctx: Context) -> Self {
        GpuEngine {
            ctx,
            pipelines: Pipelines::default(),
            workspace: Mutex::new(Workspace::new()),
            tuner: tune::Tuner::default(),
            tiles: gemm::tune::TileTable::default(),
        }
    }

    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.ctx.info
    }

    pub fn wgpu(&self) -> (&wgpu::Device, &wgpu::Queue) {
        (&self.ctx.device, &self.ctx.queue)
    }

    /// Whether the adapter runs on the CPU (lavapipe, llvmpipe, WARP).
    pub fn cpu_adapter(&self) -> bool {
        self.ctx.cpu_adapter
    }

    /// The same adapter opened afresh, with the same autotune setting: what a lost device is
    /// replaced with. A device of the caller's is the caller's to replace.
    pub fn rebuild(&self) -> Result<Self> {
        if !self.ctx.owned {
            return Err(Error::DeviceLost(
                "the engine is on a device of the caller's; request a new device and use Engine::from_wgpu".into(),
            ));
        }
        let info = &self.ctx.info;
        let adapter = adapter::ranked(&adapter::instance())
            .into_iter()
            .find(|a| a.get_info() == *info)
            .ok_or_else(|| Error::NoAdapter(format!("{} is gone", info.name)))?;
        let engine = Self::open(&adapter)?;
        engine.set_autotune(self.tuner.is_on());
        Ok(engine)
    }

    /// Bytes of device memory the engine keeps between calls, in its reused buffers.
    pub fn pooled_bytes(&self) -> u64 {
        let ws = self.workspace();
        ws.slots().map(buffer_pool::Slot::bytes).sum()
    }

    /// The host calls' buffers, held for one call (which serializes host calls, as the device
    /// would).
    fn workspace(&self) -> std::sync::MutexGuard<'_, Workspace> {
        self.workspace
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Turns the autotune on or off (see `tune.rs`).
    pub fn set_autotune(&self, on: bool) {
        self.tuner.set(on);
    }

    /// Whether the autotune still has trials to run for some class of shapes.
    pub fn autotuning(&self) -> bool {
        self.tuner.trying()
    }

    /// The autotune's state, a line per class of shapes.
    pub fn autotuned(&self) -> Vec<String> {
        let mut lines = self.tuner.report();
        lines.extend(self.tiles.report());
        lines
    }

    /// A buffer that a kernel binds whole, of `bytes` for `rows` rows, must fit one storage
    /// binding, and the rows a u32 index.
    fn fits_binding(&self, what: &str, rows: usize, bytes: u64) -> Result<()> {
        let binding = self.ctx.limits.max_storage_buffer_binding_size;
        if bytes <= binding && rows <= u32::MAX as usize {
            return Ok(());
        }
        Err(Error::TooLarge {
            what: "batch",
            reason: format!(
                "{rows} rows need {bytes} bytes of {what}, over the {binding}-byte storage binding"
            ),
        })
    }

    fn pipeline(&self, key: &Key) -> std::sync::Arc<pipelines::Pipeline> {
        self.pipelines.get(&self.ctx.device, key)
    }
}

#[cfg(test)]
mod faults {
    use super::*;
    use crate::request::Request;

    /// A fresh engine on every adapter; with `XENT_REQUIRE_GPU=1`, none is a failure.
    pub(super) fn engines() -> Vec<GpuEngine> {
        let engines: Vec<GpuEngine> = adapter::ranked(&adapter::instance())
            .iter()
            .map(|a| GpuEngine::open(a).expect("the adapter opens"))
            .collect();
        assert!(
            !(engines.is_empty() && std::env::var("XENT_REQUIRE_GPU").is_ok_and(|v| v == "1")),
            "XENT_REQUIRE_GPU=1 but wgpu found no adapter"
        );
        engines
    }

    /// The engine still gives the reference's loss on a fresh batch.
    fn still_works(engine: &GpuEngine) {
        use rand::Rng;
        let mut rng = rand::rng();
        let x: Vec<f32> = (0..6 * 50).map(|_| rng.random_range(-8.0..8.0)).collect();
        let t: Vec<i64> = (0..6).map(|_| rng.random_range(0..50)).collect();
        let request = Request::cross_entropy(&x[..], [6, 50], &t[..]);
        let checked = request.check().unwrap();
        let (out, _) = engine.compute(&checked, None, false).unwrap();
        let expected = crate::cpu::reference::compute(&checked, None);
        let (a, e) = (out.loss.scalar().unwrap(), expected.loss.scalar().unwrap());
        assert!((a - e).abs() <= 1e-5 * e.abs(), "{a} against {e}");
    }

    #[test]
    fn a_buffer_over_the_limits_is_an_err_and_the_engine_still_works() {
        for engine in engines() {
            let limit = engine.ctx.limits.max_buffer_size;
            let err = engine
                .ctx
                .scoped("an oversized allocation", || {
                    let buffer = engine.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("xent test: over the limit"),
                        size: limit + 256,
                        usage: wgpu::BufferUsages::STORAGE,
                        mapped_at_creation: false,
                    });
                    drop(buffer);
                    Ok(())
                })
                .unwrap_err();
            eprintln!("{}: {err}", engine.info().name);
            assert!(
                matches!(
                    err,
                    Error::OutOfMemory { .. }
                        | Error::Wgpu {
                            during: "an oversized allocation",
                            ..
                        }
                ),
                "{err:?}"
            );
            assert_eq!(err.to_string().lines().count(), 1);
            still_works(&engine);
        }
    }

    #[test]
    fn a_lost_device_is_an_err_and_the_engine_can_be_rebuilt() {
        for engine in engines() {
            still_works(&engine);
            engine.ctx.device.destroy();
            let x = [0.5_f32, -1.0, 2.0, 0.25];
            let request = Request::cross_entropy(&x[..], [2, 2], &[1_i64, 0][..]);
            let err = engine
                .compute(&request.check().unwrap(), None, false)
                .unwrap_err();
            eprintln!("{} after destroy: {err}", engine.info().name);
            assert!(
                matches!(
                    err,
                    Error::DeviceLost(_) | Error::Wgpu { .. } | Error::Map(_) | Error::Poll(_)
                ),
                "{err:?}"
            );
            assert_eq!(err.to_string().lines().count(), 1);
            let rebuilt = engine.rebuild().unwrap();
            assert_eq!(rebuilt.info(), engine.info());
            still_works(&rebuilt);
        }
    }

    #[test]
    fn a_callers_device_is_not_reopened_by_xent() {
        for engine in engines() {
            let borrowed = GpuEngine::borrowed(engine.ctx.device.clone(), engine.ctx.queue.clone());
            let err = borrowed
                .rebuild()
                .err()
                .expect("a borrowed device is refused");
            assert!(matches!(err, Error::DeviceLost(_)), "{err:?}");
        }
    }
}
