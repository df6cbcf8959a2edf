//! The report as text tables on stdout: each row with its ratio to its device's probe and to
//! PyTorch's time; a loss on logits in GB/s, and linear heads in a section of their own, in
//! GFLOP/s with each call's peak memory.

use super::args::BenchArgs;
use super::report::{Row, Shape, cpu_probe_of, probe_of, torch_chunked_of, torch_of};

/// Prints the header line of `args`'s run and one line per row, the linear heads' rows in their
/// own section.
pub fn print(rows: &[Row], args: &BenchArgs) {
    let (linear, logits): (Vec<Row>, Vec<Row>) = rows
        .iter()
        .cloned()
        .partition(|r| matches!(r.shape, Shape::Linear(..)));
    if !logits.is_empty() {
        print_logits(&logits, args);
    }
    if !linear.is_empty() {
        if !logits.is_empty() {
            println!();
        }
        print_linear(&linear, args);
    }
}

/// `row`'s probe's ratio, or PyTorch's, as a cell: blank without one, or on the row itself.
fn ratio(row: &Row, other: Option<&Row>, f: impl Fn(&Row) -> f64) -> String {
    other
        .filter(|o| !std::ptr::eq(*o, row))
        .map_or(String::new(), |o| format!("{:.2}", f(o)))
}

fn print_logits(rows: &[Row], args: &BenchArgs) {
    println!(
        "xent bench: {} loss, {} input, median of {} runs after {} warm-up, inputs rotated; \
         GB/s counts the bytes read, and for fwd+bwd the f32 gradient written",
        args.loss.kind().name(),
        args.dtype.dtype().name(),
        args.runs,
        args.warmup
    );
    println!(
        "{:<11} {:<7} {:<44} {:<10} {:>10} {:>21} {:>7} {:>7} {:>7}",
        "shape", "pass", "path", "measure", "median ms", "min–max ms", "GB/s", "/probe", "×torch"
    );
    for row in rows {
        println!(
            "{:<11} {:<7} {:<44} {:<10} {:>10.3} {:>21} {:>7.2} {:>7} {:>7}",
            row.shape.to_string(),
            row.pass.name(),
            truncate(&row.path, 44),
            row.measure.name(),
            row.median() * 1e3,
            format!("{:.3}–{:.3}", row.min() * 1e3, row.max() * 1e3),
            row.rate(),
            ratio(row, probe_of(rows, row), |p| row.rate() / p.rate()),
            ratio(row, torch_of(rows, row), |t| t.median() / row.median()),
        );
    }
}

fn print_linear(rows: &[Row], args: &BenchArgs) {
    println!(
        "xent bench: linear heads, mean cross-entropy of H·Wᵀ + b (f32, class targets), median \
         of {} runs after {} warm-up; inputs rotated over sets of at least 64 MiB, or one set \
         (not rotated) where a set is larger",
        args.runs, args.warmup
    );
    println!(
        "GFLOP/s counts 2·N·D·V per GEMM: 1 for fwd (the loss), 3 for fwd+bwd (the gradients of \
         H, W and b); /probe: the GEMM probe's time over the row's; /cpu: an adapter's GEMM \
         probe's GFLOP/s over the fast CPU path's; peak MiB: one call's peak memory above its \
         inputs and gradients, in a process of its own; ×torch, ×chunked: \
         F.linear_cross_entropy's time over the row's on its reference and chunked paths"
    );
    println!(
        "{:<17} {:<7} {:<48} {:<10} {:>10} {:>21} {:>8} {:>7} {:>6} {:>9} {:>7} {:>8}",
        "shape",
        "pass",
        "path",
        "measure",
        "median ms",
        "min–max ms",
        "GFLOP/s",
        "/probe",
        "/cpu",
        "peak MiB",
        "×torch",
        "×chunked"
    );
    for row in rows {
        let peak = row.peak_bytes.map_or(String::new(), |b| {
            format!("{:.1}", b as f64 / f64::from(1 << 20))
        });
        let over = |t: &Row| t.median() / row.median();
        println!(
            "{:<17} {:<7} {:<48} {:<10} {:>10.3} {:>21} {:>8.2} {:>7} {:>6} {:>9} {:>7} {:>8}",
            row.shape.to_string(),
            row.pass.name(),
            truncate(&row.path, 48),
            row.measure.name(),
            row.median() * 1e3,
            format!("{:.3}–{:.3}", row.min() * 1e3, row.max() * 1e3),
            row.rate(),
            ratio(row, probe_of(rows, row), |p| row.rate() / p.rate()),
            ratio(row, cpu_probe_of(rows, row), |p| row.rate() / p.rate()),
            peak,
            ratio(row, torch_of(rows, row), over),
            ratio(row, torch_chunked_of(rows, row), over),
        );
    }
}

/// `s` cut to `n` characters, an ellipsis last where it was longer.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}
