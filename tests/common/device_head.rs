//! A linear head for the device-resident tests (`tests/linear_device*.rs`, which include this file
//! by path): its values on the host, the same values in buffers of a GPU engine's, the host and
//! device requests on them, and what each call gives, compared bit for bit.
#![allow(
    dead_code,
    reason = "each test crate uses a different part of this module"
)]

use rand::Rng;
use rand::rngs::StdRng;
use xent::io::Floats;
use xent::{
    DeviceGrad, DeviceInput, DeviceLinearGrads, DeviceLinearOutput, DeviceLinearRequest,
    DeviceTarget, DeviceVector, Dtype, Engine, IndexType, Loss, Options, Output, Reduction,
    Request, Target,
};

use crate::common::{self, GUARD, float_bytes, guarded_buffer, read_floats};

/// The GPU engines, each named in the output; none (with a message) where there is no adapter,
/// unless `XENT_REQUIRE_GPU=1`.
pub fn gpus(test: &str) -> &'static [Engine] {
    let gpus = common::gpus();
    common::check_expected_backends(gpus);
    if gpus.is_empty() {
        eprintln!(
            "{test}: no GPU adapter, nothing to check (set XENT_REQUIRE_GPU=1 to fail instead)"
        );
    }
    gpus
}

/// Every gradient into a new buffer of the output's.
pub fn all_new<'a>() -> DeviceLinearGrads<'a> {
    DeviceLinearGrads {
        hidden: DeviceGrad::New,
        weight: DeviceGrad::New,
        bias: DeviceGrad::New,
    }
}

/// Where a head's target is, and its type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum At {
    /// Class indices on the host, int64.
    HostI64,
    /// Class indices on the host, int32.
    HostI32,
    /// Class indices in a buffer.
    Device(IndexType),
    /// An [N, V] distribution in a buffer.
    DeviceDense,
}

/// A head on the host: H and W in their dtypes, b, class weights, the targets of every kind, the
/// options and the chunk size.
pub struct Head {
    /// [N, D, V].
    pub size: [usize; 3],
    pub hidden: Floats<'static>,
    pub weight: Floats<'static>,
    pub bias: Option<Vec<f32>>,
    pub class_weight: Option<Vec<f32>>,
    pub labels: Vec<i64>,
    pub labels32: Vec<i32>,
    pub soft: Vec<f32>,
    pub options: Options,
    /// Rows of a chunk (its byte budget's), when not the default's.
    pub chunk_rows: Option<usize>,
}

impl Head {
    /// H ~ N(0, 1) and W ~ N(0, 4/D) in `dtypes` (none of them zero), b ~ N(0, 1/4) when
    /// `bias`, class weights in [0.2, 2), class indices (each ignored with probability
    /// `ignored`) and soft targets; PyTorch's default options.
    pub fn draw(
        rng: &mut StdRng,
        [n, d, v]: [usize; 3],
        [h_dtype, w_dtype]: [Dtype; 2],
        bias: bool,
        ignored: f64,
    ) -> Self {
        let hidden = common::round_to(h_dtype, &common::logits(rng, n * d, 1.0));
        let scale = 2.0 / (d as f32).sqrt();
        let weight = common::round_to(w_dtype, &common::logits(rng, v * d, scale));
        let b = common::logits(rng, v, 0.5);
        let labels = common::targets(rng, n, v, ignored);
        Head {
            size: [n, d, v],
            hidden,
            weight,
            bias: bias.then_some(b),
            class_weight: Some((0..v).map(|_| rng.random_range(0.2..2.0)).collect()),
            labels32: labels.iter().map(|&t| t as i32).collect(),
            labels,
            soft: common::distribution(rng, n, v),
            options: Options::default(),
            chunk_rows: None,
        }
    }

