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

/// A `tm` × `LANES`·`tn` block of C per `LANES` lanes, each lane `tm` rows (a multiple of 8: at
/// most 32 for `Lanes`, 64 for `Subgroup`) × `tn` columns (4, or 8 for `Lanes`), as
/// gemm_lanes.wgsl writes them out.
const fn lanes(kind: Kind, tm: u32, tn: u32) -> Tile {
    Tile {
        bm: tm,
        bn: LANES * tn,
        bk: 1,
        tm,
        tn,
        kind,
    }
}

/// The rule's tiles on a CPU adapter with subgroups 8 wide, by their rows.
const SUBGROUP_RULE: [Tile; 4] = [
    lanes(Kind::Subgroup, 8, 4),
    lanes(Kind::Subgroup, 16, 4),
    lanes(Kind::Subgroup, 32, 4),
    lanes(Kind::Subgroup, 64, 4),
];

/// The rule's tiles on another CPU adapter, by their rows.
const LANES_RULE: [Tile; 2] = [lanes(Kind::Lanes, 8, 8), lanes(Kind::Lanes, 16, 8)];

/// Every tile, the rule's among them.
const CANDIDATES: [Tile; 13] = [
    Tile::WIDE,
    Tile::NARROW,
    staged(128, 64, 16, 8, 4),
    Tile::FALLBACK,
    direct(64, 64, 8, 8),
    lanes(Kind::Lanes, 8, 4),
    lanes(Kind::Lanes, 32, 4),
    LANES_RULE[0],
    LANES_RULE[1],
    SUBGROUP_RULE[0],
    SUBGROUP_RULE[1],
    SUBGROUP_RULE[2],
    SUBGROUP_RULE[3],
];

impl Tile {
    /// The rule's tile on a GPU; also the module that `column_sums` is built from (it reads no
    /// tile constant).
    pub const WIDE: Tile = staged(64, 64, 16, 4, 4);
    /// The rule's tile on a GPU where m or n is at most 32.
    pub const NARROW: Tile = staged(32, 32, 8, 2, 2);
    /// Serves a product whose quads cannot be bound, in place of a tile that reads them.
    pub const FALLBACK: Tile = direct(32, 32, 4, 4);

    /// The tile for a product of `shape` (m, n, k) on `adapter`, with no measurement. On a CPU
    /// adapter: the subgroup kernel where it runs, else the lanes kernel, with the fewest rows
    /// that cover m, up to the most that pay (each load of B serves every row).
    pub fn rule(adapter: Adapter, shape: [u32; 3]) -> Tile {
        let [m, n, _] = shape;
        if adapter.cpu {
            let tiles: &[Tile] = if SUBGROUP_RULE[0].runs_on(adapter) {
                &SUBGROUP_RULE
            } else {
                &LANES_RULE
            };
            let tallest = tiles[tiles.len() - 1];
            return tiles.iter().copied().find(|t| t.tm >= m).unwrap_or(tallest);
        }
        if m.min(n) <= 32 {
            return Tile::NARROW;
        }
        Tile::WIDE
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

#[cfg(test)]
mod tests {
    use super::*;

    const LAVAPIPE: Adapter = Adapter {
        cpu: true,
        subgroups: true,
        subgroup_sizes: (8, 8),
    };
    const LLVMPIPE_GL: Adapter = Adapter {
        cpu: true,
        subgroups: false,
        subgroup_sizes: (4, 128),
    };
    const GPU: Adapter = Adapter {
        cpu: false,
        subgroups: true,
        subgroup_sizes: (32, 32),
    };

    #[test]
    fn the_rule_takes_the_fewest_rows_that_cover_m_on_a_cpu() {
        let rows = |adapter, m| Tile::rule(adapter, [m, 1000, 1000]).tm;
        assert_eq!(
            [1, 8, 9, 17, 33, 512].map(|m| rows(LAVAPIPE, m)),
            [8, 8, 16, 32, 64, 64]
        );
        assert_eq!([1, 8, 9, 512].map(|m| rows(LLVMPIPE_GL, m)), [8, 8, 16, 16]);
        assert_eq!(Tile::rule(LAVAPIPE, [512, 1000, 1000]).kind, Kind::Subgroup);
        assert_eq!(Tile::rule(LLVMPIPE_GL, [512, 1000, 1000]).kind, Kind::Lanes);
        assert_eq!(Tile::rule(GPU, [512, 1000, 1000]), Tile::WIDE);
        assert_eq!(Tile::rule(GPU, [512, 16, 1000]), Tile::NARROW);
    }

    #[test]
    fn every_tile_is_within_what_its_kernel_writes_out() {
        for adapter in [LAVAPIPE, LLVMPIPE_GL, GPU] {
            let rule = Tile::rule(adapter, [512, 1000, 1000]);
            assert!(CANDIDATES.contains(&rule) && rule.runs_on(adapter));
        }
        assert!(!SUBGROUP_RULE[0].runs_on(LLVMPIPE_GL) && !SUBGROUP_RULE[0].runs_on(GPU));
        for tile in CANDIDATES {
            let (rows, cols): (&[u32], &[u32]) = match tile.kind {
                Kind::Staged | Kind::Direct => {
                    assert!(tile.bm % tile.tm == 0 && tile.bn % tile.tn == 0, "{tile:?}");
                    continue;
                }
                Kind::Lanes => (&[8, 16, 24, 32], &[4, 8]),
                Kind::Subgroup => (&[8, 16, 24, 32, 40, 48, 56, 64], &[4]),
            };
            assert!(
                rows.contains(&tile.tm) && cols.contains(&tile.tn),
                "{tile:?}"
            );
            assert_eq!((tile.bm, tile.bn), (tile.tm, LANES * tile.tn), "{tile:?}");
        }
    }
}
