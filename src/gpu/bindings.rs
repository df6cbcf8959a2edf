//! The bindings of every module, one table each. A table is declared once, as the struct of
//! buffers that a pass binds; its bind group layout, its bind groups and the module's WGSL
//! declarations (prepended to the module's source by `shaders.rs`) all follow from it, so that
//! binding i names the same buffer, with the same access, on both sides.

/// How a kernel may use a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// The params, read at each pass's dynamic offset.
    Uniform,
    /// Storage the kernel only reads.
    Read,
    /// Storage the kernel writes.
    ReadWrite,
}

impl Access {
    /// The WGSL address space of a binding with this access.
    fn address_space(self) -> &'static str {
        match self {
            Access::Uniform => "uniform",
            Access::Read => "storage, read",
            Access::ReadWrite => "storage, read_write",
        }
    }

    fn binding_type(self) -> wgpu::BindingType {
        let ty = match self {
            Access::Uniform => wgpu::BufferBindingType::Uniform,
            Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
            Access::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
        };
        wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: self == Access::Uniform,
            min_binding_size: None,
        }
    }
}

/// One binding of a module: its name and type in WGSL, and how the kernels use it. Its index is
/// its place in the module's table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Binding {
    name: &'static str,
    access: Access,
    ty: &'static str,
}

/// The layout of a module's bind group, from its table.
pub(crate) fn layout_entries(table: &[Binding]) -> Vec<wgpu::BindGroupLayoutEntry> {
    table
        .iter()
        .zip(0..)
        .map(|(b, binding)| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: b.access.binding_type(),
            count: None,
        })
        .collect()
}

/// A module's WGSL binding declarations, from its table, one a line.
pub(crate) fn declarations(table: &[Binding]) -> String {
    table
        .iter()
        .zip(0..)
        .map(|(b, binding)| {
            let space = b.access.address_space();
            format!(
                "@group(0) @binding({binding}) var<{space}> {}: {};\n",
                b.name, b.ty
            )
        })
        .collect()
}

/// A range of a buffer bound to a kernel.
#[derive(Clone, Copy)]
pub(crate) struct Bound<'b> {
    buffer: &'b wgpu::Buffer,
    offset: u64,
    size: Option<wgpu::BufferSize>,
}

impl<'b> Bound<'b> {
    /// The whole buffer.
    pub fn whole(buffer: &'b wgpu::Buffer) -> Self {
        Bound {
            buffer,
            offset: 0,
            size: None,
        }
    }

    /// `size` bytes from `offset`.
    pub fn range(buffer: &'b wgpu::Buffer, offset: u64, size: u64) -> Self {
        Bound {
            buffer,
            offset,
            size: wgpu::BufferSize::new(size),
        }
    }

    /// One `P` of a params buffer, which each pass reads at its own dynamic offset.
    pub fn params<P: bytemuck::Pod>(buffer: &'b wgpu::Buffer) -> Self {
        Self::range(buffer, 0, size_of::<P>() as u64)
    }

    fn entry(self, binding: u32) -> wgpu::BindGroupEntry<'b> {
        wgpu::BindGroupEntry {
            binding,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: self.buffer,
                offset: self.offset,
                size: self.size,
            }),
        }
    }
}

impl<'b> From<&'b wgpu::Buffer> for Bound<'b> {
    fn from(buffer: &'b wgpu::Buffer) -> Self {
        Bound::whole(buffer)
    }
}

