//! The shapes a matrix product's kernel takes (`Tile`): the rule that picks one from the adapter
//! and the product's shape, and the candidates a caller may time.

/// A kernel of `gemm.wgsl`: each workgroup computes a `bm` × `bn` block of C, each invocation a
/// `tm` × `tn` block of it, as `kind` says. Every tile gives the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Tile {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub tm: u32,
    pub tn: u32,
    pub kind: Kind,
}

/// How a tile's workgroup reads A and B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `bk`-deep slices of A and B staged in workgroup memory (`gemm_tiled`, gemm.wgsl).
    Staged,
    /// Each invocation straight from the buffers (`gemm_direct`, gemm.wgsl).
    Direct,
    /// One batch of CPU SIMD lanes reading quads, each lane all of A's it needs
    /// (`gemm_lanes`, gemm_lanes.wgsl).
    Lanes,
    /// As `Lanes`, each lane one quad of A's, broadcast to the others (`gemm_subgroup`,
    /// gemm_subgroup.wgsl): only where subgroups are exactly `LANES` wide.
    Subgroup,
}

/// What the rule needs to know of an adapter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Adapter {
    /// Whether it runs on the CPU (lavapipe, llvmpipe), an invocation a SIMD lane.
    pub cpu: bool,
    /// Whether the device has the SUBGROUP feature.
    pub subgroups: bool,
    /// Its subgroups' least and most width.
    pub subgroup_sizes: (u32, u32),
}

/// Lanes of a `Lanes` or `Subgroup` workgroup: a SIMD batch of lavapipe and llvmpipe (256-bit).
pub(crate) const LANES: u32 = 8;

const fn staged(bm: u32, bn: u32, bk: u32, tm: u32, tn: u32) -> Tile {
    Tile {
        bm,
        bn,
        bk,
        tm,
        tn,
        kind: Kind::Staged,
    }
}

const fn direct(bm: u32, bn: u32, tm: u32, tn: u32) -> Tile {
    Tile {
        bm,
        bn,
        bk: 1,
        tm,
        tn,
        kind: Kind::Direct,
    }
}

/// A `tm` × 32 block of C per `LANES` lanes, each lane `tm` rows (8 or 16) × 4 columns
/// (gemm_lanes.wgsl).
const fn lanes(kind: Kind, tm: u32) -> Tile {
    Tile {
        bm: tm,
        bn: LANES * 4,
        bk: 1,
        tm,
        tn: 4,
        kind,
    }
}

/// Every tile, the rule's among them; those of a kind by their rows.
const CANDIDATES: [Tile; 12] = [
    staged(64, 64, 16, 4, 4),
    staged(32, 32, 8, 2, 2),
    staged(128, 64, 16, 8, 4),
    direct(32, 32, 4, 4),
    direct(64, 64, 8, 8),
    lanes(Kind::Lanes, 8),
    lanes(Kind::Lanes, 16),
    lanes(Kind::Lanes, 32),
    lanes(Kind::Subgroup, 8),
    lanes(Kind::Subgroup, 16),
    lanes(Kind::Subgroup, 32),
    lanes(Kind::Subgroup, 64),
];

impl Tile {
    /// The tile for a product of `shape` (m, n, k) on `adapter`, with no measurement. On a CPU
    /// adapter: the subgroup kernel where it runs, else the lanes kernel, with the fewest rows
    /// that cover m, up to the most (each load of B then serves the most rows).
    pub fn rule(adapter: Adapter, shape: [u32; 3]) -> Tile {
        let [m, n, _] = shape;
        if adapter.cpu {
            let kind = if lanes(Kind::Subgroup, 8).runs_on(adapter) {
                Kind::Subgroup
            } else {
                Kind::Lanes
            };
            let mut chosen = CANDIDATES[0];
            for &tile in CANDIDATES.iter().filter(|t| t.kind == kind) {
                chosen = tile;
                if tile.tm >= m {
                    break;
                }
            }
            return chosen;
        }
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
        match self.kind {
            Kind::Staged => "gemm_tiled",
            Kind::Direct => "gemm_direct",
            Kind::Lanes => "gemm_lanes",
            Kind::Subgroup => "gemm_subgroup",
        }
    }

    /// Whether the tile runs on `adapter`.
    pub fn runs_on(self, adapter: Adapter) -> bool {
        self.kind != Kind::Subgroup
            || (adapter.subgroups && adapter.subgroup_sizes == (LANES, LANES))
    }

    /// Whether the tile's kernel reads quads (`A_QUADS`, `B_QUADS`).
    pub fn reads_quads(self) -> bool {
        matches!(self.kind, Kind::Lanes | Kind::Subgroup)
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
