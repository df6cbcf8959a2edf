//! `xent bench`'s arguments, and what they select: the grid of shapes, the passes, the devices
//! and the input's dtype.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use xent::Dtype;

use super::report::{Pass, Shape, parse_linear_shape, parse_shape};
use crate::cli::loss::LossArg;

/// The default grid: small and large vocabularies, tiny rows, and huge rows in a small batch.
const DEFAULT_SHAPES: [Shape; 6] = [
    Shape::Logits(64, 1000),
    Shape::Logits(1024, 32_000),
    Shape::Logits(4096, 32_000),
    Shape::Logits(256, 128_256),
    Shape::Logits(8192, 10),
    Shape::Logits(32, 262_144),
];

/// The arguments of `xent bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A shape to run, as BxC; repeat for several. Default (when no --linear-shape is given
    /// either): 64x1000, 1024x32000, 4096x32000, 256x128256, 8192x10 and 32x262144.
    #[arg(long = "shape", value_parser = parse_shape)]
    shapes: Vec<Shape>,
    /// A fused linear cross-entropy to run, as NxDxV: N hidden states of D values against a
    /// head of V classes (f32, with a bias, class targets, mean); repeat for several. Its rows:
    /// the GEMM probe, fwd (the loss) and fwd+bwd (the gradients of H, W and b), in GFLOP/s,
    /// with each call's peak memory.
    #[arg(long = "linear-shape", value_parser = parse_linear_shape)]
    linear_shapes: Vec<Shape>,
    /// The loss (mean reduction, on logits).
    #[arg(long, value_enum, default_value_t = LossArg::CrossEntropy)]
    pub loss: LossArg,
    /// The input's dtype.
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// The forward alone, the forward with the gradient, the forward with the gradient written
    /// over the logits, or several of them.
    #[arg(long, value_enum, default_value_t = PassArg::Both)]
    pass: PassArg,
    /// Where to run; repeat for several. Default (or `all`): every GPU adapter, the fast CPU
    /// path and the reference.
    #[arg(long = "device", value_enum)]
    pub devices: Vec<BenchDevice>,
    /// Timed runs per row, after the warm-up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Untimed runs before them.
    #[arg(long, default_value_t = 2)]
    pub warmup: u32,
    /// The float64 reference runs at shapes of at most this many elements: B·C logits, or for
    /// a linear head N·D·V multiply-adds.
    #[arg(long, default_value_t = 1 << 22)]
    pub reference_max_elements: usize,
    /// Also time PyTorch's F.cross_entropy, forward and forward+backward, in this run, and for
    /// linear shapes F.linear_cross_entropy on its reference and chunked paths (through
    /// benches/compare_torch.py; skipped with a message when python or torch is missing).
    #[arg(long)]
    pub torch: bool,
    /// The Python that runs PyTorch.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Let each GPU adapter autotune its row kernels first (see `Engine::autotune`), and print what
    /// it chose.
    #[arg(long)]
    pub autotune: bool,
    /// Rows measured elsewhere, as JSON lines (benches/compare_candle prints them); repeatable.
    #[arg(long)]
    pub baseline: Vec<PathBuf>,
    /// Write the rows as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the rows as CSV to this file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Draw GB/s against bytes per row, one line per path with each probe as its ceiling, into
    /// this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl BenchArgs {
    /// The shapes to run: those given (logits first, then linear heads), or else the default
    /// grid.
    pub fn shapes(&self) -> Vec<Shape> {
        if self.shapes.is_empty() && self.linear_shapes.is_empty() {
            DEFAULT_SHAPES.to_vec()
        } else {
            [&self.shapes[..], &self.linear_shapes[..]].concat()
        }
    }

    /// The passes to time, in the order of their rows.
    pub fn passes(&self) -> &'static [Pass] {
        match self.pass {
            PassArg::Fwd => &[Pass::Fwd],
            PassArg::FwdBwd => &[Pass::FwdBwd],
            PassArg::InPlace => &[Pass::FwdBwdInPlace],
            PassArg::Both => &[Pass::Fwd, Pass::FwdBwd],
            PassArg::All => &[Pass::Fwd, Pass::FwdBwd, Pass::FwdBwdInPlace],
        }
    }
}

/// The value of `--dtype`: the name of each is [`Dtype::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// IEEE 32-bit floats.
    F32,
    /// IEEE 16-bit floats.
    F16,
    /// bfloat16: the high 16 bits of an f32.
    Bf16,
}

impl DtypeArg {
    /// The library's dtype.
    pub fn dtype(self) -> Dtype {
        match self {
            DtypeArg::F32 => Dtype::F32,
            DtypeArg::F16 => Dtype::F16,
            DtypeArg::Bf16 => Dtype::Bf16,
        }
    }
}

/// The value of `--pass`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PassArg {
    /// The forward alone.
    Fwd,
    /// The forward with the gradient, into a buffer of its own.
    FwdBwd,
    /// The forward with the gradient written over the logits (`Engine::compute_in_place`; f32
    /// input; on the fast CPU path and GPUs, end to end).
    InPlace,
    /// fwd and fwd-bwd.
    Both,
    /// fwd, fwd-bwd and in-place.
    All,
}

/// The value of `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchDevice {
    /// Every GPU adapter wgpu finds.
    Gpu,
    /// The fast CPU path.
    Cpu,
    /// The float64 reference.
    Reference,
    /// All of the above (as no --device does).
    All,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_values_are_the_dtype_names() {
        // Every dtype has its value: a new dtype fails to compile here.
        let arg_of = |dtype: Dtype| match dtype {
            Dtype::F32 => DtypeArg::F32,
            Dtype::F16 => DtypeArg::F16,
            Dtype::Bf16 => DtypeArg::Bf16,
        };
        for arg in DtypeArg::value_variants() {
            let value = arg.to_possible_value().unwrap();
            assert_eq!(value.get_name(), arg.dtype().name());
            assert_eq!(DtypeArg::from_str(arg.dtype().name(), false), Ok(*arg));
            assert_eq!(arg_of(arg.dtype()), *arg);
        }
        assert_eq!(DtypeArg::value_variants().len(), 3);
    }
}
