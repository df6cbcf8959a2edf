//! The report model: the shapes, passes and measures of `xent bench`'s rows, and what a row's
//! GB/s counts. It knows nothing of how rows are measured or drawn.

use xent::{Dtype, LossKind};

/// B × C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape(pub usize, pub usize);

impl Shape {
    /// B · C.
    pub fn elements(self) -> usize {
        self.0 * self.1
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.0, self.1)
    }
}

/// A shape written as BxC (`4096x32000`, or `8X10`), B and C positive and their product a
/// `usize`; an error says why not.
pub fn parse_shape(s: &str) -> std::result::Result<Shape, String> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    match s.to_ascii_lowercase().split_once('x') {
        Some((b, c)) => match (parse(b), parse(c)) {
            (Some(b), Some(c)) if b.checked_mul(c).is_some() => Ok(Shape(b, c)),
            _ => Err(format!(
                "'{s}' is not BxC with B and C positive whole numbers"
            )),
        },
        None => Err(format!("'{s}' is not BxC (for example 4096x32000)")),
    }
}

/// What one row times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// The forward alone.
    Fwd,
    /// Forward and backward, the gradient in a buffer of its own.
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
    /// The device's bandwidth probe.
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

/// One measured row of the report.
#[derive(Clone, Debug)]
pub struct Row {
    /// The batch's shape.
    pub shape: Shape,
    /// What it times.
    pub pass: Pass,
    /// Who computed it: an adapter, a CPU path, or another library.
    pub path: String,
    /// How its time was taken.
    pub measure: Measure,
    /// The clock: timestamps, wall after sync, host.
    pub clock: String,
    /// The device whose probe the row is set against.
    pub device: String,
    /// The bytes its GB/s counts ([`moved_bytes`]).
    pub bytes: u64,
    /// Seconds of each timed run, sorted.
    pub seconds: Vec<f64>,
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

    /// The bytes moved over the median time, in GB/s.
    pub fn gbs(&self) -> f64 {
        self.bytes as f64 / self.median() / 1e9
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

/// The probe row a row is set against.
pub fn probe_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    rows.iter()
        .find(|p| p.measure == Measure::Probe && p.shape == row.shape && p.device == row.device)
}

/// PyTorch's time for a row's shape and pass, from the same run.
pub fn torch_of<'a>(rows: &'a [Row], row: &Row) -> Option<&'a Row> {
    // PyTorch's forward+backward stands against both of xent's.
    let pass = match row.pass {
        Pass::FwdBwdInPlace => Pass::FwdBwd,
        pass => pass,
    };
    rows.iter()
        .find(|t| t.path.starts_with("torch") && t.shape == row.shape && t.pass == pass)
}

/// The bytes one call reads: the input, and a dense target where the loss has one.
pub fn read_bytes(shape: Shape, loss: LossKind, dtype: Dtype) -> u64 {
    let dense = matches!(loss, LossKind::BinaryCrossEntropy | LossKind::KlDiv);
    (shape.elements() * (dtype.size() + if dense { 4 } else { 0 })) as u64
}

/// The bytes a pass must move at the least, which its GB/s counts: what it reads, and for
/// fwd+bwd the f32 gradient it writes, as many bytes again for f32 logits. A memory-bound
/// forward+backward therefore takes at least twice its forward's time, and its /probe (against
/// a probe that only reads) says how near it runs to that floor.
pub fn moved_bytes(shape: Shape, loss: LossKind, dtype: Dtype, pass: Pass) -> u64 {
    let written = match pass {
        Pass::FwdBwd | Pass::FwdBwdInPlace => shape.elements() as u64 * 4,
        Pass::Fwd | Pass::Read => 0,
    };
    read_bytes(shape, loss, dtype) + written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_bad_ones_say_why() {
        assert_eq!(parse_shape("4096x32000"), Ok(Shape(4096, 32_000)));
        assert_eq!(parse_shape("8X10"), Ok(Shape(8, 10)));
        for bad in ["4096", "0x10", "ax3", "3x", "99999999999x99999999999"] {
            assert!(parse_shape(bad).is_err(), "{bad}");
        }
    }
}
