//! Host side of `shaders/softmax_xent*.wgsl`: choosing the variant and recording its dispatch.

use super::pipelines::Key;
use super::shaders::Module;

/// Mirrors `Params` in `softmax_xent.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub rows: u32,
    pub classes: u32,
    pub row_base: u32,
    pub _pad: u32,
}

/// Rows per workgroup of `row_per_thread`.
const ROWS_PER_GROUP: u32 = 64;
/// Up to this many classes, one invocation scans a whole row: a workgroup with barriers costs
/// about 9 µs on lavapipe, so small rows must not each get one.
const ROW_PER_THREAD_MAX_CLASSES: usize = 64;

/// The kernel chosen for a shape, as a pipeline key and the workgroups that cover `rows`.
pub(crate) struct Variant {
    pub key: Key,
    rows_per_group: u32,
}

impl Variant {
    pub fn for_shape(classes: usize, subgroups: bool) -> Self {
        if classes <= ROW_PER_THREAD_MAX_CLASSES {
            return Variant {
                key: Key {
                    module: Module::SoftmaxXentWorkgroup,
                    entry: "row_per_thread",
                    constants: vec![("ROWS_PER_GROUP", ROWS_PER_GROUP)],
                },
                rows_per_group: ROWS_PER_GROUP,
            };
        }
        // Enough invocations that each scans a few dozen vec4 words, up to 256.
        let words = classes.div_ceil(4);
        let workgroup = (words / 32).clamp(32, 256).next_power_of_two().min(256) as u32;
        Variant {
            key: Key {
                module: if subgroups {
                    Module::SoftmaxXentSubgroup
                } else {
                    Module::SoftmaxXentWorkgroup
                },
                entry: "row_per_workgroup",
                constants: vec![("WORKGROUP", workgroup)],
            },
            rows_per_group: 1,
        }
    }

    /// Workgroups needed for a chunk of `rows` rows.
    pub fn groups(&self, rows: u32) -> u32 {
        rows.div_ceil(self.rows_per_group)
    }
}
