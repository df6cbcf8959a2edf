//! An engine on a device the caller owns (`Engine::from_wgpu`), and wgpu failures that must come
//! back as `Err` rather than a panic.

mod common;

use xent::{Engine, Error, Reduction, Request};

#[test]
fn a_shared_device_matches_an_owned_one() {
    let mut rng = common::rng("shared device");
    let (batch, classes) = (300, 700);
    let x = common::logits(&mut rng, batch * classes, 3.0);
    let t = common::targets(&mut rng, batch, classes, 0.1);
    let request =
        Request::cross_entropy(&x[..], [batch, classes], &t[..]).reduction(Reduction::Sum);
    for (adapter, device, queue) in common::caller_devices() {
        let shared = Engine::from_wgpu(device, queue);
        let owned = common::gpus()
            .iter()
            .find(|e| e.device() == shared.device())
            .unwrap_or_else(|| panic!("no owned engine for {}", adapter.get_info().name));
        eprintln!("{} shared device", shared.device());
        // The owned device has subgroups where the adapter does, the caller's has none here, so
        // the kernels differ in reduction order: compare with the reference tolerance.
        let a = shared.compute(&request).unwrap().loss.scalar().unwrap();
        let b = owned.compute(&request).unwrap().loss.scalar().unwrap();
        common::assert_scalar(&shared.device().to_string(), a, b, 1e-5);
    }
}

#[test]
fn a_destroyed_device_is_an_error_not_a_panic() {
    let mut rng = common::rng("destroyed device");
    let x = common::logits(&mut rng, 8 * 100, 1.0);
    let t = common::targets(&mut rng, 8, 100, 0.0);
    for (_, device, queue) in common::caller_devices() {
        let engine = Engine::from_wgpu(device.clone(), queue);
        device.destroy();
        let err = engine
            .compute(&Request::cross_entropy(&x[..], [8, 100], &t[..]))
            .unwrap_err();
        eprintln!("{} after destroy: {err}", engine.device());
        assert!(
            matches!(
                err,
                Error::Wgpu { .. } | Error::DeviceLost(_) | Error::Map(_) | Error::Poll(_)
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string().lines().count(), 1, "{err}");
    }
}

#[test]
fn a_row_over_a_small_devices_limits_is_an_error_and_the_engine_goes_on() {
    let mut rng = common::rng("small limits");
    // Devices that may bind at most 1 MiB: a row of 300 000 f32 classes does not fit.
    let devices = common::caller_devices_with(|limits| wgpu::Limits {
        max_storage_buffer_binding_size: 1 << 20,
        max_buffer_size: 1 << 20,
        ..limits
    });
    for (_, device, queue) in devices {
        let engine = Engine::from_wgpu(device, queue);
        let wide = common::logits(&mut rng, 2 * 300_000, 1.0);
        let err = engine
            .compute(&Request::cross_entropy(
                &wide[..],
                [2, 300_000],
                &[5_i64, 299_999][..],
            ))
            .unwrap_err();
        eprintln!("{}: {err}", engine.device());
        assert!(
            matches!(err, Error::TooLarge { what: "logits", .. }),
            "{err:?}"
        );
        // Many rows still go through, in chunks of at most 1 MiB, and so do results far larger
        // than one buffer: a gradient, and BCE's elementwise values, come back chunk by chunk.
        let name = engine.device().to_string();
        for (batch, classes, grad) in [(2000, 1000, false), (2000, 1000, true)] {
            let x = common::logits(&mut rng, batch * classes, 2.0);
            let t = common::targets(&mut rng, batch, classes, 0.1);
            let request = Request::cross_entropy(&x[..], [batch, classes], &t[..]).with_grad(grad);
            let got = engine.compute(&request).unwrap();
            let want = Engine::reference().compute(&request).unwrap();
            let (got_loss, want_loss) = (got.loss.scalar(), want.loss.scalar());
            common::assert_scalar(&name, got_loss.unwrap(), want_loss.unwrap(), 1e-5);
            if let (Some(g), Some(w)) = (got.grad, want.grad) {
                assert!(common::relative_norm_error(&g, &w) <= 1e-5, "{name}");
            }
        }
        let (batch, classes) = (700, 1001);
        let x = common::logits(&mut rng, batch * classes, 2.0);
        let y: Vec<f32> = x.iter().map(|v| f32::from(*v > 0.5)).collect();
        let request = Request::binary_cross_entropy(&x[..], [batch, classes], &y[..])
            .reduction(Reduction::None)
            .with_grad(true);
        let got = engine.compute(&request).unwrap();
        let want = Engine::reference().compute(&request).unwrap();
        common::assert_close(
            &name,
            got.loss.values().unwrap(),
            want.loss.values().unwrap(),
            1e-6,
            1e-5,
        );
        let error = common::relative_norm_error(&got.grad.unwrap(), &want.grad.unwrap());
        assert!(error <= 1e-5, "{name}: {error:e}");
        let rebuilt = engine.rebuild().unwrap_err();
        assert!(matches!(rebuilt, Error::DeviceLost(_)), "{rebuilt:?}");
    }
}
