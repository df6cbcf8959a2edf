//! The WGSL sources, and the modules built from them.

const ROWS: &str = include_str!("../../shaders/rows.wgsl");
const ROWS_WORKGROUP: &str = include_str!("../../shaders/rows_workgroup.wgsl");
const ROWS_SUBGROUP: &str = include_str!("../../shaders/rows_subgroup.wgsl");
const SOFTMAX_XENT: &str = include_str!("../../shaders/softmax_xent.wgsl");
const KL_DIV: &str = include_str!("../../shaders/kl_div.wgsl");
const ENTROPY: &str = include_str!("../../shaders/entropy.wgsl");
const BCE: &str = include_str!("../../shaders/bce.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");
const PROBE: &str = include_str!("../../shaders/probe.wgsl");
const TREE_SUM: &str = include_str!("../../shaders/tree_sum.wgsl");
const EXACT_SUM: &str = include_str!("../../shaders/exact_sum.wgsl");
const TARGETS: &str = include_str!("../../shaders/targets.wgsl");

/// One WGSL module the engine can build: its name, the files it is made of, and its source.
#[derive(Clone, Debug)]
pub struct ShaderModule {
    /// The module's name, used as its label.
    pub name: String,
    /// The files under `shaders/` that make it, in order.
    pub files: Vec<&'static str>,
    /// Whether it needs the SUBGROUP feature.
    pub needs_subgroups: bool,
    /// The WGSL source.
    pub source: String,
}

/// A loss family: the file that supplies `add_quad` and `finish_row` to the row kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    SoftmaxXent,
    KlDiv,
    Entropy,
    Bce,
}

impl Family {
    const ALL: [Family; 4] = [
        Family::SoftmaxXent,
        Family::KlDiv,
        Family::Entropy,
        Family::Bce,
    ];

    fn file(self) -> (&'static str, &'static str) {
        match self {
            Family::SoftmaxXent => ("softmax_xent.wgsl", SOFTMAX_XENT),
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
    /// The module's files, joined.
    pub fn shader(self) -> ShaderModule {
        let parts: Vec<(&'static str, &'static str)> = match self {
            Module::Rows { family, subgroups } => vec![
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
        ShaderModule {
            name: files.join(" + "),
            needs_subgroups: matches!(
                self,
                Module::Rows {
                    subgroups: true,
                    ..
                }
            ),
            source: parts.iter().map(|(_, s)| *s).collect::<Vec<_>>().join("\n"),
            files,
        }
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