    /// Each of the head's gradients into a new buffer (db only where it has a bias).
    pub fn new_grads(&self) -> DeviceLinearGrads<'static> {
        match self.bias {
            Some(_) => all_new(),
            None => DeviceLinearGrads {
                bias: DeviceGrad::Skip,
                ..all_new()
            },
        }
    }

    fn target(&self, at: At) -> Target<'_> {
        match at {
            At::HostI64 | At::Device(IndexType::I64) => Target::ClassesI64(&self.labels),
            At::HostI32 | At::Device(IndexType::I32) => Target::ClassesI32(&self.labels32),
            At::DeviceDense => Target::Dense(&self.soft),
        }
    }

    /// `r` with the head's options and class weights.
    fn with_options<'a>(&'a self, r: Request<'a>) -> Request<'a> {
        let o = &self.options;
        let mut r = r
            .reduction(o.reduction)
            .ignore_index(o.ignore_index)
            .label_smoothing(o.label_smoothing)
            .z_loss(o.z_loss)
            .base(o.base)
            .with_lse(o.lse);
        if let Some(cap) = o.softcap {
            r = r.softcap(cap);
        }
        if let Some(w) = &self.class_weight {
            r = r.weight(w);
        }
        r
    }

    /// The host request of the head, its target the same values as `at`'s.
    pub fn request(&self, at: At) -> Request<'_> {
        let [n, d, v] = self.size;
        let r = Request::linear_cross_entropy(
            self.hidden.as_input(),
            [n, d],
            self.weight.as_input(),
            [v, d],
            self.target(at),
        );
        let mut r = self.with_options(r);
        if let Some(b) = &self.bias {
            r = r.linear_bias(b);
        }
        if let Some(rows) = self.chunk_rows {
            r = r.linear_chunk_bytes(rows * v * 4);
        }
        r
    }

    /// What the host call on `engine` gives, with or without the gradients.
    pub fn host(&self, engine: &Engine, at: At, grad: bool) -> Results {
        let out = engine.compute(&self.request(at).with_grad(grad)).unwrap();
        Results::of(&out)
    }

    /// Bounds of the partial sums of dW and db (`common::product_magnitudes`), from the
    /// reference's G on the head's logits.
    pub fn product_magnitudes(&self, at: At) -> [Vec<f64>; 2] {
        let [n, d, v] = self.size;
        let hidden = self.hidden.to_f32();
        let weight = self.weight.to_f32();
        let logits = common::head_logits(&hidden, &weight, self.bias.as_deref(), self.size);
        let on_logits = Request::cross_entropy(&logits[..], [n, v], self.target(at));
        let on_logits = self.with_options(on_logits).with_grad(true);
        let g = Engine::reference()
            .compute(&on_logits)
            .unwrap()
            .grad
            .unwrap();
        common::product_magnitudes(&g, &hidden, [n, d, v])
    }
}

/// A head's values in buffers of one engine's device, each at `GUARD` between guard bytes.
pub struct OnDevice {
    pub hidden: wgpu::Buffer,
    pub weight: wgpu::Buffer,
    pub bias: wgpu::Buffer,
    pub labels: wgpu::Buffer,
    pub labels32: wgpu::Buffer,
    pub soft: wgpu::Buffer,
}

impl OnDevice {
    pub fn new(engine: &Engine, head: &Head) -> Self {
        let f32s = |v: &[f32]| guarded_buffer(engine, bytemuck::cast_slice(v));
        OnDevice {
            hidden: guarded_buffer(engine, float_bytes(&head.hidden)),
            weight: guarded_buffer(engine, float_bytes(&head.weight)),
            bias: f32s(head.bias.as_deref().unwrap_or(&[1.0])),
            labels: guarded_buffer(engine, bytemuck::cast_slice(&head.labels)),
            labels32: guarded_buffer(engine, bytemuck::cast_slice(&head.labels32)),
            soft: f32s(&head.soft),
        }
    }

