//! The device and queue, and the capture of every wgpu error into a `Result`.

use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result, one_line};

/// Errors that reached no error scope, kept until the next call collects them. Without a handler,
/// wgpu would panic on them.
type Uncaptured = Arc<Mutex<Option<wgpu::Error>>>;

/// A device and its queue, with what xent needs to know about them.
pub(crate) struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub subgroups: bool,
    /// Whether the adapter is a CPU (a software rasterizer such as lavapipe), whose invocations
    /// are SIMD lanes.
    pub cpu_adapter: bool,
    /// Whether xent opened the device (and can open it again), rather than the caller.
    pub owned: bool,
    uncaptured: Uncaptured,
    lost: Arc<Mutex<Option<String>>>,
}

impl Context {
    /// Opens a device on `adapter` with the adapter's own limits (the defaults cap buffers at
    /// 256 MiB), and the subgroup and timestamp features where the adapter has them.
    pub fn open(adapter: &wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let features =
            adapter.features() & (wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY);
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("xent"),
            required_features: features,
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|source| {
                Error::RequestDevice {
                    adapter: info.name.clone(),
                    source,
                }
            })?;
        let uncaptured: Uncaptured = Arc::default();
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e| {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert(e);
        }));
        let lost = Arc::<Mutex<Option<String>>>::default();
        let lost_sink = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            *lost_sink.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(format!("{reason:?}: {message}"));
        });
        let mut ctx = Self::with_handlers(device, queue, info, uncaptured, lost);
        ctx.owned = true;
        Ok(ctx)
    }

    /// Wraps a device the caller owns. Its uncaptured-error handler and device-lost callback stay
    /// the caller's; xent relies on error scopes alone.
    pub fn borrowed(device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let info = device.adapter_info();
        Self::with_handlers(device, queue, info, Arc::default(), Arc::default())
    }

    fn with_handlers(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        uncaptured: Uncaptured,
        lost: Arc<Mutex<Option<String>>>,
    ) -> Self {
        let limits = device.limits();
        let subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        let cpu_adapter = info.device_type == wgpu::DeviceType::Cpu;
        Context {
            device,
            queue,
            info,
            limits,
            subgroups,
            cpu_adapter,
            owned: false,
            uncaptured,
            lost,
        }
    }

    /// Runs `work` inside validation, out-of-memory and internal error scopes, and turns whatever
    /// they caught (or the device's loss) into an `Err`.
    pub fn scoped<T>(&self, during: &'static str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.check_lost()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let result = work();
        let caught = [internal.pop(), validation.pop(), oom.pop()]
            .into_iter()
            .find_map(pollster::block_on);
        self.check_lost()?;
        if let Some(e) = caught.or_else(|| self.take_uncaptured()) {
            return Err(match e {
                wgpu::Error::OutOfMemory { .. } => Error::OutOfMemory { during },
                other => Error::Wgpu {
                    during,
                    message: one_line(&other.to_string()),
                },
            });
        }
        result
    }

    fn take_uncaptured(&self) -> Option<wgpu::Error> {
        self.uncaptured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn check_lost(&self) -> Result<()> {
        match &*self.lost.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(reason) => Err(Error::DeviceLost(reason.clone())),
            None => Ok(()),
        }
    }

    /// Blocks until everything submitted so far has finished.
    pub fn wait(&self) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely())?;
        Ok(())
    }

    /// Maps `buffer` in `mode` and waits for the mapping.
    pub fn map(&self, buffer: &wgpu::Buffer, mode: wgpu::MapMode) -> Result<()> {
        self.map_after(buffer, mode, None)
    }

    /// Maps every buffer of `buffers` in its mode, in one wait for everything submitted.
    pub fn map_all(&self, buffers: &[(&wgpu::Buffer, wgpu::MapMode)]) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        for &(buffer, mode) in buffers {
            let tx = tx.clone();
            buffer.map_async(mode, .., move |r| {
                let _ = tx.send(r);
            });
        }
        drop(tx);
        self.wait()?;
        for _ in buffers {
            rx.recv()
                .map_err(|_| Error::DeviceLost("a buffer mapping was dropped".into()))??;
        }
        Ok(())
    }

    /// Maps `buffer` in `mode`, waiting only for submission `after` (the last that uses it)
    /// rather than for everything submitted since; `None` waits for everything.
    pub fn map_after(
        &self,
        buffer: &wgpu::Buffer,
        mode: wgpu::MapMode,
        after: Option<wgpu::SubmissionIndex>,
    ) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.map_async(mode, .., move |r| {
            let _ = tx.send(r);
        });
        self.device.poll(wgpu::PollType::Wait {
            submission_index: after,
            timeout: None,
        })?;
        // Should anything later still hold the buffer, its mapping waits for all the work.
        let mapped = match rx.try_recv() {
            Ok(mapped) => mapped,
            Err(_) => {
                self.wait()?;
                rx.recv()
                    .map_err(|_| Error::DeviceLost("a buffer mapping was dropped".into()))?
            }
        };
        mapped?;
        Ok(())
    }
}
