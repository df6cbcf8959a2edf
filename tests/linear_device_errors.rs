//! Device-resident linear heads the engine refuses (`Engine::record_linear`): each a typed error,
//! one line naming what is wrong, returned before anything is recorded: the caller's encoder,
//! submitted after the errors, changes none of the caller's buffers, and a valid head recorded
//! after them gives the bits it gives alone.

mod common;
#[path = "common/device_head.rs"]
mod device_head;

use common::{GUARD, guarded_buffer, read_floats};
use device_head::{At, Head, OnDevice, all_new, gpus};
use xent::{
    DeviceGrad, DeviceInput, DeviceLinearGrads, DeviceLinearRequest, DeviceTarget, DeviceVector,
    Dtype, Engine, Error, IndexType, Options,
};

/// A buffer without STORAGE usage.
fn uniform(engine: &Engine) -> wgpu::Buffer {
    engine
        .wgpu()
        .unwrap()
        .0
        .create_buffer(&wgpu::BufferDescriptor {
            label: Some("not storage"),
            size: 1024,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
}

/// What an error names: a `DeviceBuffer`'s buffer, an `InvalidOption`'s option, or the values a
/// `LengthMismatch` counts.
fn named(err: &Error) -> &'static str {
    match err {
        Error::DeviceBuffer { what, .. } | Error::LengthMismatch { what, .. } => what,
        Error::InvalidOption { option, .. } => option,
        _ => "",
    }
}

/// Asserts `err` is a typed error naming `name`, its message one line starting with `message`.
fn assert_refused(what: &str, err: &Error, name: &str, message: &str) {
    let text = err.to_string();
    assert!(
        !text.contains('\n'),
        "{what}: a message of several lines: {text}"
    );
    assert!(
        text.starts_with(message),
        "{what}: {text} (expected {message}...)"
    );
    assert_eq!(named(err), name, "{what}: {err:?}");
}

#[test]
fn bad_device_heads_are_typed_errors_before_anything_is_recorded() {
    let mut rng = common::rng("device heads refused");
    for engine in gpus("device heads refused") {
        let (device, queue) = engine.wgpu().unwrap();
        let [n, d, v] = [3, 7, 5];
        let mut head = Head::draw(&mut rng, [n, d, v], [Dtype::F32, Dtype::F32], true, 0.0);
        head.labels = vec![1, 4, -100];
        let on = OnDevice::new(engine, &head);
        let (not_storage, small) = (uniform(engine), common::storage_buffer(engine, &[0; 16]));
        // The gradients' buffers of the caller's, added to: an error must leave them as they are.
        let old: Vec<Vec<f32>> = [n * d, v * d, v]
            .iter()
            .map(|&len| common::logits(&mut rng, len, 1.0))
            .collect();
        let grad_buffers: Vec<wgpu::Buffer> = old
            .iter()
            .map(|g| guarded_buffer(engine, bytemuck::cast_slice(g)))
            .collect();
        let into = |k: usize| DeviceGrad::Into {
            buffer: &grad_buffers[k],
            offset: GUARD,
            add: true,
        };
        let grads = DeviceLinearGrads {
            hidden: into(0),
            weight: into(1),
            bias: into(2),
        };
        let base = on.request(&head, At::Device(IndexType::I64), grads);
        let h = base.hidden;
        let w = base.weight;
        let grad_at = |k, grad| with_grad(base, k, grad);
        let bias_at = |buffer, offset| Some(DeviceVector { buffer, offset });
        let target_at = |buffer, offset| DeviceTarget::Classes {
            buffer,
            offset,
            index: IndexType::I64,
        };
        let options = |o: Options| DeviceLinearRequest { options: o, ..base };
        let no_bias = DeviceLinearRequest {
            bias: None,
            grads: DeviceLinearGrads {
                bias: DeviceGrad::Skip,
                ..grads
            },
            ..base
        };
        let bad_weights = [1.0_f32; 4];
        let dh = "hidden states' gradient";
        let dw = "linear weight's gradient";
        let db = "linear bias's gradient";
        let variants: Vec<(&str, DeviceLinearRequest, &str, String)> = vec![
            (
                "H without STORAGE",
                DeviceLinearRequest {
                    hidden: DeviceInput {
                        buffer: &not_storage,
                        ..h
                    },
                    ..base
                },
                "input",
                "input: usage".into(),
            ),
            (
                "W without STORAGE",
                DeviceLinearRequest {
                    weight: DeviceInput {
                        buffer: &not_storage,
                        ..w
                    },
                    ..base
                },
                "linear_weight",
                "linear_weight: usage".into(),
            ),
            (
                "b without STORAGE",
                DeviceLinearRequest {
                    bias: bias_at(&not_storage, 0),
                    ..base
                },
                "linear_bias",
                "linear_bias: usage".into(),
            ),
            (
                "targets without STORAGE",
                DeviceLinearRequest {
                    target: target_at(&not_storage, 0),
                    ..base
                },
                "target",
                "target: usage".into(),
            ),
            (
                "dW without STORAGE",
                grad_at(
                    1,
                    DeviceGrad::Into {
                        buffer: &not_storage,
                        offset: 0,
                        add: false,
                    },
                ),
                dw,
                format!("{dw}: usage"),
            ),
            (
                "H off the alignment",
                DeviceLinearRequest {
                    hidden: DeviceInput { offset: 4, ..h },
                    ..base
                },
                "input",
                "input: offset 4 is not a multiple".into(),
            ),
            (
                "W off the alignment",
                DeviceLinearRequest {
                    weight: DeviceInput { offset: 4, ..w },
                    ..base
                },
                "linear_weight",
                "linear_weight: offset 4 is not a multiple".into(),
            ),
            (
                "b off the alignment",
                DeviceLinearRequest {
                    bias: bias_at(&on.bias, 4),
                    ..base
                },
                "linear_bias",
                "linear_bias: offset 4 is not a multiple".into(),
            ),
            (
                "targets off the alignment",
                DeviceLinearRequest {
                    target: target_at(&on.labels, 8),
                    ..base
                },
                "target",
                "target: offset 8 is not a multiple".into(),
            ),
            (
                "dH off the alignment",
                grad_at(
                    0,
                    DeviceGrad::Into {
                        buffer: &grad_buffers[0],
                        offset: 4,
                        add: true,
                    },
                ),
                dh,
                format!("{dh}: offset 4 is not a multiple"),
            ),
            (
                "H too small",
                DeviceLinearRequest {
                    hidden: DeviceInput {
                        shape: [300, d],
                        ..h
                    },
                    ..base
                },
                "input",
                format!("input: needs {} bytes from offset 256", 300 * d * 4),
            ),
            (
                "W too small",
                DeviceLinearRequest {
                    weight: DeviceInput {
                        shape: [500, d],
                        ..w
                    },
                    ..base
                },
                "linear_weight",
                format!("linear_weight: needs {} bytes from offset 256", 500 * d * 4),
            ),
            (
                "b too small for V",
                DeviceLinearRequest {
                    bias: bias_at(&small, 0),
                    ..base
                },
                "linear_bias",
                format!("linear_bias: needs {} bytes from offset 0", v * 4),
            ),
            (
                "targets too small",
                DeviceLinearRequest {
                    target: target_at(&small, 0),
                    ..base
                },
                "target",
                format!("target: needs {} bytes from offset 0", n * 8),
            ),
            (
                "dense targets too small",
                DeviceLinearRequest {
                    target: DeviceTarget::Dense {
                        buffer: &small,
                        offset: 0,
                    },
                    ..base
                },
                "target",
                format!(
                    "target: needs {} bytes from offset 0",
                    (n * v * 4).next_multiple_of(16)
                ),
            ),
            (
                "dH too small",
                grad_at(0, into_small(&small)),
                dh,
                format!("{dh}: needs {} bytes from offset 0", n * d * 4),
            ),
            (
                "dW too small",
                grad_at(1, into_small(&small)),
                dw,
                format!("{dw}: needs {} bytes from offset 0", v * d * 4),
            ),
            (
                "db too small",
                grad_at(2, into_small(&small)),
                db,
                format!("{db}: needs {} bytes from offset 0", v * 4),
            ),
            (
                "D of W not H's",
                DeviceLinearRequest {
                    weight: DeviceInput { shape: [v, 6], ..w },
                    ..base
                },
                "linear_weight",
                "linear_weight: the weight's rows have 6 columns, and the hidden states' 7".into(),
            ),
            (
                "dH in place over f16 H",
                DeviceLinearRequest {
                    hidden: DeviceInput {
                        dtype: Dtype::F16,
                        ..h
                    },
                    ..grad_at(0, DeviceGrad::InPlace)
                },
                dh,
                format!("{dh}: in place needs f32 hidden states"),
            ),
            (
                "dW in place",
                grad_at(1, DeviceGrad::InPlace),
                dw,
                format!("{dw}: only the hidden states' gradient can be written in place"),
            ),
            (
                "db in place",
                grad_at(2, DeviceGrad::InPlace),
                db,
                format!("{db}: only the hidden states' gradient can be written in place"),
            ),
            (
                "db of a head without bias",
                DeviceLinearRequest {
                    grads: DeviceLinearGrads {
                        bias: DeviceGrad::New,
                        ..grads
                    },
                    ..no_bias
                },
                db,
                format!("{db}: the head has no bias"),
            ),
            (
                "strict",
                options(Options {
                    strict: true,
                    ..base.options
                }),
                "strict",
                "strict: strict mode checks values on the host".into(),
            ),
            (
                "label smoothing",
                options(Options {
                    label_smoothing: 2.0,
                    ..base.options
                }),
                "label_smoothing",
                "label_smoothing: 2 is outside [0, 1]".into(),
            ),
            (
                "class weights of the wrong length",
                DeviceLinearRequest {
                    class_weight: Some(&bad_weights),
                    ..base
                },
                "weight",
                "weight has 4 values, but its shape [5] needs 5".into(),
            ),
        ];
        let mut encoder = device.create_command_encoder(&Default::default());
        for (name, request, field, message) in &variants {
            let what = format!("{} {name}", engine.device());
            let err = engine.record_linear(&mut encoder, request).unwrap_err();
            assert_refused(&what, &err, field, message);
        }
        let err = Engine::cpu()
            .record_linear(&mut encoder, &base)
            .unwrap_err();
        assert_refused("the CPU", &err, "engine", "engine: ");
        // A valid head after the errors, in the same encoder, gives what it gives alone.
        let fine = on.request(&head, At::Device(IndexType::I64), all_new());
        let out = engine.record_linear(&mut encoder, &fine).unwrap();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        queue.submit([encoder.finish()]);
        let error = pollster::block_on(scope.pop());
        assert!(error.is_none(), "{}: {error:?}", engine.device());
        let after = on.read(engine, &head, &out);
        let alone = on.run(engine, &head, At::Device(IndexType::I64), all_new());
        alone.assert_same(&format!("{} after the errors", engine.device()), &after);
        for (k, (buffer, old)) in grad_buffers.iter().zip(&old).enumerate() {
            let now = read_floats(engine, buffer, GUARD, old.len());
            device_head::same_bits(
                &format!("{}: gradient {k} touched", engine.device()),
                &now,
                old,
            );
        }
        let hidden = read_floats(engine, &on.hidden, GUARD, n * d);
        device_head::same_bits("H touched", &hidden, &head.hidden.to_f32());
    }
}

/// `request` with gradient `k` (dH, dW, db) going to `grad`.
fn with_grad<'a>(
    request: DeviceLinearRequest<'a>,
    k: usize,
    grad: DeviceGrad<'a>,
) -> DeviceLinearRequest<'a> {
    let mut g = request.grads;
    match k {
        0 => g.hidden = grad,
        1 => g.weight = grad,
        _ => g.bias = grad,
    }
    DeviceLinearRequest {
        grads: g,
        ..request
    }
}

