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
/// On a CPU adapter, rows longer than 64 classes go 8 to a workgroup: one SIMD batch of lanes
/// each, which keeps the rows being streamed at once few. Measured on lavapipe (kernel time) at
/// 8 against 64 rows per workgroup: 256 × 128256 131–139 against 255–273 ms, 1024 × 32000 142
/// against 159 ms, 64 × 1000 0.52 against 0.94 ms. Shorter rows keep 64 (8192 × 10: 1.14 ms
/// against 1.32 at 8).
const LONG_ROWS_PER_GROUP_ON_CPU: u32 = 8;
/// On a CPU adapter, a row that takes a workgroup (a row too long for one invocation, or a batch
/// under 8 rows) takes 8 invocations: one SIMD batch of lanes that read consecutive quads, with
/// the row's statistics merged once at the end. Measured on lavapipe (kernel time against the
/// probe, forward): 256 × 128256 1.10× at 8 against 2.03× at 256 and 1.52× at 16; 32 × 262144
/// 1.11× against 1.82× and 1.28×.
const ROW_WORKGROUP_ON_CPU: usize = 8;
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

/// The shape of a row kernel: an invocation per row, this many rows per workgroup; or a workgroup
/// of this many invocations per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Variant {
    RowPerThread(u32),
    RowPerWorkgroup(u32),
}

/// On a CPU adapter, the most quads one invocation scans in one pass over a row. llvmpipe stops
/// the loops of one invocation after about 65 000 iterations in all (found at 8 × 262144: the
/// gradient pass then wrote one quad per row; at 16 × 131072, all but the last two quads of each
/// row; at 8 × 130816, with 65 408 iterations, a few quads short). A row may be scanned twice
/// (with the gradient), so twice this stays well within it: 16 × 128256 (64 128 iterations) was
/// still whole.
const CPU_MAX_QUADS_PER_INVOCATION: usize = 30_000;

/// Whether one invocation per row of `classes` stays within what the adapter runs.
fn lane_per_row_fits(classes: usize, cpu_adapter: bool) -> bool {
    !cpu_adapter || classes.div_ceil(4) <= CPU_MAX_QUADS_PER_INVOCATION
}

/// Whether a workgroup of `size` per row stays within what the adapter runs.
fn workgroup_fits(classes: usize, size: u32, cpu_adapter: bool) -> bool {
    !cpu_adapter || classes.div_ceil(4).div_ceil(size as usize) <= CPU_MAX_QUADS_PER_INVOCATION
}

/// Workgroup sizes an autotune tries for a workgroup per row.
const TUNED_WORKGROUPS: [u32; 3] = [64, 128, 256];
/// Smaller workgroups an autotune also tries for a workgroup per row, on CPU adapters.
const TUNED_WORKGROUPS_ON_CPU: [u32; 2] = [8, 16];
/// Rows per workgroup an autotune tries for a row per invocation, on CPU adapters.
const TUNED_ROWS_PER_GROUP: [u32; 4] = [8, 16, 32, 64];

impl Variant {
    /// The rule, with no measurement: a row per invocation for short rows, and on CPU adapters
    /// for batches of 8 or more; otherwise a workgroup per row: on CPU adapters of 8 invocations
    /// (more where a row would take one past the loop limit), elsewhere of enough invocations
    /// that each scans a few dozen quads, up to 256.
    pub fn rule(req: &Checked, cpu_adapter: bool) -> Self {
        if req.classes <= ROW_PER_THREAD_MAX_CLASSES
            || (cpu_adapter
                && req.batch >= ROW_PER_THREAD_MIN_ROWS_ON_CPU
                && lane_per_row_fits(req.classes, cpu_adapter))
        {
            return Variant::RowPerThread(
                if cpu_adapter && req.classes > ROW_PER_THREAD_MAX_CLASSES {
                    LONG_ROWS_PER_GROUP_ON_CPU
                } else {
                    ROWS_PER_GROUP
                },
            );
        }
        let quads = req.classes.div_ceil(4);
        if cpu_adapter {
            // At the largest chunk (32 MiB), 128 invocations scan 16 384 quads each, within the
            // limit.
            let fitting = quads.div_ceil(CPU_MAX_QUADS_PER_INVOCATION);
            return Variant::RowPerWorkgroup(
                fitting
                    .max(ROW_WORKGROUP_ON_CPU)
                    .next_power_of_two()
                    .min(256) as u32,
            );
        }
        Variant::RowPerWorkgroup((quads / 32).clamp(32, 256).next_power_of_two().min(256) as u32)
    }

    /// What an autotune tries for a request, the rule's choice first: for rows longer than 64
    /// classes, a workgroup per row at each tuned size, and on a CPU adapter (batches of 8 or
    /// more) a row per invocation at each tuned group size. Short rows have one choice.
    pub fn candidates(req: &Checked, cpu_adapter: bool) -> Vec<Self> {
        let mut all = vec![Self::rule(req, cpu_adapter)];
        if req.classes > ROW_PER_THREAD_MAX_CLASSES {
            let cpu_sizes = if cpu_adapter {
                &TUNED_WORKGROUPS_ON_CPU[..]
            } else {
                &[]
            };
            all.extend(
                cpu_sizes
                    .iter()
                    .chain(&TUNED_WORKGROUPS)
                    .filter(|&&size| workgroup_fits(req.classes, size, cpu_adapter))
                    .map(|&size| Variant::RowPerWorkgroup(size)),
            );
            if cpu_adapter
                && req.batch >= ROW_PER_THREAD_MIN_ROWS_ON_CPU
                && lane_per_row_fits(req.classes, cpu_adapter)
            {
                all.extend(TUNED_ROWS_PER_GROUP.map(Variant::RowPerThread));
            }
        }
        let mut seen = Vec::new();
        all.retain(|v| {
            let new = !seen.contains(v);
            seen.push(*v);
            new
        });
        all
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Variant::RowPerThread(rows) => write!(f, "a row per invocation, {rows} per workgroup"),
            Variant::RowPerWorkgroup(size) => write!(f, "a workgroup of {size} per row"),
        }
    }
}

/// The row kernel of a request: its pipeline key and how many rows a workgroup covers.
pub(crate) struct RowKernel {
    pub key: Key,
    rows_per_group: u32,
}

impl RowKernel {
    pub fn new(req: &Checked, subgroups: bool, variant: Variant) -> Self {
        let mut constants = request_constants(req);
        let family = family(req.loss);
        match variant {
            Variant::RowPerThread(rows_per_group) => {
                constants.push(("ROWS_PER_GROUP", rows_per_group));
                RowKernel {
                    key: Key {
                        module: Module::Rows {
                            family,
                            subgroups: false,
                        },
                        entry: "row_per_thread",
                        constants,
                    },
                    rows_per_group,
                }
            }
            Variant::RowPerWorkgroup(workgroup) => {
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
