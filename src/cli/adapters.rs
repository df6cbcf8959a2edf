//! `xent adapters`.

pub fn run() {
    let adapters = xent::gpu::adapters();
    if adapters.is_empty() {
        println!(
            "wgpu found no adapter (install a Vulkan driver such as mesa-vulkan-drivers, or check WGPU_BACKEND and {})",
            xent::gpu::ADAPTER_NAME_VAR
        );
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("{i}: {}", a.name);
        println!(
            "   backend {}, type {}, driver {}",
            a.backend, a.device_type, a.driver
        );
        for (name, value) in &a.limits {
            println!("   {name} = {value}");
        }
        let features = if a.features.is_empty() {
            "none".to_string()
        } else {
            a.features.join(", ")
        };
        println!("   features: {features}");
    }
}
