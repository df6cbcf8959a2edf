//! A fused linear cross-entropy's request: the builder methods of a [`Request`] for cross-entropy
//! on the [N, V] logits of an output head ([`Linear`]), its check, and what it is checked into.

use super::builder::Request;
use super::check::{length, target_kind};
use super::check_host::check_finite;
use super::checked::{Checked, ShardInfo, ShardPass};
use super::kinds::{InputKind, LossKind};
use super::linear_head::{Linear, chunk_rows};
use super::shard::Shard;
use super::values::{Input, Target};
use crate::error::{Error, Result};
use crate::output::LinearGradsMut;

impl<'a> Request<'a> {
    /// Cross-entropy on the logits `hidden · weightᵀ` of an output head, as PyTorch's
    /// `F.linear_cross_entropy(hidden, weight, target)`, without the [N, V] logits ever being
    /// held: `hidden` is [N, D], `weight` [V, D], and `target` holds N class indices
    /// (`&[i64]`, `&[i32]`) or an [N, V] distribution. Every option of cross-entropy on logits
    /// applies. With [`with_grad`](Self::with_grad), the output holds the gradients of the
    /// hidden states, the weight and the bias.
    ///
    /// ```
    /// use xent::{Engine, Request};
    /// let hidden = [0.5_f32, -1.0, 2.0, 0.25]; // N = 2, D = 2
    /// let weight = [1.0_f32, 0.0, 0.0, 1.0, 1.0, 1.0]; // V = 3
    /// let request = Request::linear_cross_entropy(&hidden[..], [2, 2], &weight[..], [3, 2], &[2_i64, 0][..])
    ///     .linear_bias(&[0.0, 0.1, -0.1])
    ///     .with_grad(true);
    /// let out = Engine::cpu().compute(&request).unwrap();
    /// let grads = out.linear_grads.unwrap();
    /// assert_eq!((out.grad.unwrap().len(), grads.weight.len(), grads.bias.unwrap().len()), (4, 6, 3));
    /// ```
    pub fn linear_cross_entropy(
        hidden: impl Into<Input<'a>>,
        [rows, dim]: [usize; 2],
        weight: impl Into<Input<'a>>,
        [classes, weight_dim]: [usize; 2],
        target: impl Into<Target<'a>>,
    ) -> Self {
        let mut request = Self::new(
            LossKind::CrossEntropy,
            Input::F32(&[]),
            [rows, classes],
            target.into(),
        );
        request.linear = Some(Linear {
            hidden: hidden.into(),
            weight: weight.into(),
            bias: None,
            dim,
            weight_dim,
            chunk_bytes: None,
        });
        request
    }

    /// Sets the head's bias, `[V]` (a linear request's only; refused on others).
    #[must_use]
    pub fn linear_bias(mut self, bias: &'a [f32]) -> Self {
        match &mut self.linear {
            Some(linear) => linear.bias = Some(bias),
            None => self.misplaced = Some("linear_bias"),
        }
        self
    }

    /// Sets the most bytes of logits a chunk of rows holds (at least one row's, whatever the
    /// budget), which bounds the memory a linear request takes beyond its inputs and gradients;
    /// see [`DEFAULT_CHUNK_BYTES`](crate::DEFAULT_CHUNK_BYTES) for the default. The result does not depend on it beyond
    /// rounding, and never on the thread count.
    #[must_use]
    pub fn linear_chunk_bytes(mut self, bytes: usize) -> Self {
        match &mut self.linear {
            Some(linear) => linear.chunk_bytes = Some(bytes),
            None => self.misplaced = Some("linear_chunk_bytes"),
        }
        self
    }

