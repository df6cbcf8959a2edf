//! A host call: its plan recorded on the engine's reused buffers, its input uploaded chunk by
//! chunk through the staging buffers, and its results read back.

use std::collections::VecDeque;
use std::ops::Range;

use super::bindings::{Bound, RowBindings};
use super::buffer_pool::Slot;
use super::chunk::WORD_BYTES;
use super::plan::{Call, Plan, SharedBuffers};
use super::timing::Timing;
use super::workspace::{Workspace, current};
use super::{GpuEngine, UNUSED_BYTES, rows};
use crate::error::Result;
use crate::output::{KernelTime, Loss, Output};
use crate::request::{Checked, CheckedTarget};

/// A chunk's results copied to a readback buffer by submission `after`, not yet read: its
/// gradient (when `grad`) and then its elementwise values, of `elements` of the batch.
struct Pending {
    buffer: wgpu::Buffer,
    after: wgpu::SubmissionIndex,
    elements: Range<usize>,
    grad: bool,
}

/// Where a call's per-row results come back, in one readback buffer: the loss (the scalar, or
/// each row's values) in its first `loss_bytes`, then each row's lse; `len` bytes in all. A
/// chunk's gradient and elementwise values come back chunk by chunk instead (see
/// `drain_chunk`), so that device memory stays bounded.
pub(super) struct RowReadback {
    loss_bytes: u64,
    len: u64,
}

impl RowReadback {
    /// Where `plan`'s per-row results come back.
    pub(super) fn of(plan: &Plan) -> Self {
        let call = &plan.call;
        let loss_bytes = match (call.scalar, call.elementwise || call.merged.is_some()) {
            (true, _) => 4,
            (false, true) => 0,
            (false, false) => call.row_values_bytes(),
        };
        RowReadback {
            loss_bytes,
            len: loss_bytes
                + if call.spec.options.lse {
                    call.row_bytes()
                } else {
                    0
                },
        }
    }
}

impl GpuEngine {
    /// Computes a checked request; the gradient, when asked for, goes into `grad`. With `timed`,
    /// the kernel time comes back too.
    pub fn compute(
        &self,
        req: &Checked,
        grad: Option<&mut [f32]>,
        timed: bool,
    ) -> Result<(Output, Option<KernelTime>)> {
        let mut ws = self.workspace();
        self.ctx
            .scoped(req.loss.name(), || self.run(&mut ws, req, grad, timed))
    }

    fn run(
        &self,
        ws: &mut Workspace,
        req: &Checked,
        mut grad: Option<&mut [f32]>,
        timed: bool,
    ) -> Result<(Output, Option<KernelTime>)> {
        let call = Call::host(self, req)?;
        let unreduced = |values: Vec<f32>| Loss::Unreduced {
            values,
            shape: req.unreduced_shape(),
        };
        if let Some(empty) = call.empty() {
            let empty = Output {
                loss: empty
                    .scalar
                    .map_or_else(|| unreduced(Vec::new()), Loss::Scalar),
                lse: req.options.lse.then(Vec::new),
                grad: None,
                valid_rows: 0,
                linear_grads: None,
            };
            return Ok((empty, None));
        }
        let plan = Plan::new(self, call)?;
        let call = &plan.call;
        let readback = RowReadback::of(&plan);
        let mut element_values = vec![0.0_f32; if call.elementwise { req.elements() } else { 0 }];
        let shared = self.prepare_host(ws, &plan, req, &readback);
        let timed_passes = plan.passes();
        let mut timing = Timing::new(&self.ctx, timed || plan.trial.is_some(), timed_passes);
        let mut pending = VecDeque::new();
        for k in 0..plan.chunks.len() {
            // Chunk k's results go where chunk k - 2's are still waiting to be read.
            if pending.len() == 2 {
                let done = pending.pop_front().expect("two pending");
                self.drain_chunk(&done, grad.as_deref_mut(), &mut element_values)?;
            }
            let run = (&plan, req, &shared);
            pending.extend(self.run_chunk(ws, run, &mut timing, k, grad.is_some())?);
        }
        let (row_loss, lse) = self.read_rows(ws, &plan, &mut timing, &readback)?;
        for done in pending {
            self.drain_chunk(&done, grad.as_deref_mut(), &mut element_values)?;
        }
        let loss = if call.elementwise {
            unreduced(element_values)
        } else if !call.scalar {
            unreduced(row_loss)
        } else if req.divisors().is_some() {
            // The device's fixed-order tree sum of the scaled rows, not `request::scalar`'s
            // division of f64 sums: the host path gives the same bits as a device call.
            Loss::Scalar(row_loss[0])
        } else {
            Loss::Scalar(0.0)
        };
        let output = Output {
            loss,
            lse: req.options.lse.then_some(lse),
            grad: None,
            valid_rows: req.valid_rows,
            linear_grads: None,
        };
        let time = timing.finish(&self.ctx)?;
        if let (Some(trial), Some(t)) = (plan.trial, time) {
            self.tuner
                .record(trial, t.seconds / req.elements().max(1) as f64);
        }
        Ok((output, time.filter(|_| timed)))
    }