    /// The device request of `head` on these buffers, its target where `at` says.
    pub fn request<'a>(
        &'a self,
        head: &'a Head,
        at: At,
        grads: DeviceLinearGrads<'a>,
    ) -> DeviceLinearRequest<'a> {
        let [n, d, v] = head.size;
        let input = |buffer, shape, values: &Floats| DeviceInput {
            buffer,
            offset: GUARD,
            shape,
            dtype: values.as_input().dtype(),
        };
        let target = match at {
            At::HostI64 | At::HostI32 => DeviceTarget::Host(head.target(at)),
            At::Device(index) => DeviceTarget::Classes {
                buffer: match index {
                    IndexType::I64 => &self.labels,
                    IndexType::I32 => &self.labels32,
                },
                offset: GUARD,
                index,
            },
            At::DeviceDense => DeviceTarget::Dense {
                buffer: &self.soft,
                offset: GUARD,
            },
        };
        let mut request = DeviceLinearRequest::new(
            input(&self.hidden, [n, d], &head.hidden),
            input(&self.weight, [v, d], &head.weight),
            target,
        );
        request.bias = head.bias.as_ref().map(|_| DeviceVector {
            buffer: &self.bias,
            offset: GUARD,
        });
        request.class_weight = head.class_weight.as_deref();
        request.options = head.options;
        request.chunk_bytes = head.chunk_rows.map(|rows| rows * v * 4);
        request.grads = grads;
        request
    }

    /// Records the head into an encoder of its own, and submits it.
    pub fn record(
        &self,
        engine: &Engine,
        head: &Head,
        at: At,
        grads: DeviceLinearGrads,
    ) -> DeviceLinearOutput {
        let (device, queue) = engine.wgpu().unwrap();
        let mut encoder = device.create_command_encoder(&Default::default());
        let request = self.request(head, at, grads);
        let out = engine.record_linear(&mut encoder, &request).unwrap();
        queue.submit([encoder.finish()]);
        out
    }

    /// What one device call gives (its gradients in new buffers, or skipped).
    pub fn run(&self, engine: &Engine, head: &Head, at: At, grads: DeviceLinearGrads) -> Results {
        for grad in [grads.hidden, grads.weight, grads.bias] {
            assert!(matches!(grad, DeviceGrad::New | DeviceGrad::Skip));
        }
        let out = self.record(engine, head, at, grads);
        self.read(engine, head, &out)
    }

    /// Reads what a call left: the loss, lse, and the gradients in new buffers (from byte 0).
    pub fn read(&self, engine: &Engine, head: &Head, out: &DeviceLinearOutput) -> Results {
        let [n, d, v] = head.size;
        let loss = match head.options.reduction {
            Reduction::None => {
                engine.check_targets(&out.loss).unwrap();
                let values = out.loss.values.as_ref().expect("the rows' losses");
                read_floats(engine, values, 0, n)
            }
            _ => vec![engine.read_loss(&out.loss).unwrap()],
        };
        let whole = |buffer: &Option<wgpu::Buffer>, len| {
            buffer
                .as_ref()
                .map_or_else(Vec::new, |b| read_floats(engine, b, 0, len))
        };
        Results {
            loss,
            lse: whole(&out.loss.lse, n),
            grads: [
                whole(&out.hidden, n * d),
                whole(&out.weight, v * d),
                whole(&out.bias, v),
            ],
        }
    }
}

/// What a call gives: the loss (a scalar, or each row's), the lse, and dH, dW and db; each empty
/// where not computed.
#[derive(Debug)]
pub struct Results {
    pub loss: Vec<f32>,
    pub lse: Vec<f32>,
    pub grads: [Vec<f32>; 3],
}

impl Results {
    pub fn of(out: &Output) -> Self {
        let grads = out.linear_grads.as_ref();
        Results {
            loss: match &out.loss {
                Loss::Scalar(v) => vec![*v],
                Loss::Unreduced { values, .. } => values.clone(),
            },
            lse: out.lse.clone().unwrap_or_default(),
            grads: [
                out.grad.clone().unwrap_or_default(),
                grads.map(|g| g.weight.clone()).unwrap_or_default(),
                grads.and_then(|g| g.bias.clone()).unwrap_or_default(),
            ],
        }
    }

    /// Asserts every part of `got` has these bits (NaN matching NaN), and these are finite.
    pub fn assert_same(&self, what: &str, got: &Results) {
        let parts = [&self.loss, &self.lse].into_iter().chain(&self.grads);
        assert!(
            parts.flatten().all(|x| x.is_finite()),
            "{what}: a value expected is not finite"
        );
        same_bits(&format!("{what}: loss"), &got.loss, &self.loss);
        same_bits(&format!("{what}: lse"), &got.lse, &self.lse);
        self.assert_grads_same(what, &got.grads);
    }

    /// Asserts the gradients `got` (dH, dW, db) have these bits.
    pub fn assert_grads_same(&self, what: &str, got: &[Vec<f32>]) {
        for ((name, got), want) in ["dH", "dW", "db"].iter().zip(got).zip(&self.grads) {
            same_bits(&format!("{what}: {name}"), got, want);
        }
    }
}

/// Asserts `got` has `want`'s bits, NaN matching NaN.
pub fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what}: index {i}: got {g:e}, expected {w:e}"
        );
    }
}
