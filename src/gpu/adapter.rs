//! Finding adapters and choosing one.

use std::fmt::Write as _;

/// The `WGPU_ADAPTER_NAME` variable: when set, only adapters whose name contains it (ignoring
/// case) are considered.
pub const ADAPTER_NAME_VAR: &str = "WGPU_ADAPTER_NAME";

/// A wgpu instance over the backends that `WGPU_BACKEND` names, or all of them.
pub(crate) fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter the instance offers that passes `WGPU_ADAPTER_NAME`, best first: discrete GPUs,
/// then integrated, then virtual, then CPU (software) adapters; within a type, Vulkan, Metal and
/// DX12 before GL.
pub(crate) fn ranked(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let wanted = std::env::var(ADAPTER_NAME_VAR)
        .ok()
        .map(|n| n.to_lowercase());
    let mut adapters: Vec<wgpu::Adapter> =
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
            .into_iter()
            .filter(|a| {
                wanted
                    .as_ref()
                    .is_none_or(|w| a.get_info().name.to_lowercase().contains(w))
            })
            .collect();
    adapters.sort_by_key(|a| rank(&a.get_info()));
    adapters
}

fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    };
    (device, backend)
}

/// What `xent adapters` reports about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// The adapter's name, such as `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Vulkan, Gl, Metal, Dx12.
    pub backend: String,
    /// DiscreteGpu, IntegratedGpu, Cpu, ...
    pub device_type: String,
    /// The driver and its version.
    pub driver: String,
    /// The limits xent depends on, as `name value` pairs.
    pub limits: Vec<(&'static str, u64)>,
    /// The features xent can use, among those the adapter has.
    pub features: Vec<&'static str>,
}

impl AdapterSummary {
    pub(crate) fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        let known = [
            (wgpu::Features::SUBGROUP, "SUBGROUP"),
            (wgpu::Features::SHADER_F16, "SHADER_F16"),
            (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
            (
                wgpu::Features::MAPPABLE_PRIMARY_BUFFERS,
                "MAPPABLE_PRIMARY_BUFFERS",
            ),
        ];
        let mut driver = info.driver.clone();
        if !info.driver_info.is_empty() {
            let _ = write!(driver, " ({})", info.driver_info);
        }
        AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver,
            limits: vec![
                ("max_buffer_size", limits.max_buffer_size),
                (
                    "max_storage_buffer_binding_size",
                    limits.max_storage_buffer_binding_size,
                ),
                (
                    "max_compute_workgroups_per_dimension",
                    u64::from(limits.max_compute_workgroups_per_dimension),
                ),
                (
                    "max_compute_invocations_per_workgroup",
                    u64::from(limits.max_compute_invocations_per_workgroup),
                ),
                (
                    "max_compute_workgroup_storage_size",
                    u64::from(limits.max_compute_workgroup_storage_size),
                ),
            ],
            features: known
                .iter()
                .filter(|(f, _)| features.contains(*f))
                .map(|&(_, n)| n)
                .collect(),
        }
    }
}

/// Every adapter wgpu finds (after `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`), best first.
pub fn adapters() -> Vec<AdapterSummary> {
    ranked(&instance()).iter().map(AdapterSummary::of).collect()
}