    /// Writes the call's params, uploads its class targets and weights, and sizes the buffers of
    /// its per-row results and their readback; returns the buffers every chunk binds alike.
    pub(super) fn prepare_host(
        &self,
        ws: &mut Workspace,
        plan: &Plan,
        req: &Checked,
        readback: &RowReadback,
    ) -> SharedBuffers {
        let device = &self.ctx.device;
        let queue = &self.ctx.queue;
        queue.write_buffer(
            ws.params.get(device, plan.arena.bytes.len() as u64).0,
            0,
            &plan.arena.bytes,
        );
        let upload = |slot: &mut Slot, bytes: &[u8]| {
            queue.write_buffer(slot.get(device, bytes.len() as u64).0, 0, bytes);
        };
        if let CheckedTarget::Classes(t) = &req.target {
            upload(&mut ws.class_targets, bytemuck::cast_slice(t));
        }
        if let Some(w) = req.weight {
            upload(&mut ws.weight, bytemuck::cast_slice(w));
        }
        if let Some(w) = req.pos_weight {
            upload(&mut ws.pos_weight, bytemuck::cast_slice(w));
        }
        ws.empty.get(device, UNUSED_BYTES);
        ws.empty_writable.get(device, UNUSED_BYTES);
        ws.row_values.get(device, plan.call.row_values_bytes());
        ws.row_lse.get(device, plan.call.row_bytes());
        ws.readback.get(device, readback.len);
        let partials = match plan.partials {
            Some(bytes) => ws.partials.get(device, bytes).0.clone(),
            None => current(&ws.empty_writable).clone(),
        };
        let or_empty =
            |slot: &Slot, used: bool| current(if used { slot } else { &ws.empty }).clone();
        SharedBuffers {
            params: current(&ws.params).clone(),
            class_targets: or_empty(
                &ws.class_targets,
                matches!(req.target, CheckedTarget::Classes(_)),
            ),
            weight: or_empty(&ws.weight, req.weight.is_some()),
            pos_weight: or_empty(&ws.pos_weight, req.pos_weight.is_some()),
            partials,
            scales: current(&ws.empty).clone(),
            edges: current(&ws.empty_writable).clone(),
            empty: current(&ws.empty).clone(),
            empty_writable: current(&ws.empty_writable).clone(),
        }
    }

    /// Uploads chunk `k`, records its passes and the copies of its gradient (when `grad`) and
    /// elementwise values into a readback buffer, and submits them; returns what is to be read.
    fn run_chunk(
        &self,
        ws: &mut Workspace,
        (plan, req, shared): (&Plan, &Checked, &SharedBuffers),
        timing: &mut Timing,
        k: usize,
        grad: bool,
    ) -> Result<Option<Pending>> {
        let device = &self.ctx.device;
        let rows = &plan.chunks[k];
        let elements = rows.start * req.classes..rows.end * req.classes;
        let input = req.input.bytes(elements.clone());
        let input_bound = (input.len() as u64).next_multiple_of(WORD_BYTES);
        let dense_bytes: &[u8] = match &req.target {
            CheckedTarget::Dense(t) => bytemuck::cast_slice(&t[elements.clone()]),
            _ => &[],
        };
        self.upload_chunk(ws, k, input, dense_bytes)?;
        let mut encoder = device.create_command_encoder(&Default::default());
        let input_buf = current(&ws.inputs[k % 2]);
        let dense_bound = (dense_bytes.len() as u64).next_multiple_of(WORD_BYTES);
        let dense_buf = if dense_bytes.is_empty() {
            &shared.empty
        } else {
            current(&ws.dense[k % 2])
        };
        // The gradient's bytes, and the elementwise values'.
        let f32_bytes = elements.len() as u64 * 4;
        let separate_grad = grad && plan.call.separate_grad();
        let grad_buf = if separate_grad {
            ws.grad
                .get(device, f32_bytes.next_multiple_of(WORD_BYTES))
                .0
                .clone()
        } else {
            shared.empty_writable.clone()
        };
        let bindings = RowBindings {
            params: Bound::params::<rows::Params>(&shared.params),
            input: Bound::range(input_buf, 0, input_bound),
            class_targets: &shared.class_targets,
            dense: Bound::range(dense_buf, 0, dense_bound.max(WORD_BYTES)),
            weight: &shared.weight,
            pos_weight: &shared.pos_weight,
            values: Bound::whole(current(&ws.row_values)),
            lse: current(&ws.row_lse),
            grad: Bound::whole(&grad_buf),
            partials: &shared.partials,
            scales: &shared.scales,
            edges: &shared.edges,
        };
        if let Some(stats) = plan.merged_partials(k) {
            let partials = &shared.partials;
            self.ctx
                .queue
                .write_buffer(partials, 0, bytemuck::cast_slice(&stats));
        }
        let element_out = plan
            .elementwise
            .is_some()
            .then(|| ws.elements.get(device, f32_bytes).0.clone());
        let values = element_out
            .as_ref()
            .map(|out| Bound::range(out, 0, f32_bytes));
        plan.record_chunk(self, (timing, &mut encoder), k, &bindings, values)?;
        let elementwise = element_out.is_some();
        let chunk_readback = if grad || elementwise {
            let bytes = f32_bytes * (u64::from(grad) + u64::from(elementwise));
            Some(ws.chunk_readback[k % 2].get(device, bytes).0.clone())
        } else {
            None
        };
        if let (true, Some(to)) = (grad, &chunk_readback) {
            let source = if separate_grad { &grad_buf } else { input_buf };
            encoder.copy_buffer_to_buffer(source, 0, to, 0, f32_bytes);
        }
        if let Some(out) = &element_out {
            let at = if grad { f32_bytes } else { 0 };
            let to = chunk_readback
                .as_ref()
                .expect("elementwise values come back");
            encoder.copy_buffer_to_buffer(out, 0, to, at, f32_bytes);
        }
        let submitted = self.ctx.queue.submit([encoder.finish()]);
        Ok(chunk_readback.map(|buffer| Pending {
            buffer,
            after: submitted,
            elements,
            grad,
        }))
    }

