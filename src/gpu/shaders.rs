//! The WGSL sources, and the modules built from them. Every module begins with a prelude written
//! here: the constants it shares with the host, from their Rust definitions, and its binding
//! declarations, from its table in `bindings.rs`; then its files, in order.

use super::bindings::{
    Binding, ProbeBindings, ReduceBindings, RowBindings, TargetBindings, declarations,
};
use crate::request::{BAD, ELSEWHERE, IGNORED, ONE_AT, WORDS};

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

/// Invocations of a workgroup of `encode_targets` and `device_scales` (targets.wgsl).
pub(crate) const TARGETS_WORKGROUP: u32 = 256;
/// Invocations of a workgroup of `reduce_sum` (reduce.wgsl).
pub(crate) const REDUCE_WORKGROUP: u32 = 256;
/// Values each invocation of `reduce_sum` adds: a workgroup sums
/// `REDUCE_WORKGROUP * REDUCE_ITEMS` of them.
pub(crate) const REDUCE_ITEMS: u32 = 8;

/// The constants that the kernels share with the host, by their WGSL names: the encoded targets'
/// markers, the exact sum's layout, and the workgroup sizes that the host dispatches by.
const SHARED: [(&str, u32); 8] = [
    ("IGNORED", IGNORED),
    ("BAD", BAD),
    ("ELSEWHERE", ELSEWHERE),
    ("WORDS", WORDS as u32),
    ("ONE_AT", ONE_AT),
    ("TARGETS_WORKGROUP", TARGETS_WORKGROUP),
    ("REDUCE_WORKGROUP", REDUCE_WORKGROUP),
    ("REDUCE_ITEMS", REDUCE_ITEMS),
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
}

impl Module {
    /// The module's binding table.
    pub fn bindings(self) -> &'static [Binding] {
        match self {
            Module::Rows { .. } => RowBindings::TABLE,
            Module::Reduce => ReduceBindings::TABLE,
            Module::Probe => ProbeBindings::TABLE,
            Module::Targets => TargetBindings::TABLE,
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
        };
        let files: Vec<&'static str> = parts.iter().map(|(f, _)| *f).collect();
        let prelude = self.prelude();
        ShaderModule {
            name: files.join(" + "),
            needs_subgroups: matches!(
                self,
                Module::Rows {
                    subgroups: true,
                    ..
                }
            ),
            source: std::iter::once(prelude.as_str())
                .chain(parts.iter().map(|(_, s)| *s))
                .collect::<Vec<_>>()
                .join("\n"),
            files,
        }
    }

    /// The shared constants as WGSL `const`s, then the module's binding declarations.
    fn prelude(self) -> String {
        let constants: String = SHARED
            .iter()
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
        .collect()
}
