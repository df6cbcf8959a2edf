//! Host side of the row kernels (`shaders/rows*.wgsl` with one loss family): the params, the
//! override constants, and the pipelines of a request in the variant `variant.rs` chose.

use super::pipelines::Key;
use super::shaders::{Family, Module, dtype_code, input_kind_code};
use super::spec::Spec;
use super::variant::{ROWS_PER_GROUP, Variant, segment_quads};
use crate::request::{LossKind, Scales, TargetKind};

/// Mirrors `Params` in `rows_params.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub rows: u32,
    pub classes: u32,
    pub row_base: u32,
    pub segments: u32,
    pub label_smoothing: f32,
    pub z_loss: f32,
    pub softcap: f32,
    pub main_scale: f32,
    pub z_scale: f32,
    pub segment_quads: u32,
    pub total_classes: u32,
    pub _pad: u32,
}

impl Params {
    /// The params of the row kernels on chunk `rows` of a request, with `segments` per row and
    /// the kernels' `scales`.
    pub fn chunk(req: &Spec, rows: &std::ops::Range<usize>, segments: u32, scales: Scales) -> Self {
        let o = &req.options;
        Params {
            rows: rows.len() as u32,
            classes: req.classes as u32,
            row_base: rows.start as u32,
            segments,
            segment_quads: segment_quads(req.classes, segments),
            label_smoothing: o.label_smoothing,
            z_loss: o.z_loss,
            softcap: o.softcap.unwrap_or(1.0),
            main_scale: scales.main,
            z_scale: scales.z_loss,
            total_classes: req.total_classes.unwrap_or(req.classes) as u32,
            ..Default::default()
        }
    }
}

/// Invocations per workgroup of `elementwise`, one quad (four elements) each.
const ELEMENTWISE_GROUP: u32 = 64;

fn family(loss: LossKind) -> Family {
    match loss {
        LossKind::CrossEntropy => Family::CrossEntropy,
        LossKind::KlDiv => Family::KlDiv,
        LossKind::Entropy => Family::Entropy,
        LossKind::BinaryCrossEntropy => Family::Bce,
    }
}

/// Whether the row pass keeps each row's statistics for the `elementwise` pass: KL's `none`.
pub(crate) fn keeps_stats(req: &Spec) -> bool {
    req.loss == LossKind::KlDiv && req.options.reduction == crate::request::Reduction::None
}

/// The override constants that specialize the kernels to a request.
fn request_constants(req: &Spec) -> Vec<(&'static str, u32)> {
    vec![
        ("INPUT_KIND", input_kind_code(req.options.input_kind)),
        ("INPUT_DTYPE", dtype_code(req.dtype)),
        ("HAS_WEIGHT", u32::from(req.weight)),
        ("HAS_POS_WEIGHT", u32::from(req.pos_weight)),
        ("SOFTCAP", u32::from(req.options.softcap.is_some())),
        (
            "CLASS_TARGETS",
            u32::from(req.target == TargetKind::Classes),
        ),
        ("LOG_TARGET", u32::from(req.options.log_target)),
        ("GRAD", u32::from(req.options.grad)),
        ("GRAD_IN_PLACE", u32::from(req.options.grad_in_place)),
        ("DEVICE_SCALES", u32::from(req.device_scales)),
        ("GRAD_PACKED", u32::from(req.grad_packed)),
        ("SHARD", u32::from(req.total_classes.is_some())),
        ("KEEP_STATS", u32::from(keeps_stats(req))),
    ]
}

/// The row kernel of a request: its pipeline key and how many rows a workgroup covers, and for
/// split rows the segments per row and the merge and gradient passes that follow.
pub(crate) struct RowKernel {
    pub key: Key,
    rows_per_group: u32,
    pub split: Option<Split>,
}

/// The passes after `segment_stats` when rows are split.
pub(crate) struct Split {
    pub segments: u32,
    pub merge: Key,
    /// The gradient pass, when the request has one.
    pub grad: Option<Key>,
}

impl Split {
    /// Workgroups of the merge pass for a chunk of `rows` rows.
    pub fn merge_groups(rows: u32) -> u32 {
        rows.div_ceil(ROWS_PER_GROUP)
    }
}

impl RowKernel {
    pub fn new(req: &Spec, subgroups: bool, variant: Variant) -> Self {
        let mut constants = request_constants(req);
        let family = family(req.loss);
        match variant {
            Variant::RowPerInvocation(rows_per_group) => {
                constants.push(("ROWS_PER_GROUP", rows_per_group));
                RowKernel {
                    key: Key {
                        module: Module::Rows {
                            family,
                            subgroups: false,
                        },
                        entry: "row_per_invocation",
                        constants,
                    },
                    rows_per_group,
                    split: None,
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
                    split: None,
                }
            }
            Variant::SplitRow {
                workgroup,
                segments,
            } => {
                let plain = Module::Rows {
                    family,
                    subgroups: false,
                };
                let with = |entry, module, extra: (&'static str, u32)| Key {
                    module,
                    entry,
                    constants: [constants.clone(), vec![extra]].concat(),
                };
                RowKernel {
                    key: with(
                        "segment_stats",
                        Module::Rows { family, subgroups },
                        ("WORKGROUP", workgroup),
                    ),
                    rows_per_group: 1,
                    split: Some(Split {
                        segments,
                        merge: with("merge_segments", plain, ("ROWS_PER_GROUP", ROWS_PER_GROUP)),
                        grad: req
                            .options
                            .grad
                            .then(|| with("segment_grad", plain, ("WORKGROUP", workgroup))),
                    }),
                }
            }
        }
    }

    /// Segments per row: 1 unless rows are split.
    pub fn segments(&self) -> u32 {
        self.split.as_ref().map_or(1, |s| s.segments)
    }

    /// Workgroups of the first pass for a chunk of `rows` rows.
    pub fn groups(&self, rows: u32) -> u32 {
        (rows * self.segments()).div_ceil(self.rows_per_group)
    }
}

/// The `elementwise` kernel of BCE and KL, for the `none` reduction.
pub(crate) fn elementwise_key(req: &Spec) -> Key {
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

/// The `stitch_edges` kernel of packed gradients with an odd C; its workgroups are the merge
/// pass's.
pub(crate) fn stitch_key(req: &Spec) -> Key {
    Key {
        module: Module::Rows {
            family: family(req.loss),
            subgroups: false,
        },
        entry: "stitch_edges",
        constants: [
            request_constants(req),
            vec![("ROWS_PER_GROUP", ROWS_PER_GROUP)],
        ]
        .concat(),
    }
}

/// Workgroups of `elementwise` for a chunk of `elements` values.
pub(crate) fn elementwise_groups(elements: u64) -> u32 {
    elements.div_ceil(4 * u64::from(ELEMENTWISE_GROUP)) as u32
}