/// The caller's 16-byte buffer, written over.
fn into_small(small: &wgpu::Buffer) -> DeviceGrad<'_> {
    DeviceGrad::Into {
        buffer: small,
        offset: 0,
        add: false,
    }
}

/// A gradient into a buffer the head's operands are read from (H, W, b) is refused before
/// anything is recorded: a product would bind one buffer both read-only and read-write, or a
/// later chunk would read an operand the gradient has written over. (dH over H is
/// `DeviceGrad::InPlace`, which the passes order for.)
#[test]
fn gradients_into_the_operands_buffers_are_refused() {
    let mut rng = common::rng("device head gradients over its operands");
    for engine in gpus("device head gradients over its operands") {
        let (device, queue) = engine.wgpu().unwrap();
        let align = u64::from(device.limits().min_storage_buffer_offset_alignment);
        let [n, d, v] = [20, 7, 9];
        let mut head = Head::draw(&mut rng, [n, d, v], [Dtype::F32, Dtype::F32], true, 0.0);
        head.chunk_rows = Some(4);
        // H, W and b with room after their values, where a gradient could go.
        let room = |values: &[f32], more: usize| {
            let mut bytes: Vec<u8> = bytemuck::cast_slice(values).to_vec();
            bytes.resize(
                (values.len() * 4).next_multiple_of(align as usize) + more * 4,
                0,
            );
            bytes
        };
        let mut on = OnDevice::new(engine, &head);
        on.hidden = guarded_buffer(engine, &room(&head.hidden.to_f32(), v * d));
        on.weight = guarded_buffer(engine, &room(&head.weight.to_f32(), n * d));
        let after = |values: usize| GUARD + (values as u64 * 4).next_multiple_of(align);
        let at = |buffer, offset| DeviceGrad::Into {
            buffer,
            offset,
            add: false,
        };
        let variants = [
            ("dW after H, in H's buffer", 1, at(&on.hidden, after(n * d))),
            ("dH after W, in W's buffer", 0, at(&on.weight, after(v * d))),
            ("dW over W", 1, at(&on.weight, GUARD)),
            ("db over b", 2, at(&on.bias, GUARD)),
        ];
        let mut failures = Vec::new();
        for (name, k, grad) in variants {
            let request = with_grad(on.request(&head, At::HostI64, all_new()), k, grad);
            let mut encoder = device.create_command_encoder(&Default::default());
            let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
            let result = engine.record_linear(&mut encoder, &request);
            queue.submit([encoder.finish()]);
            let validation = pollster::block_on(scope.pop());
            match (result, validation) {
                (Err(Error::DeviceBuffer { .. }), None) => {}
                (result, validation) => failures.push(format!(
                    "{name}: {:?}, then {}",
                    result.map(|_| "recorded"),
                    validation.map_or("no validation error".into(), |e| format!("{e}")
                        .lines()
                        .map(str::trim)
                        .collect::<Vec<_>>()
                        .join(" "))
                )),
            }
        }
        assert!(
            failures.is_empty(),
            "{}: {}",
            engine.device(),
            failures.join("; ")
        );
    }
}
