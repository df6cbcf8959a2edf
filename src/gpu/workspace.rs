//! The buffers of host calls, kept from one call for the next.

use super::buffer_pool::{Slot, Staging};

/// The buffers one host call uses, kept for the next. The mutex around it also serializes calls,
/// which the device would do anyway.
pub(crate) struct Workspace {
    pub staging: [Staging; 2],
    pub inputs: [Slot; 2],
    pub dense: [Slot; 2],
    pub elements: Slot,
    /// A linear request's chunk of logits, then of their gradient.
    pub logits: Slot,
    pub grad: Slot,
    pub class_targets: Slot,
    pub weight: Slot,
    pub pos_weight: Slot,
    pub empty: Slot,
    pub empty_writable: Slot,
    pub row_values: Slot,
    pub row_lse: Slot,
    pub partials: Slot,
    pub sums: [Slot; 2],
    pub params: Slot,
    pub readback: Slot,
    pub chunk_readback: [Slot; 2],
}

impl Workspace {
    pub fn new() -> Self {
        use wgpu::BufferUsages as U;
        let storage = U::STORAGE.union(U::COPY_DST);
        let output = U::STORAGE.union(U::COPY_SRC);
        Workspace {
            staging: [
                Staging::new("xent staging 0"),
                Staging::new("xent staging 1"),
            ],
            // An in-place gradient is copied out of the input chunk.
            inputs: [
                Slot::new("xent input chunk 0", storage.union(U::COPY_SRC)),
                Slot::new("xent input chunk 1", storage.union(U::COPY_SRC)),
            ],
            dense: [
                Slot::new("xent dense target chunk 0", storage),
                Slot::new("xent dense target chunk 1", storage),
            ],
            elements: Slot::new("xent elementwise values", output),
            logits: Slot::new("xent linear logits chunk", storage),
            grad: Slot::new("xent gradient chunk", output),
            class_targets: Slot::new("xent class targets", storage),
            weight: Slot::new("xent weight", storage),
            pos_weight: Slot::new("xent pos_weight", storage),
            empty: Slot::new("xent unused binding", storage),
            // A buffer bound read-write may share no dispatch with a read-only binding.
            empty_writable: Slot::new("xent unused writable binding", storage),
            row_values: Slot::new("xent row values", output),
            row_lse: Slot::new("xent row lse", output),
            partials: Slot::new("xent segment statistics", storage),
            sums: [
                Slot::new("xent partial sums 0", output),
                Slot::new("xent partial sums 1", output),
            ],
            params: Slot::new("xent params", U::UNIFORM.union(U::COPY_DST)),
            readback: Slot::new("xent readback", U::MAP_READ.union(U::COPY_DST)),
            chunk_readback: [
                Slot::new("xent chunk readback 0", U::MAP_READ.union(U::COPY_DST)),
                Slot::new("xent chunk readback 1", U::MAP_READ.union(U::COPY_DST)),
            ],
        }
    }

    /// Every slot.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        let single = [
            &self.elements,
            &self.logits,
            &self.grad,
            &self.class_targets,
            &self.weight,
            &self.pos_weight,
            &self.empty,
            &self.empty_writable,
            &self.row_values,
            &self.row_lse,
            &self.partials,
            &self.params,
            &self.readback,
        ];
        self.staging
            .iter()
            .map(|staging| &staging.slot)
            .chain(&self.inputs)
            .chain(&self.dense)
            .chain(&self.sums)
            .chain(&self.chunk_readback)
            .chain(single)
    }
}

/// The buffer a slot got earlier in this call.
pub(crate) fn current(slot: &Slot) -> &wgpu::Buffer {
    slot.current().expect("slot filled earlier in this call")
}
