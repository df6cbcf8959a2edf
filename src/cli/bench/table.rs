//! The report as a text table on stdout: each row with its ratio to its device's probe and to
//! PyTorch's time.

use super::args::BenchArgs;
use super::report::{Row, probe_of, torch_of};

/// Prints the header line of `args`'s run and one line per row.
pub fn print(rows: &[Row], args: &BenchArgs) {
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
        let probe = probe_of(rows, row)
            .filter(|p| !std::ptr::eq(*p, row))
            .map_or(String::new(), |p| format!("{:.2}", row.gbs() / p.gbs()));
        let torch = torch_of(rows, row)
            .filter(|t| !std::ptr::eq(*t, row))
            .map_or(String::new(), |t| {
                format!("{:.2}", t.median() / row.median())
            });
        println!(
            "{:<11} {:<7} {:<44} {:<10} {:>10.3} {:>21} {:>7.2} {:>7} {:>7}",
            row.shape.to_string(),
            row.pass.name(),
            truncate(&row.path, 44),
            row.measure.name(),
            row.median() * 1e3,
            format!("{:.3}–{:.3}", row.min() * 1e3, row.max() * 1e3),
            row.gbs(),
            probe,
            torch,
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
