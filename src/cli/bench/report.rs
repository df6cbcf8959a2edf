//! The report model: the shapes, passes and measures of `xent bench`'s rows, and the work a row's
//! rate counts (bytes for a loss on logits, flops for a linear head). It knows nothing of how rows
//! are measured or drawn.

use xent::{Dtype, LossKind};

/// The shape of a row's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// B × C logits.
    Logits(usize, usize),
    /// A linear head: N hidden states of D values against V classes, whose [N, V] logits
    /// H·Wᵀ + b are never held whole.
    Linear(usize, usize, usize),
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shape::Logits(b, c) => write!(f, "{b}x{c}"),
            Shape::Linear(n, d, v) => write!(f, "{n}x{d}x{v}"),
        }
    }
}

/// K positive whole numbers joined by 'x' (or 'X'), whose product times `factor` fits a `u64`.
fn dims<const K: usize>(s: &str, factor: u64) -> Option<[usize; K]> {
    let lower = s.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('x').collect();
    let mut dims = [0; K];
    if parts.len() != K {
        return None;
    }
    for (dim, part) in dims.iter_mut().zip(parts) {
        *dim = part.trim().parse::<usize>().ok().filter(|&n| n > 0)?;
    }
    dims.iter()
        .try_fold(factor, |p, &n| p.checked_mul(u64::try_from(n).ok()?))
        .filter(|&p| usize::try_from(p).is_ok())?;
    Some(dims)
}

/// A shape written as BxC (`4096x32000`, or `8X10`), B and C positive and their product a
/// `usize`; an error says why not.
pub fn parse_shape(s: &str) -> std::result::Result<Shape, String> {
    match dims::<2>(s, 1) {
        Some([b, c]) => Ok(Shape::Logits(b, c)),
        None if s.contains(['x', 'X']) => Err(format!(
            "'{s}' is not BxC with B and C positive whole numbers"
        )),
        None => Err(format!("'{s}' is not BxC (for example 4096x32000)")),
    }
}

/// A linear head's shape written as NxDxV (`2048x1024x32000`): N, D and V positive, and the flops
/// of a forward and backward, 6·N·D·V, a `usize`; an error says why not.
pub fn parse_linear_shape(s: &str) -> std::result::Result<Shape, String> {
    match dims::<3>(s, 6) {
        Some([n, d, v]) => Ok(Shape::Linear(n, d, v)),
        None => Err(format!(
            "'{s}' is not NxDxV (for example 2048x1024x32000) with N, D and V positive whole \
             numbers and 6·N·D·V within range"
        )),
    }
}

/// Either shape, told apart by its number of dimensions: for rows read from other programs.
pub fn parse_any_shape(s: &str) -> std::result::Result<Shape, String> {
    if s.matches(['x', 'X']).count() == 2 {
        parse_linear_shape(s)
    } else {
        parse_shape(s)
    }
}

/// What one row times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// The forward alone: the loss.
    Fwd,
    /// Forward and backward, the gradient (of a linear head, those of H, W and b) in buffers of
    /// its own.
    FwdBwd,
    /// Forward and backward, the gradient written over the logits.
    FwdBwdInPlace,
    /// The bandwidth probe's read.
    Read,
}

impl Pass {
    /// The name in every output.
    pub fn name(self) -> &'static str {
        match self {
            Pass::Fwd => "fwd",
            Pass::FwdBwd => "fwd+bwd",
            Pass::FwdBwdInPlace => "fwd+bwd in place",
            Pass::Read => "read",
        }
    }

    /// The pass of a call named `name`, "fwd" or "fwd+bwd", as other programs' rows name it.
    pub fn parse_call(name: &str) -> std::result::Result<Pass, String> {
        match name {
            "fwd" => Ok(Pass::Fwd),
            "fwd+bwd" => Ok(Pass::FwdBwd),
            other => Err(format!("unknown pass \"{other}\" (fwd or fwd+bwd)")),
        }
    }
}

/// How a row's time was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// GPU kernels alone.
    Kernel,
    /// A whole call on host data: upload, kernels, reduction, readback.
    EndToEnd,
    /// A whole call on the CPU.
    Call,
    /// The device's probe: its bandwidth, or a linear head's GEMMs alone.
    Probe,
    /// The upload of the input alone, as a call does it.
    Upload,
}

impl Measure {
    /// The name in every output.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Kernel => "kernel",
            Measure::EndToEnd => "end-to-end",
            Measure::Call => "call",
            Measure::Probe => "probe",
            Measure::Upload => "upload",
        }
    }
}

/// The work a row's rate counts: the bytes a loss on logits must move ([`moved_bytes`]), or a
/// linear head's flops ([`linear_flops`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Bytes, rated in GB/s.
    Bytes(u64),
    /// Floating-point operations, rated in GFLOP/s.
    Flops(u64),
}

