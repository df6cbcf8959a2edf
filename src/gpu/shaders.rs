//! The WGSL sources, and the modules built from them. Every module begins with a prelude written
//! here: the constants it shares with the host, from their Rust definitions, and its binding
//! declarations, from its table in `bindings.rs`; then its files, in order.

use super::bindings::{
    Binding, GemmBindings, ProbeBindings, ReduceBindings, RowBindings, TargetBindings, declarations,
};
use super::gemm::{Kind, Tile};
use crate::request::{BAD, Dtype, ELSEWHERE, IGNORED, InputKind, ONE_AT, WORDS};

const ROWS_PARAMS: &str = include_str!("../../shaders/rows_params.wgsl");
const ROWS_LOAD: &str = include_str!("../../shaders/rows_load.wgsl");
const ROWS_STATS: &str = include_str!("../../shaders/rows_stats.wgsl");
const ROWS_GRAD: &str = include_str!("../../shaders/rows_grad.wgsl");
const ROWS: &str = include_str!("../../shaders/rows.wgsl");
const ROWS_WORKGROUP: &str = include_str!("../../shaders/rows_workgroup.wgsl");
const ROWS_SUBGROUP: &str = include_str!("../../shaders/rows_subgroup.wgsl");
const CROSS_ENTROPY: &str = include_str!("../../shaders/cross_entropy.wgsl");
const KL_DIV: &str = include_str!("../../shaders/kl_div.wgsl");
const ENTROPY: &str = include_str!("../../shaders/entropy.wgsl");
const BCE: &str = include_str!("../../shaders/bce.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");
const PROBE: &str = include_str!("../../shaders/probe.wgsl");
const TREE_SUM: &str = include_str!("../../shaders/tree_sum.wgsl");
const EXACT_SUM: &str = include_str!("../../shaders/exact_sum.wgsl");
const TARGETS: &str = include_str!("../../shaders/targets.wgsl");
const GEMM: &str = include_str!("../../shaders/gemm.wgsl");
const GEMM_LANES: &str = include_str!("../../shaders/gemm_lanes.wgsl");
const GEMM_SUBGROUP: &str = include_str!("../../shaders/gemm_subgroup.wgsl");

/// Invocations of a workgroup of `encode_targets` and `device_scales` (targets.wgsl).
pub(crate) const TARGETS_WORKGROUP: u32 = 256;
/// Invocations of a workgroup of `reduce_sum` (reduce.wgsl).
pub(crate) const REDUCE_WORKGROUP: u32 = 256;
/// Values each invocation of `reduce_sum` adds: a workgroup sums
/// `REDUCE_WORKGROUP * REDUCE_ITEMS` of them.
pub(crate) const REDUCE_ITEMS: u32 = 8;
/// Invocations of a workgroup of `column_sums` (gemm.wgsl), one column each.
pub(crate) const COLUMNS_GROUP: u32 = 64;

/// The code of an input kind, as the row kernels' `INPUT_KIND` holds it.
pub(crate) const fn input_kind_code(kind: InputKind) -> u32 {
    match kind {
        InputKind::Logits => 0,
        InputKind::Probs => 1,
        InputKind::LogProbs => 2,
    }
}

/// The code of an input element type, as the row kernels' `INPUT_DTYPE` holds it.
pub(crate) const fn dtype_code(dtype: Dtype) -> u32 {
    match dtype {
        Dtype::F32 => 0,
        Dtype::F16 => 1,
        Dtype::Bf16 => 2,
    }
}

/// The constants that the kernels share with the host, by their WGSL names: the encoded targets'
/// markers, the exact sum's layout, the workgroup sizes that the host dispatches by, and the codes
/// of the input kinds and element types.
const SHARED: [(&str, u32); 15] = [
    ("IGNORED", IGNORED),
    ("BAD", BAD),
    ("ELSEWHERE", ELSEWHERE),
    ("WORDS", WORDS as u32),
    ("ONE_AT", ONE_AT),
    ("TARGETS_WORKGROUP", TARGETS_WORKGROUP),
    ("REDUCE_WORKGROUP", REDUCE_WORKGROUP),
    ("REDUCE_ITEMS", REDUCE_ITEMS),
    ("COLUMNS_GROUP", COLUMNS_GROUP),
    ("LOGITS", input_kind_code(InputKind::Logits)),
    ("PROBS", input_kind_code(InputKind::Probs)),
    ("LOG_PROBS", input_kind_code(InputKind::LogProbs)),
    ("F32", dtype_code(Dtype::F32)),
    ("F16", dtype_code(Dtype::F16)),
    ("BF16", dtype_code(Dtype::Bf16)),
];