/// A bind group of `bounds`, binding i the i-th.
fn bind_group<const N: usize>(
    device: &wgpu::Device,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    bounds: [Bound; N],
) -> wgpu::BindGroup {
    let entries: [wgpu::BindGroupEntry; N] = std::array::from_fn(|i| bounds[i].entry(i as u32));
    device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// Declares a module's binding table as the struct of buffers a pass binds: field i is binding i,
/// declared in WGSL as `var<ACCESS> NAME: TYPE`. The struct gets the table (`TABLE`) and `bind`,
/// which makes its bind group.
macro_rules! binding_tables {
    ($(
        $(#[$doc:meta])*
        $name:ident($label:literal) {
            $(
                $(#[$field_doc:meta])*
                $field:ident: $ty:ty => $access:ident $wgsl:ident: $wgsl_ty:literal,
            )+
        }
    )+) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub(crate) struct $name<'b> {
            $(
                $(#[$field_doc])*
                pub $field: $ty,
            )+
        }

        impl $name<'_> {
            /// The module's bindings, in binding order.
            pub const TABLE: &'static [Binding] = &[$(Binding {
                name: stringify!($wgsl),
                access: Access::$access,
                ty: $wgsl_ty,
            }),+];

            /// The bind group of these buffers, for a pipeline of the module.
            pub fn bind(
                &self,
                device: &wgpu::Device,
                layout: &wgpu::BindGroupLayout,
            ) -> wgpu::BindGroup {
                bind_group(device, $label, layout, [$(Bound::from(self.$field)),+])
            }
        }
    )+};
}