    /// The head of a linear request.
    pub fn linear(&self) -> Option<&Linear<'a>> {
        self.linear.as_ref()
    }

    /// Checks a linear request: the head's shapes, the target against [N, V], the options of
    /// cross-entropy on logits, and in strict mode the head's values.
    pub(crate) fn check_linear(&self) -> Result<CheckedLinear<'a>> {
        self.check_linear_in(None)
    }

    /// Checks a linear request on one vocabulary shard: its weight (and bias, and class weights)
    /// hold the V_s classes [`first_class`, `first_class` + V_s) of the head's
    /// `total_classes`, its targets are the whole head's class indices, and its options are
    /// those of the pass, as [`check_shard`](Self::check_shard) checks a request on logits.
    pub(crate) fn check_linear_shard(
        &self,
        shard: Shard,
        pass: ShardPass,
    ) -> Result<CheckedLinear<'a>> {
        self.on_shard(shard, &pass)?
            .check_linear_in(Some(ShardInfo { shard, pass }))
    }

    /// The checks of [`check_linear`](Self::check_linear), in a vocabulary shard's pass when
    /// `shard` is given.
    fn check_linear_in(&self, shard: Option<ShardInfo>) -> Result<CheckedLinear<'a>> {
        let Some(linear) = self.linear else {
            return Err(Error::InvalidOption {
                option: "linear_weight",
                reason: "the request has no linear head; build it with \
                         Request::linear_cross_entropy"
                    .into(),
            });
        };
        let [rows, classes] = self.shape;
        let d = linear.dim;
        let o = &self.options;
        if self.loss != LossKind::CrossEntropy || o.input_kind != InputKind::Logits {
            // A linear request is built as cross-entropy: only its input kind can be changed.
            return Err(Error::Unsupported {
                option: "input kind",
                loss: "linear-cross-entropy",
                input_kind: o.input_kind.name(),
            });
        }
        if o.grad_in_place {
            return Err(Error::Unsupported {
                option: "grad_in_place",
                loss: "linear-cross-entropy",
                input_kind: o.input_kind.name(),
            });
        }
        let head = self.head();
        head.check(
            target_kind(&self.target),
            |_| {
                if linear.weight_dim != d {
                    return Err(Error::InvalidOption {
                        option: "linear_weight",
                        reason: format!(
                            "the weight's rows have {} columns, and the hidden states' {d}",
                            linear.weight_dim
                        ),
                    });
                }
                let hidden = rows
                    .checked_mul(d)
                    .ok_or_else(|| too_large("input", rows, d))?;
                length(
                    "input",
                    format!("[{rows}, {d}]"),
                    hidden,
                    linear.hidden.len(),
                )?;
                let weight = classes
                    .checked_mul(d)
                    .ok_or_else(|| too_large("linear_weight", classes, d))?;
                length(
                    "linear_weight",
                    format!("[{classes}, {d}]"),
                    weight,
                    linear.weight.len(),
                )?;
                match linear.bias {
                    Some(b) => length("linear_bias", format!("[{classes}]"), classes, b.len()),
                    None => Ok(()),
                }
            },
            |_| {
                if o.strict {
                    let hidden = (0..linear.hidden.len()).map(|i| linear.hidden.get(i));
                    check_finite("input", hidden, d.max(1))?;
                    let weight = (0..linear.weight.len()).map(|i| linear.weight.get(i));
                    check_finite("linear_weight", weight, d.max(1))?;
                    if let Some(b) = linear.bias {
                        check_finite("linear_bias", b.iter().copied(), classes)?;
                    }
                    if let Target::Dense(t) = self.target {
                        check_finite("target", t.iter().copied(), classes)?;
                    }
                }
                Ok(())
            },
        )?;
        let target = head.check_target(self.target, shard.as_ref().map(|s| s.shard))?;
        Ok(CheckedLinear {
            logits: Checked {
                loss: self.loss,
                input: Input::F32(&[]),
                batch: rows,
                classes,
                valid_rows: target.valid_rows(rows),
                target,
                weight: self.weight,
                pos_weight: None,
                options: self.options,
                shard,
            },
            head: linear,
        })
    }
}

fn too_large(what: &'static str, rows: usize, columns: usize) -> Error {
    Error::TooLarge {
        what,
        reason: format!("[{rows}, {columns}] has more elements than memory can address"),
    }
}

/// A checked linear request: cross-entropy on [N, V] logits that are not there (the input is
/// empty), and the head they come from.
#[derive(Debug)]
pub(crate) struct CheckedLinear<'a> {
    pub logits: Checked<'a>,
    pub head: Linear<'a>,
}

impl CheckedLinear<'_> {
    /// Checks the caller's gradient slices against the head: the hidden states' [N, D], the
    /// weight's [V, D], and the bias's `[V]` (none where the head has no bias).
    pub fn check_grads(&self, grads: &LinearGradsMut) -> Result<()> {
        let [n, v] = [self.logits.batch, self.logits.classes];
        let d = self.head.dim;
        let bias = if self.head.bias.is_some() { v } else { 0 };
        for (what, slice, expected) in [
            ("hidden states' gradient", grads.hidden.as_deref(), n * d),
            ("linear weight's gradient", grads.weight.as_deref(), v * d),
            ("linear bias's gradient", grads.bias.as_deref(), bias),
        ] {
            if let Some(slice) = slice
                && slice.len() != expected
            {
                let reason = if expected == 0 {
                    "the head has no bias".into()
                } else {
                    format!("it holds {} values, and needs {expected}", slice.len())
                };
                return Err(Error::InvalidOption {
                    option: what,
                    reason,
                });
            }
        }
        Ok(())
    }

    /// How many rows a chunk takes: as many as fit the request's byte budget, or the default's
    /// (see [`DEFAULT_CHUNK_BYTES`](crate::DEFAULT_CHUNK_BYTES)), at least one.
    pub fn chunk_rows(&self) -> usize {
        chunk_rows(
            [self.logits.batch, self.logits.classes],
            self.head.chunk_bytes,
        )
    }
}