    /// Records the reduction and the copies of the per-row results into the readback buffer,
    /// submits them, maps the staging buffers again in the same wait (so that the next call can
    /// write into them at once), and returns the loss part and the lse part of the readback.
    pub(super) fn read_rows(
        &self,
        ws: &mut Workspace,
        plan: &Plan,
        timing: &mut Timing,
        readback: &RowReadback,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let device = &self.ctx.device;
        let buffer = current(&ws.readback).clone();
        let loss_bytes = readback.loss_bytes;
        let mut encoder = device.create_command_encoder(&Default::default());
        let sum = plan.record_reduce(
            self,
            (timing, &mut encoder),
            current(&ws.params),
            current(&ws.row_values).clone(),
            |i, bytes| Ok(ws.sums[i % 2].get(device, bytes).0.clone()),
        )?;
        match sum {
            Some(sum) => encoder.copy_buffer_to_buffer(&sum, 0, &buffer, 0, 4),
            None if !plan.call.elementwise => {
                encoder.copy_buffer_to_buffer(current(&ws.row_values), 0, &buffer, 0, loss_bytes);
            }
            None => {}
        }
        if plan.call.spec.options.lse {
            let row_bytes = plan.call.row_bytes();
            encoder.copy_buffer_to_buffer(current(&ws.row_lse), 0, &buffer, loss_bytes, row_bytes);
        }
        self.ctx.queue.submit([encoder.finish()]);
        self.remap_staging(ws, Some(&buffer))?;
        // Straight from the mapped bytes into f32 storage: no intermediate copy, and no
        // assumption about the mapping's alignment.
        let floats = |bytes: &[u8]| {
            let mut out = vec![0.0_f32; bytes.len() / 4];
            bytemuck::cast_slice_mut(&mut out).copy_from_slice(bytes);
            out
        };
        let rows = {
            let view = buffer.get_mapped_range(..readback.len.max(4))?;
            (
                floats(&view[..loss_bytes as usize]),
                floats(&view[loss_bytes as usize..readback.len as usize]),
            )
        };
        buffer.unmap();
        Ok(rows)
    }

    /// Reads one chunk's results back, once the submission that copied them is done: its
    /// gradient into `grad`, then its elementwise values into `values`, at its elements.
    fn drain_chunk(
        &self,
        done: &Pending,
        grad: Option<&mut [f32]>,
        values: &mut [f32],
    ) -> Result<()> {
        let count = done.elements.len();
        self.ctx
            .map_after(&done.buffer, wgpu::MapMode::Read, Some(done.after.clone()))?;
        {
            let view = done.buffer.get_mapped_range(..)?;
            let mut at = 0;
            if let (true, Some(grad)) = (done.grad, grad) {
                bytemuck::cast_slice_mut(&mut grad[done.elements.clone()])
                    .copy_from_slice(&view[..count * 4]);
                at = count * 4;
            }
            if !values.is_empty() {
                bytemuck::cast_slice_mut(&mut values[done.elements.clone()])
                    .copy_from_slice(&view[at..at + count * 4]);
            }
        }
        done.buffer.unmap();
        Ok(())
    }
}
