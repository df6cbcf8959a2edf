//! The WGSL sources, and the modules built from them.

const SOFTMAX_XENT: &str = include_str!("../../shaders/softmax_xent.wgsl");
const SOFTMAX_XENT_WORKGROUP: &str = include_str!("../../shaders/softmax_xent_workgroup.wgsl");
const SOFTMAX_XENT_SUBGROUP: &str = include_str!("../../shaders/softmax_xent_subgroup.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");

/// One WGSL module the engine can build: its name, the files it is made of, and its source.
#[derive(Clone, Debug)]
pub struct ShaderModule {
    /// The module's name, used as its label.
    pub name: &'static str,
    /// The files under `shaders/` that make it, in order.
    pub files: &'static [&'static str],
    /// Whether it needs the SUBGROUP feature.
    pub needs_subgroups: bool,
    /// The WGSL source.
    pub source: String,
}

/// The kernel families, each built as one module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Module {
    /// Softmax cross-entropy, reducing rows in workgroup memory.
    SoftmaxXentWorkgroup,
    /// Softmax cross-entropy, reducing rows with subgroup operations.
    SoftmaxXentSubgroup,
    /// The device-side sum and mean.
    Reduce,
}

impl Module {
    const ALL: [Module; 3] = [
        Module::SoftmaxXentWorkgroup,
        Module::SoftmaxXentSubgroup,
        Module::Reduce,
    ];

    /// The module's files, joined.
    pub fn shader(self) -> ShaderModule {
        let (name, files, parts, needs_subgroups): (_, &'static [&'static str], &[&str], _) =
            match self {
                Module::SoftmaxXentWorkgroup => (
                    "softmax_xent (workgroup)",
                    &["softmax_xent_workgroup.wgsl", "softmax_xent.wgsl"],
                    &[SOFTMAX_XENT_WORKGROUP, SOFTMAX_XENT],
                    false,
                ),
                Module::SoftmaxXentSubgroup => (
                    "softmax_xent (subgroup)",
                    &["softmax_xent_subgroup.wgsl", "softmax_xent.wgsl"],
                    &[SOFTMAX_XENT_SUBGROUP, SOFTMAX_XENT],
                    true,
                ),
                Module::Reduce => ("reduce", &["reduce.wgsl"], &[REDUCE], false),
            };
        ShaderModule {
            name,
            files,
            needs_subgroups,
            source: parts.join("\n"),
        }
    }
}

/// Every module the engine may build, for validation without a GPU.
pub fn shader_modules() -> Vec<ShaderModule> {
    Module::ALL.iter().map(|m| m.shader()).collect()
}
