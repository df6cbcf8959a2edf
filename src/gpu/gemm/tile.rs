//! The shapes a matrix product's kernel takes (`Tile`): the rule that picks one from the adapter
//! and the product's shape, and the candidates a caller may time.

/// A kernel of `gemm.wgsl`: each workgroup computes a `bm` × `bn` block of C, each invocation a
/// `tm` × `tn` block of it; `staged` kernels stage `bk`-deep slices of A and B in workgroup
/// memory, the others read the buffers directly. Every tile gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Tile {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
    pub staged: bool,
}

const fn staged(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Tile {
    Tile {
        bm,
        bn,
        bk,
        tm,
        tn,
        staged: true,
    }
}

const fn direct(bm: u32, bn: u32, tm: u32, tn: u32) -> Tile {
    Tile {
        bm,
        bn,
        bk: 1,
        tm,
        tn,
        staged: false,
    }
}

/// Every tile, the rule's among them.
const CANDIDATES: [Tile; 5] = [
    staged(64, 64, 16, 4, 4),
    staged(32, 32, 8, 2, 2),
    staged(128, 64, 16, 8, 4),
    direct(32, 32, 4, 4),
    direct(64, 64, 8, 8),
];

impl Tile {
    /// The tile for a product of `shape` (m, n, k) on this adapter, with no measurement.
    #[allow(dead_code, reason = "chosen by the linear head's call (linear.rs)")]
    pub fn rule(_cpu_adapter: bool, shape: [u32; 3]) -> Tile {
        let [m, n, _] = shape;
        if m.min(n) <= 32 {
            return CANDIDATES[1];
        }
        CANDIDATES[0]
    }

    /// Every tile a caller may time against the rule's.
    pub fn candidates() -> &'static [Tile] {
        &CANDIDATES
    }

    /// The kernel's entry point in `gemm.wgsl`.
    pub fn entry(self) -> &'static str {
        if self.staged {
            "gemm_tiled"
        } else {
            "gemm_direct"
        }
    }

    /// The tile's constants as `gemm.wgsl` names them, for its module's prelude.
    pub fn constants(self) -> [(&'static str, u32); 5] {
        [
            ("BM", self.bm),
            ("BN", self.bn),
            ("BK", self.bk),
            ("TM", self.tm),
            ("TN", self.tn),
        ]
    }

    /// The workgroups that cover an `m` × `n` C.
    pub fn groups(self, m: u32, n: u32) -> u32 {
        m.div_ceil(self.bm) * n.div_ceil(self.bn)
    }
}