/// One WGSL module the engine can build: its name, the files it is made of, and its source.
#[derive(Clone, Debug)]
pub struct ShaderModule {
    /// The module's name, used as its label.
    pub name: String,
    /// The files under `shaders/` that make it, in order.
    pub files: Vec<&'static str>,
    /// Whether it needs the SUBGROUP feature.
    pub needs_subgroups: bool,
    /// The WGSL source: the prelude (the constants shared with the host, and the binding
    /// declarations), then the files.
    pub source: String,
}

/// A loss family: the file that supplies `add_quad`, `finish_row` and `grad_quad` to the row
/// kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    CrossEntropy,
    KlDiv,
    Entropy,
    Bce,
}

impl Family {
    const ALL: [Family; 4] = [
        Family::CrossEntropy,
        Family::KlDiv,
        Family::Entropy,
        Family::Bce,
    ];

    fn file(self) -> (&'static str, &'static str) {
        match self {
            Family::CrossEntropy => ("cross_entropy.wgsl", CROSS_ENTROPY),
            Family::KlDiv => ("kl_div.wgsl", KL_DIV),
            Family::Entropy => ("entropy.wgsl", ENTROPY),
            Family::Bce => ("bce.wgsl", BCE),
        }
    }
}

/// A module the engine builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Module {
    /// A family's row kernels, reducing rows with subgroup operations or in workgroup memory.
    Rows { family: Family, subgroups: bool },
    /// The device-side sum.
    Reduce,
    /// The bandwidth probe.
    Probe,
    /// The check and encoding of class targets on the device, and the mean's scales.
    Targets,
    /// Matrix products on one tile, and column sums.
    Gemm { tile: Tile },
}

impl Module {
    /// The module's binding table.
    pub fn bindings(self) -> &'static [Binding] {
        match self {
            Module::Rows { .. } => RowBindings::TABLE,
            Module::Reduce => ReduceBindings::TABLE,
            Module::Probe => ProbeBindings::TABLE,
            Module::Targets => TargetBindings::TABLE,
            Module::Gemm { .. } => GemmBindings::TABLE,
        }
    }

    /// The module's prelude, then its files, joined.
    pub fn shader(self) -> ShaderModule {
        let parts: Vec<(&'static str, &'static str)> = match self {
            Module::Rows { family, subgroups } => vec![
                ("rows_params.wgsl", ROWS_PARAMS),
                ("rows_load.wgsl", ROWS_LOAD),
                ("rows_stats.wgsl", ROWS_STATS),
                ("rows_grad.wgsl", ROWS_GRAD),
                ("rows.wgsl", ROWS),
                if subgroups {
                    ("rows_subgroup.wgsl", ROWS_SUBGROUP)
                } else {
                    ("rows_workgroup.wgsl", ROWS_WORKGROUP)
                },
                family.file(),
            ],
            Module::Reduce => vec![("tree_sum.wgsl", TREE_SUM), ("reduce.wgsl", REDUCE)],
            Module::Probe => vec![("tree_sum.wgsl", TREE_SUM), ("probe.wgsl", PROBE)],
            Module::Targets => vec![("exact_sum.wgsl", EXACT_SUM), ("targets.wgsl", TARGETS)],
            Module::Gemm { tile } => {
                let gemm = ("gemm.wgsl", GEMM);
                let lanes = ("gemm_lanes.wgsl", GEMM_LANES);
                match tile.kind {
                    Kind::Staged | Kind::Direct => vec![gemm],
                    Kind::Lanes => vec![gemm, lanes],
                    Kind::Subgroup => vec![gemm, lanes, ("gemm_subgroup.wgsl", GEMM_SUBGROUP)],
                }
            }
        };
        let files: Vec<&'static str> = parts.iter().map(|(f, _)| *f).collect();
        let prelude = self.prelude();
        ShaderModule {
            name: files.join(" + "),
            needs_subgroups: match self {
                Module::Rows { subgroups, .. } => subgroups,
                Module::Gemm { tile } => tile.kind == Kind::Subgroup,
                _ => false,
            },
            source: std::iter::once(prelude.as_str())
                .chain(parts.iter().map(|(_, s)| *s))
                .collect::<Vec<_>>()
                .join("\n"),
            files,
        }
    }

    /// The shared constants as WGSL `const`s (and a product's tile's), then the module's binding
    /// declarations.
    fn prelude(self) -> String {
        let tile = match self {
            Module::Gemm { tile } => tile.constants().to_vec(),
            _ => Vec::new(),
        };
        let constants: String = SHARED
            .iter()
            .chain(&tile)
            .map(|(name, value)| format!("const {name}: u32 = {value}u;\n"))
            .collect();
        format!(
            "// The prelude (src/gpu/shaders.rs): the constants shared with the host, and the \
             bindings (src/gpu/bindings.rs).\n{constants}{}",
            declarations(self.bindings())
        )
    }
}