impl Work {
    /// The bytes or flops.
    pub fn amount(self) -> u64 {
        match self {
            Work::Bytes(n) | Work::Flops(n) => n,
        }
    }
}

/// One measured row of the report.
#[derive(Clone, Debug)]
pub struct Row {
    /// The shape of its work.
    pub shape: Shape,
    /// What it times.
    pub pass: Pass,
    /// Who computed it: an adapter, a CPU path, a probe, or another library.
    pub path: String,
    /// How its time was taken.
    pub measure: Measure,
    /// The clock: timestamps, wall after sync, host.
    pub clock: String,
    /// The device whose probe the row is set against.
    pub device: String,
    /// What its rate counts ([`work`]).
    pub work: Work,
    /// Seconds of each timed run, sorted.
    pub seconds: Vec<f64>,
    /// The peak memory of one call above its inputs and gradients, in bytes, where it was
    /// measured (linear calls, in a process of their own).
    pub peak_bytes: Option<u64>,
}

impl Row {
    /// The median of the timed runs, in seconds.
    pub fn median(&self) -> f64 {
        let n = self.seconds.len();
        if n % 2 == 1 {
            self.seconds[n / 2]
        } else {
            (self.seconds[n / 2 - 1] + self.seconds[n / 2]) / 2.0
        }
    }

    /// The work over the median time, in G a second: GB/s of bytes, or GFLOP/s of flops.
    pub fn rate(&self) -> f64 {
        self.work.amount() as f64 / self.median() / 1e9
    }

    /// The fastest run, in seconds.
    pub fn min(&self) -> f64 {
        self.seconds[0]
    }

    /// The slowest run, in seconds.
    pub fn max(&self) -> f64 {
        self.seconds[self.seconds.len() - 1]
    }
}

/// The probe row a row is set against: its device's probe at its shape, which for a linear head
/// is the GEMM probe of the same pass.
pub fn probe_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    rows.iter().find(|p| {
        p.measure == Measure::Probe
            && p.shape == row.shape
            && p.device == row.device
            && (p.pass == Pass::Read || p.pass == row.pass)
    })
}

/// The probe key (a row's [`Row::device`]) of the CPU paths: the fast path's probes, which the
/// reference's rows are set against too.
pub const CPU_PROBE: &str = "cpu";

/// For a GPU adapter's GEMM probe of a linear head, the fast CPU path's GEMM probe of the same
/// shape and pass from the same run: how the adapter's own products stand against the CPU's
/// (on a CPU adapter, such as lavapipe, the same cores).
pub fn cpu_probe_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    if row.measure != Measure::Probe
        || row.device == CPU_PROBE
        || !matches!(row.shape, Shape::Linear(..))
    {
        return None;
    }
    rows.iter().find(|p| {
        p.measure == Measure::Probe
            && p.device == CPU_PROBE
            && p.shape == row.shape
            && p.pass == row.pass
    })
}

/// The variant that names PyTorch's rows of `F.linear_cross_entropy` on its chunked path
/// (`LinearCrossEntropyOptions()`), in their JSON lines and paths; its reference path (the
/// logits materialized) is "reference".
pub const TORCH_CHUNKED: &str = "chunked";

/// PyTorch's row for a row's shape and pass, from the same run: on its reference path, or with
/// `chunked` on its chunked path.
fn torch_row<'a>(rows: &'a [Row], row: &Row, chunked: bool) -> Option<&'a Row> {
    if row.measure == Measure::Probe {
        return None;
    }
    // PyTorch's forward+backward stands against both of xent's.
    let pass = match row.pass {
        Pass::FwdBwdInPlace => Pass::FwdBwd,
        pass => pass,
    };
    rows.iter().find(|t| {
        let name = t.path.split(" (").next().unwrap_or("");
        t.path.starts_with("torch")
            && name.ends_with(&format!(" {TORCH_CHUNKED}")) == chunked
            && t.shape == row.shape
            && t.pass == pass
    })
}

/// PyTorch's row for a row's shape and pass, from the same run: `F.cross_entropy`'s, or for a
/// linear head `F.linear_cross_entropy`'s on its reference path.
pub fn torch_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    torch_row(rows, row, false)
}

/// PyTorch's row on the chunked path of `F.linear_cross_entropy` for a linear row's shape and
/// pass.
pub fn torch_chunked_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    torch_row(rows, row, true)
}

/// The bytes one call reads from `elements` logits: the input, and a dense target where the
/// loss has one.
pub fn read_bytes(elements: usize, loss: LossKind, dtype: Dtype) -> u64 {
    let dense = matches!(loss, LossKind::BinaryCrossEntropy | LossKind::KlDiv);
    (elements * (dtype.size() + if dense { 4 } else { 0 })) as u64
}

