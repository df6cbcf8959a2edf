//! Host side of the row kernels (`shaders/rows*.wgsl` with one loss family): the params, and the
//! pipeline chosen for a request and a shape.

use super::pipelines::Key;
use super::shaders::{Family, Module};
use crate::loss::{Checked, CheckedTarget, Input, InputKind, LossKind};

/// Mirrors `Params` in `rows.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub rows: u32,
    pub classes: u32,
    pub row_base: u32,
    pub _pad0: u32,
    pub label_smoothing: f32,
    pub z_loss: f32,
    pub softcap: f32,
    pub alpha: f32,
    pub beta: f32,
    pub _pad1: [u32; 3],
}

/// Rows per workgroup of `row_per_thread`, at most.
const ROWS_PER_GROUP: u32 = 64;
/// Up to this many classes, one invocation scans a whole row: a workgroup with barriers costs
/// about 9 µs on lavapipe, so small rows must not each get one.
const ROW_PER_THREAD_MAX_CLASSES: usize = 64;
/// On a CPU adapter, batches of at least this many rows get one invocation per row whatever their
/// length: an invocation there is a SIMD lane, and a lane streams its own row with no barrier.
/// Measured on lavapipe against a workgroup per row: 2.6× the throughput at 1024 × 32000, 1.6× at
/// 32 × 262144, 1.1× at 256 × 128256.
const ROW_PER_THREAD_MIN_ROWS_ON_CPU: usize = 8;
/// On a CPU adapter, rows per workgroup are about a quarter of the batch (8 to 64), so that both
/// cores get work even for small batches: 64 × 1000 takes 0.55 ms of kernel time at 16 rows per
/// workgroup against 0.94 ms at 64.
const CPU_GROUPS_PER_BATCH: usize = 4;
/// Quads (four elements) per invocation of `elementwise`: its workgroup size.
const ELEMENTWISE_GROUP: u32 = 64;

fn family(loss: LossKind) -> Family {
    match loss {
        LossKind::CrossEntropy => Family::SoftmaxXent,
        LossKind::KlDiv => Family::KlDiv,
        LossKind::Entropy => Family::Entropy,
        LossKind::BinaryCrossEntropy => Family::Bce,
    }
}

/// The override constants that specialize the kernels to a request.
fn request_constants(req: &Checked) -> Vec<(&'static str, u32)> {
    let kind = match req.options.input_kind {
        InputKind::Logits => 0,
        InputKind::Probs => 1,
        InputKind::LogProbs => 2,
    };
    vec![
        ("INPUT_KIND", kind),
        ("INPUT_F16", u32::from(matches!(req.input, Input::F16(_)))),
        ("HAS_WEIGHT", u32::from(req.weight.is_some())),
        ("HAS_POS_WEIGHT", u32::from(req.pos_weight.is_some())),
        ("SOFTCAP", u32::from(req.options.softcap.is_some())),
        (
            "CLASS_TARGETS",
            u32::from(matches!(req.target, CheckedTarget::Classes(_))),
        ),
        ("LOG_TARGET", u32::from(req.options.log_target)),
        ("GRAD", u32::from(req.options.grad)),
        ("GRAD_IN_PLACE", u32::from(req.options.grad_in_place)),
    ]
}

/// The row kernel chosen for a request: its pipeline key and how many rows a workgroup covers.
pub(crate) struct RowKernel {
    pub key: Key,
    rows_per_group: u32,
}

impl RowKernel {
    pub fn for_request(req: &Checked, subgroups: bool, cpu_adapter: bool) -> Self {
        let mut constants = request_constants(req);
        let family = family(req.loss);
        if req.classes <= ROW_PER_THREAD_MAX_CLASSES
            || (cpu_adapter && req.batch >= ROW_PER_THREAD_MIN_ROWS_ON_CPU)
        {
            let rows_per_group = if cpu_adapter {
                (req.batch / CPU_GROUPS_PER_BATCH)
                    .next_power_of_two()
                    .clamp(8, ROWS_PER_GROUP as usize) as u32
            } else {
                ROWS_PER_GROUP
            };
            constants.push(("ROWS_PER_GROUP", rows_per_group));
            return RowKernel {
                key: Key {
                    module: Module::Rows {
                        family,
                        subgroups: false,
                    },
                    entry: "row_per_thread",
                    constants,
                },
                rows_per_group,
            };
        }
        // Enough invocations that each scans a few dozen quads, up to 256.
        let quads = req.classes.div_ceil(4);
        let workgroup = (quads / 32).clamp(32, 256).next_power_of_two().min(256) as u32;
        constants.push(("WORKGROUP", workgroup));
        RowKernel {
            key: Key {
                module: Module::Rows { family, subgroups },
                entry: "row_per_workgroup",
                constants,
            },
            rows_per_group: 1,
        }
    }

    /// Workgroups needed for a chunk of `rows` rows.
    pub fn groups(&self, rows: u32) -> u32 {
        rows.div_ceil(self.rows_per_group)
    }
}

/// The `elementwise` kernel of BCE and KL, for the `none` reduction.
pub(crate) fn elementwise_key(req: &Checked) -> Key {
    Key {
        module: Module::Rows {
            family: family(req.loss),
            subgroups: false,
        },
        entry: "elementwise",
        constants: [
            request_constants(req),
            vec![("ELEMENTWISE_GROUP", ELEMENTWISE_GROUP)],
        ]
        .concat(),
    }
}

/// Workgroups of `elementwise` for a chunk of `elements` values.
pub(crate) fn elementwise_groups(elements: u64) -> u32 {
    elements.div_ceil(4 * u64::from(ELEMENTWISE_GROUP)) as u32
}