/// Every module the engine may build, for validation without a GPU.
pub fn shader_modules() -> Vec<ShaderModule> {
    Family::ALL
        .iter()
        .flat_map(|&family| {
            [false, true].map(|subgroups| Module::Rows { family, subgroups }.shader())
        })
        .chain([
            Module::Reduce.shader(),
            Module::Probe.shader(),
            Module::Targets.shader(),
        ])
        .chain(
            Tile::candidates()
                .iter()
                .map(|&tile| Module::Gemm { tile }.shader()),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::{Family, Module};
    use crate::gpu::{gemm, plan, probe, rows, targets, tree_sum};

    /// The size and the named members' offsets of struct `name` in `module`'s WGSL, as naga lays
    /// it out.
    fn wgsl_layout(module: Module, name: &str) -> (usize, Vec<(String, usize)>) {
        let source = module.shader().source;
        let parsed = naga::front::wgsl::parse_str(&source).expect("the module parses");
        let (members, span) = parsed
            .types
            .iter()
            .find_map(|(_, ty)| match &ty.inner {
                naga::TypeInner::Struct { members, span } if ty.name.as_deref() == Some(name) => {
                    Some((members, *span))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no struct {name} in {module:?}"));
        let members = members
            .iter()
            .filter_map(|m| Some((m.name.clone()?, m.offset as usize)))
            .filter(|(name, _)| !name.starts_with("_pad"))
            .collect();
        (span as usize, members)
    }

    /// Asserts that the WGSL struct `name` of `module` has the size `size` and exactly the members
    /// `fields` (name, offset) of its Rust mirror, padding aside.
    fn assert_mirrors(module: Module, name: &str, size: usize, fields: &[(&str, usize)]) {
        let (wgsl_size, members) = wgsl_layout(module, name);
        assert_eq!(
            wgsl_size, size,
            "{name} in {module:?}: WGSL and Rust sizes differ"
        );
        let rust: Vec<(String, usize)> = fields.iter().map(|&(n, o)| (n.to_owned(), o)).collect();
        assert_eq!(
            members, rust,
            "{name} in {module:?}: WGSL and Rust members differ"
        );
    }

    macro_rules! fields {
        ($ty:ty { $($field:ident),+ }) => {
            &[$((stringify!($field), offset_of!($ty, $field))),+]
        };
    }

    #[test]
    fn every_params_struct_matches_its_rust_mirror() {
        for family in Family::ALL {
            for subgroups in [false, true] {
                assert_mirrors(
                    Module::Rows { family, subgroups },
                    "Params",
                    size_of::<rows::Params>(),
                    fields!(rows::Params {
                        rows,
                        classes,
                        row_base,
                        segments,
                        label_smoothing,
                        z_loss,
                        softcap,
                        main_scale,
                        z_scale,
                        segment_quads,
                        total_classes
                    }),
                );
            }
        }
        assert_mirrors(
            Module::Reduce,
            "Params",
            size_of::<tree_sum::Params>(),
            fields!(tree_sum::Params { n }),
        );
        assert_mirrors(
            Module::Probe,
            "Params",
            size_of::<probe::Params>(),
            fields!(probe::Params { quads, per_group }),
        );
        assert_mirrors(
            Module::Targets,
            "Params",
            size_of::<targets::TargetParams>(),
            fields!(targets::TargetParams {
                rows,
                classes,
                ignore_lo,
                ignore_hi,
                ln_lo,
                ln_hi,
                first,
                held
            }),
        );
        for &tile in gemm::Tile::candidates() {
            assert_mirrors(
                Module::Gemm { tile },
                "Params",
                size_of::<gemm::Params>(),
                fields!(gemm::Params {
                    m,
                    n,
                    k,
                    accumulate,
                    lda,
                    a_offset,
                    ldb,
                    b_offset,
                    ldc,
                    c_offset,
                    bias,
                    bias_offset
                }),
            );
        }
    }

    /// The host writes a row's `Stats` as six f32 (`Plan::merged_partials`) and sizes them by
    /// `SEGMENT_STATS_BYTES`.
    #[test]
    fn stats_are_six_f32_in_order() {
        let (size, members) = wgsl_layout(
            Module::Rows {
                family: Family::CrossEntropy,
                subgroups: false,
            },
            "Stats",
        );
        assert_eq!(size as u64, plan::SEGMENT_STATS_BYTES);
        assert_eq!(size, size_of::<[f32; 6]>());
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["m", "s", "t", "a", "b", "c"]);
        assert!(members.iter().zip(0..).all(|((_, at), i)| *at == 4 * i));
    }
}
