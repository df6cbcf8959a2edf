//! Which engines a test runs on: one per adapter wgpu finds and the fast CPU path, the backends
//! CI expects among them, and devices a test opens itself as a wgpu user would.

use std::sync::OnceLock;

use xent::Engine;

/// One engine per adapter wgpu finds, opened once per test binary. With `XENT_REQUIRE_GPU=1`, no
/// adapter at all (or one that fails to open) fails the test instead of skipping it.
pub fn gpus() -> &'static [Engine] {
    static ENGINES: OnceLock<Vec<Engine>> = OnceLock::new();
    ENGINES.get_or_init(open_gpus)
}

/// One new engine per adapter wgpu finds, for tests that change an engine's settings; with
/// `XENT_REQUIRE_GPU=1` as `gpus`.
pub fn open_gpus() -> Vec<Engine> {
    let require = std::env::var("XENT_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let mut engines = Vec::new();
    for engine in Engine::all_gpus() {
        match engine {
            Ok(e) => engines.push(e),
            Err(e) if require => {
                panic!("XENT_REQUIRE_GPU=1 and an adapter failed to open: {e}")
            }
            Err(e) => eprintln!("skipping an adapter that failed to open: {e}"),
        }
    }
    assert!(
        !(require && engines.is_empty()),
        "XENT_REQUIRE_GPU=1 but wgpu found no adapter"
    );
    engines
}

/// The engines checked against the float64 reference: every GPU adapter and the fast CPU path.
pub fn under_test() -> Vec<Engine> {
    gpus().iter().cloned().chain([Engine::cpu()]).collect()
}

/// Runs `body` on every engine under test, naming each in the output as `[Backend/adapter] test`.
pub fn on_every_engine(test: &str, body: impl Fn(&Engine)) {
    if gpus().is_empty() {
        eprintln!("{test}: no GPU adapter, CPU only (set XENT_REQUIRE_GPU=1 to fail instead)");
    }
    for engine in &under_test() {
        eprintln!("{} {test}", engine.device());
        body(engine);
    }
}

/// With `XENT_EXPECT_BACKENDS` set (CI), each named backend must be among the engines checked.
pub fn check_expected_backends(engines: &[Engine]) {
    let Ok(expected) = std::env::var("XENT_EXPECT_BACKENDS") else {
        return;
    };
    for backend in expected.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        assert!(
            engines
                .iter()
                .any(|e| e.device().backend.eq_ignore_ascii_case(backend)),
            "XENT_EXPECT_BACKENDS names {backend}, but no engine under test runs on it"
        );
    }
}

/// Every adapter, with a device the test opens itself, as a wgpu user would.
pub fn caller_devices() -> Vec<(wgpu::Adapter, wgpu::Device, wgpu::Queue)> {
    caller_devices_with(|limits| limits)
}

/// As `caller_devices`, each device opened with the limits `limits` makes of its adapter's.
pub fn caller_devices_with(
    limits: impl Fn(wgpu::Limits) -> wgpu::Limits,
) -> Vec<(wgpu::Adapter, wgpu::Device, wgpu::Queue)> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .map(|adapter| {
            let (device, queue) =
                pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                    label: Some("caller"),
                    required_limits: limits(adapter.limits()),
                    ..Default::default()
                }))
                .unwrap();
            (adapter, device, queue)
        })
        .collect()
}

/// `work`'s result, run in a rayon pool of `threads` threads (the fast CPU path and its GEMMs take
/// their thread count from the pool they run in).
pub fn in_pool<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
        .install(work)
}
