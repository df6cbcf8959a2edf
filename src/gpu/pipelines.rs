//! Compute pipelines, built once per engine and kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::bindings::layout_entries;
use super::shaders::Module;

/// What identifies a pipeline: the module, the entry point, and its override constants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub module: Module,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, u32)>,
}

/// A built pipeline and the layout its bind groups must follow.
pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// The engine's pipeline cache. Shader modules are compiled on first use.
#[derive(Default)]
pub(crate) struct Pipelines {
    modules: Mutex<HashMap<Module, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<Key, Arc<Pipeline>>>,
}

impl Pipelines {
    pub fn get(&self, device: &wgpu::Device, key: &Key) -> Arc<Pipeline> {
        let mut pipelines = self
            .pipelines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = pipelines.get(key) {
            return Arc::clone(p);
        }
        let module = self.module(device, key.module);
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(key.entry),
            entries: &layout_entries(key.module.bindings()),
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(key.entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let constants: Vec<(&str, f64)> = key
            .constants
            .iter()
            .map(|&(name, v)| (name, f64::from(v)))
            .collect();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key.entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        let built = Arc::new(Pipeline { pipeline, layout });
        pipelines.insert(key.clone(), Arc::clone(&built));
        built
    }

    fn module(&self, device: &wgpu::Device, module: Module) -> Arc<wgpu::ShaderModule> {
        let mut modules = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(modules.entry(module).or_insert_with(|| {
            let shader = module.shader();
            Arc::new(device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&shader.name),
                source: wgpu::ShaderSource::Wgsl(shader.source.into()),
            }))
        }))
    }
}
