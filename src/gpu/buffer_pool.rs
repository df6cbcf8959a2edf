//! The engine's reused buffers. Each slot keeps one buffer and replaces it only when a call needs
//! a larger one, rounding the size up to a power of two so that growth is rare; a staging slot
//! also keeps its mapping state.

/// One reusable buffer of a fixed usage.
pub(crate) struct Slot {
    label: &'static str,
    usage: wgpu::BufferUsages,
    buffer: Option<wgpu::Buffer>,
}

impl Slot {
    pub const fn new(label: &'static str, usage: wgpu::BufferUsages) -> Self {
        Slot {
            label,
            usage,
            buffer: None,
        }
    }

    /// A buffer of at least `size` bytes, and whether it was just created (a MAP_WRITE buffer is
    /// created mapped).
    pub fn get(&mut self, device: &wgpu::Device, size: u64) -> (&wgpu::Buffer, bool) {
        let fresh = self.buffer.as_ref().is_none_or(|b| b.size() < size);
        if fresh {
            let limit = device.limits().max_buffer_size;
            let class = size.next_power_of_two().clamp(256, limit.max(size));
            self.buffer = Some(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(self.label),
                size: class,
                usage: self.usage,
                mapped_at_creation: self.usage.contains(wgpu::BufferUsages::MAP_WRITE),
            }));
        }
        (self.buffer.as_ref().expect("slot was just filled"), fresh)
    }

    /// The buffer of the last `get`.
    pub fn current(&self) -> Option<&wgpu::Buffer> {
        self.buffer.as_ref()
    }

    /// Bytes of the buffer this slot holds.
    pub fn bytes(&self) -> u64 {
        self.buffer.as_ref().map_or(0, wgpu::Buffer::size)
    }
}

/// A MAP_WRITE staging buffer, whether it is mapped now, and the submission that last copied out
/// of it (which a new mapping must wait for, and nothing later).
pub(crate) struct Staging {
    pub slot: Slot,
    pub mapped: bool,
    pub copied: Option<wgpu::SubmissionIndex>,
}

impl Staging {
    pub const fn new(label: &'static str) -> Self {
        Staging {
            slot: Slot::new(
                label,
                wgpu::BufferUsages::MAP_WRITE.union(wgpu::BufferUsages::COPY_SRC),
            ),
            mapped: false,
            copied: None,
        }
    }
}