binding_tables! {
    /// What a row kernel binds (rows*.wgsl and the loss families). A chunk's buffers hold its
    /// rows from 0; "of the whole batch" buffers are indexed by `row_base` + the chunk's row.
    RowBindings("xent rows") {
        /// The chunk's `Params` (rows_params.wgsl).
        params: Bound<'b> => Uniform params: "Params",
        /// The chunk's input, row-major, in 16-byte words: four f32 or eight 16-bit values. Row
        /// starts need not be word aligned: loads work on quads of four elements and mask the
        /// ends of a row. Writable only for the in-place gradient.
        input: Bound<'b> => ReadWrite input_words: "array<vec4<u32>>",
        /// The encoded class targets of the whole batch.
        class_targets: &'b wgpu::Buffer => Read class_targets: "array<u32>",
        /// The chunk's dense targets ([rows, classes] f32), laid out as the input.
        dense: Bound<'b> => Read dense: "array<vec4<f32>>",
        /// The class weights.
        weight: &'b wgpu::Buffer => Read weight: "array<f32>",
        /// BCE's positive weights, per class.
        pos_weight: &'b wgpu::Buffer => Read pos_weight: "array<f32>",
        /// Per-row values of the whole batch, or per-element values of the chunk for
        /// `elementwise`.
        values: Bound<'b> => ReadWrite values: "array<f32>",
        /// Each row's lse, of the whole batch.
        lse: &'b wgpu::Buffer => ReadWrite row_lse: "array<f32>",
        /// The chunk's gradient, row-major in the words of the input's layout (f32 bits, or
        /// packed 16-bit values with GRAD_PACKED), when it is not written in place.
        grad: Bound<'b> => ReadWrite grad_out: "array<vec4<u32>>",
        /// Split rows: the statistics of segment s of chunk row r at r·segments + s; after
        /// `merge_segments` (or with KEEP_STATS), the row's at r·segments.
        partials: &'b wgpu::Buffer => ReadWrite partials: "array<Stats>",
        /// With DEVICE_SCALES: the main and z-loss scales, in place of the params'.
        scales: &'b wgpu::Buffer => Read scales: "array<f32>",
        /// With GRAD_PACKED: the gradient of chunk row r's first element at 2r, and of its last
        /// at 2r + 1, where they share a 16-bit word with another row.
        edges: &'b wgpu::Buffer => ReadWrite edges: "array<f32>",
    }

    /// What a pass of the device-side sum binds (reduce.wgsl).
    ReduceBindings("xent reduce pass") {
        /// The pass's `Params` (reduce.wgsl).
        params: Bound<'b> => Uniform params: "Params",
        /// The values to sum.
        values: &'b wgpu::Buffer => Read values: "array<f32>",
        /// One sum per workgroup.
        sums: &'b wgpu::Buffer => ReadWrite sums: "array<f32>",
    }

    /// What a pass of the bandwidth probe binds (probe.wgsl).
    ProbeBindings("xent probe") {
        /// The pass's `Params` (probe.wgsl).
        params: Bound<'b> => Uniform params: "Params",
        /// The bytes to read.
        data: &'b wgpu::Buffer => Read data: "array<vec4<f32>>",
        /// One sum per workgroup.
        sums: &'b wgpu::Buffer => ReadWrite sums: "array<f32>",
    }

    /// What a matrix product or a column sum binds (gemm.wgsl): the smallest ranges of the
    /// buffers it reads and writes, each from an aligned start; the params locate the matrices
    /// within them.
    GemmBindings("xent gemm") {
        /// The pass's `Params` (gemm.wgsl).
        params: Bound<'b> => Uniform params: "Params",
        /// A's elements (f32, or two 16-bit values a word, the lower first).
        a: Bound<'b> => Read a: "array<u32>",
        /// B's elements, as A's.
        b: Bound<'b> => Read b: "array<u32>",
        /// The bias; bound to A's range where the product has none (it is then never read).
        bias: Bound<'b> => Read bias: "array<f32>",
        /// C, written (or read and written, to accumulate).
        c: Bound<'b> => ReadWrite c: "array<f32>",
        /// A's range again, read 16 bytes at a time by the CPU adapters' kernels.
        a_quads: Bound<'b> => Read a_quads: "array<vec4<u32>>",
        /// B's range again, as `a_quads`.
        b_quads: Bound<'b> => Read b_quads: "array<vec4<u32>>",
    }

    /// What the device's check and encoding of class targets binds (targets.wgsl).
    TargetBindings("xent targets") {
        /// The call's `Params` (targets.wgsl).
        params: Bound<'b> => Uniform params: "Params",
        /// The targets as given: i64 (two u32 words each, low first), or i32.
        raw: Bound<'b> => Read raw: "array<u32>",
        /// The class weights' bits: they are only summed exactly, never computed with.
        weight: &'b wgpu::Buffer => Read weight: "array<u32>",
        /// The encoded targets: the class (from `first`), IGNORED, ELSEWHERE or BAD.
        encoded: &'b wgpu::Buffer => ReadWrite encoded: "array<u32>",
        /// Per row: the bits of w_y (0 for an ignored or bad row) at r, and 1 for a counted row
        /// (else 0) at rows + r.
        counts: &'b wgpu::Buffer => ReadWrite counts: "array<u32>",
        /// The first row whose target is out of range (0xffffffff: none), then that target's
        /// two words.
        status: &'b wgpu::Buffer => ReadWrite status: "array<atomic<u32>>",
        /// The main and z-loss scales of the mean: 1 / (ln · Σ w_y) and 1 / (counted rows).
        scales: &'b wgpu::Buffer => ReadWrite scales: "array<f32>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_follow_the_table_in_order() {
        assert_eq!(
            declarations(ReduceBindings::TABLE),
            "@group(0) @binding(0) var<uniform> params: Params;\n\
             @group(0) @binding(1) var<storage, read> values: array<f32>;\n\
             @group(0) @binding(2) var<storage, read_write> sums: array<f32>;\n"
        );
    }

    #[test]
    fn the_layout_follows_the_table() {
        let entries = layout_entries(RowBindings::TABLE);
        assert_eq!(entries.len(), 12);
        for (entry, binding) in entries.iter().zip(RowBindings::TABLE) {
            let wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset,
                ..
            } = entry.ty
            else {
                panic!("{} is not a buffer", binding.name);
            };
            assert_eq!(has_dynamic_offset, binding.access == Access::Uniform);
            let read_only = matches!(ty, wgpu::BufferBindingType::Storage { read_only: true });
            assert_eq!(
                read_only,
                binding.access == Access::Read,
                "{}",
                binding.name
            );
        }
    }
}
