//! Every WGSL module the engine builds is parsed and validated by naga, with no GPU. A module that
//! does not need subgroups must validate without the subgroup capability, as GL requires.

use std::collections::BTreeSet;

use naga::valid::{Capabilities, ValidationFlags, Validator};

#[test]
fn every_module_parses_and_validates() {
    for shader in xent::gpu::shader_modules() {
        let module = naga::front::wgsl::parse_str(&shader.source).unwrap_or_else(|e| {
            panic!(
                "{} ({}): {}",
                shader.name,
                shader.files.join(" + "),
                e.emit_to_string(&shader.source)
            )
        });
        let capabilities = if shader.needs_subgroups {
            Capabilities::SUBGROUP
        } else {
            Capabilities::empty()
        };
        Validator::new(ValidationFlags::all(), capabilities)
            .validate(&module)
            .unwrap_or_else(|e| {
                panic!(
                    "{} ({}): {}",
                    shader.name,
                    shader.files.join(" + "),
                    e.emit_to_string(&shader.source)
                )
            });
    }
}

#[test]
fn every_wgsl_file_belongs_to_a_module() {
    let used: BTreeSet<&str> = xent::gpu::shader_modules()
        .iter()
        .flat_map(|s| s.files.iter().copied())
        .collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".wgsl") {
            assert!(
                used.contains(name.as_str()),
                "shaders/{name} is in no module, so it is never validated"
            );
        }
    }
}

/// The names of the constants that a module's prelude declares: everything of its source before
/// its first file.
fn prelude_constants(shader: &xent::gpu::ShaderModule) -> BTreeSet<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let first = std::fs::read_to_string(format!("{dir}/{}", shader.files[0])).unwrap();
    let at = shader
        .source
        .find(&first)
        .expect("the first file follows the prelude");
    shader.source[..at]
        .lines()
        .filter_map(|line| line.strip_prefix("const ")?.split(':').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bindings_and_shared_constants_are_declared_only_by_the_prelude() {
    let shared: BTreeSet<String> = xent::gpu::shader_modules()
        .iter()
        .flat_map(prelude_constants)
        .collect();
    assert!(shared.contains("IGNORED") && shared.contains("LOGITS"));
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("@binding("),
                "{} declares a binding: src/gpu/bindings.rs declares them all",
                path.display()
            );
            for name in &shared {
                assert!(
                    !text.contains(&format!("const {name}:")),
                    "{} declares {name}, a constant shared with the host: the prelude \
                     (src/gpu/shaders.rs) declares it",
                    path.display()
                );
            }
        }
    }
}