/// The bytes a pass over `elements` logits must move at the least, which its GB/s counts: what
/// it reads, and for fwd+bwd the f32 gradient it writes, as many bytes again for f32 logits. A
/// memory-bound forward+backward therefore takes at least twice its forward's time, and its
/// /probe (against a probe that only reads) says how near it runs to that floor.
pub fn moved_bytes(elements: usize, loss: LossKind, dtype: Dtype, pass: Pass) -> u64 {
    let written = match pass {
        Pass::FwdBwd | Pass::FwdBwdInPlace => elements as u64 * 4,
        Pass::Fwd | Pass::Read => 0,
    };
    read_bytes(elements, loss, dtype) + written
}

/// The flops of a linear head's pass, which its GFLOP/s counts: 2·N·D·V for each GEMM of
/// N × D × V, one in the forward (the logits) and three with the backward (the logits, dH and
/// dW); the row pass over the logits and db are not counted.
pub fn linear_flops([n, d, v]: [usize; 3], pass: Pass) -> u64 {
    let gemms = match pass {
        Pass::FwdBwd | Pass::FwdBwdInPlace => 3,
        Pass::Fwd | Pass::Read => 1,
    };
    2 * gemms * (n * d * v) as u64
}

/// The work a row of `pass` at `shape` counts: for logits, of `loss` on `dtype` input.
pub fn work(shape: Shape, loss: LossKind, dtype: Dtype, pass: Pass) -> Work {
    match shape {
        Shape::Logits(b, c) => Work::Bytes(moved_bytes(b * c, loss, dtype, pass)),
        Shape::Linear(n, d, v) => Work::Flops(linear_flops([n, d, v], pass)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_bad_ones_say_why() {
        assert_eq!(parse_shape("4096x32000"), Ok(Shape::Logits(4096, 32_000)));
        assert_eq!(parse_shape("8X10"), Ok(Shape::Logits(8, 10)));
        for bad in [
            "4096",
            "0x10",
            "ax3",
            "3x",
            "99999999999x99999999999",
            "2x3x4",
        ] {
            assert!(parse_shape(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_linear_shape("2048x1024X32000"),
            Ok(Shape::Linear(2048, 1024, 32_000))
        );
        for bad in [
            "2048x1024",
            "0x1x1",
            "1x1x",
            "1xax1",
            "4000000x4000000x4000000",
        ] {
            assert!(parse_linear_shape(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_any_shape("64x32x1000"),
            Ok(Shape::Linear(64, 32, 1000))
        );
        assert_eq!(parse_any_shape("64x1000"), Ok(Shape::Logits(64, 1000)));
        assert_eq!(Shape::Linear(64, 32, 1000).to_string(), "64x32x1000");
    }

    #[test]
    fn linear_rows_count_flops_and_meet_their_probe_and_torch() {
        let shape = Shape::Linear(64, 32, 1000);
        let row = |pass, measure, path: &str, seconds: f64| Row {
            shape,
            pass,
            path: path.into(),
            measure,
            clock: "host".into(),
            device: "cpu".into(),
            work: work(shape, LossKind::CrossEntropy, Dtype::F32, pass),
            seconds: vec![seconds],
            peak_bytes: None,
        };
        let rows = [
            row(Pass::Fwd, Measure::Probe, "cpu gemm probe", 1.0),
            row(Pass::FwdBwd, Measure::Probe, "cpu gemm probe", 2.0),
            row(Pass::FwdBwd, Measure::Call, "cpu fast", 2.5),
            row(
                Pass::FwdBwd,
                Measure::Call,
                "torch 2.15 chunked (cpu)",
                10.0,
            ),
            row(
                Pass::FwdBwd,
                Measure::Call,
                "torch 2.15 reference (cpu)",
                5.0,
            ),
        ];
        assert_eq!(rows[0].work, Work::Flops(2 * 64 * 32 * 1000));
        assert_eq!(rows[2].work, Work::Flops(6 * 64 * 32 * 1000));
        let probe = probe_of(&rows, &rows[2]).unwrap();
        assert!((rows[2].rate() / probe.rate() - 0.8).abs() < 1e-12);
        assert!((torch_of(&rows, &rows[2]).unwrap().median() - 5.0).abs() < 1e-12);
        assert!((torch_chunked_of(&rows, &rows[2]).unwrap().median() - 10.0).abs() < 1e-12);
        // Only an adapter's GEMM probe stands against the CPU's.
        let adapter_probe = Row {
            path: "[Vulkan/llvmpipe] gemm probe".into(),
            device: "[Vulkan/llvmpipe]".into(),
            seconds: vec![8.0],
            ..rows[1].clone()
        };
        let cpu = cpu_probe_of(&rows, &adapter_probe).unwrap();
        assert!((adapter_probe.rate() / cpu.rate() - 0.25).abs() < 1e-12);
        assert!(cpu_probe_of(&rows, &rows[1]).is_none());
        assert!(cpu_probe_of(&rows, &rows[2]).is_none());
    }
}
