//! Which of `avx2`'s loops the CPU takes, found once per process: the run-time checks are not
//! repeated in the loops that ask.

use std::sync::OnceLock;

/// The instruction sets that decide between `avx2`'s loops and the portable ones.
#[derive(Clone, Copy)]
pub(super) struct Isa {
    avx2_fma: bool,
    avx512f: bool,
}

impl Isa {
    /// This CPU's, detected on the first call.
    pub fn get() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| Isa {
            avx2_fma: is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            avx512f: is_x86_feature_detected!("avx512f"),
        })
    }

    /// Whether the block loop is `avx2`'s: the CPU has AVX2 and FMA, and no AVX-512, where the
    /// portable loop is compiled for its wider vectors. When true, the CPU has AVX2 and FMA.
    pub fn avx2_block_loop(self) -> bool {
        self.avx2_fma && !self.avx512f
    }

    /// Whether the short-row step is `avx2`'s: the CPU has AVX2 and FMA (with AVX-512 too, as the
    /// step's vectors are eight lanes wide). When true, the CPU has AVX2 and FMA.
    pub fn avx2_short_rows(self) -> bool {
        self.avx2_fma
    }
}
