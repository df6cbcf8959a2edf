//! Host side of `shaders/reduce.wgsl` and `shaders/tree_sum.wgsl`: the chain of passes that sums
//! n values to one, in a fixed-order tree.

use super::pipelines::Key;
use super::shaders::{Module, REDUCE_ITEMS, REDUCE_WORKGROUP};

/// Mirrors `Params` in `reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct Params {
    pub n: u32,
    pub _pad: [u32; 3],
}

/// Values one workgroup sums.
const BLOCK: u32 = REDUCE_WORKGROUP * REDUCE_ITEMS;

pub(crate) fn key() -> Key {
    Key {
        module: Module::Reduce,
        entry: "reduce_sum",
        constants: Vec::new(),
    }
}

/// The passes that take `n` values (n ≥ 1) to one: each pass's workgroups and params.
pub(crate) fn passes(n: u32) -> Vec<(u32, Params)> {
    let mut passes = Vec::new();
    let mut n = n;
    loop {
        let groups = n.div_ceil(BLOCK);
        passes.push((groups, Params { n, _pad: [0; 3] }));
        if groups == 1 {
            return passes;
        }
        n = groups;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_shrink_to_one() {
        let p = passes(70_000);
        assert_eq!(p.iter().map(|(g, _)| *g).collect::<Vec<_>>(), [35, 1]);
        assert_eq!(p[1].1.n, 35);
        assert_eq!(passes(1).len(), 1);
    }
}
