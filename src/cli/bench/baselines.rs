//! Rows of other libraries, set beside xent's: PyTorch timed in the same run (on logits, and on
//! linear heads on both paths of `F.linear_cross_entropy`), and rows measured elsewhere (candle,
//! by `benches/compare_candle`), read from JSON lines.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use xent::{Dtype, Error, LossKind, Result};

use super::args::BenchArgs;
use super::files::read;
use super::report::{Measure, Pass, Row, Shape, Work, parse_any_shape, work};

/// Rows of another library, from JSON lines of the form that `benches/compare_torch.py --json`
/// and `benches/compare_candle` print: `shape` BxC or NxDxV, `pass`, `impl`, `version`, the
/// times, and optionally `threads`, `variant` (a linear head's path: "reference" or "chunked")
/// and `peak_bytes`.
fn external_rows(
    text: &str,
    source: &str,
    shapes: &[Shape],
    work: impl Fn(Shape, Pass) -> Work,
) -> Result<Vec<Row>> {
    let bad = |line: usize, why: &str| Error::Io {
        path: source.to_string(),
        reason: format!("line {line}: {why}"),
    };
    let mut rows = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with('{'))
    {
        let v: Value = serde_json::from_str(line).map_err(|e| bad(n + 1, &e.to_string()))?;
        let field = |k: &str| v.get(k).ok_or_else(|| bad(n + 1, &format!("no \"{k}\"")));
        let text_of = |k: &str| -> Result<String> {
            field(k)?
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(n + 1, &format!("\"{k}\" is not text")))
        };
        let number = |k: &str| -> Result<f64> {
            field(k)?
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| bad(n + 1, &format!("\"{k}\" is not a positive number")))
        };
        let shape = parse_any_shape(&text_of("shape")?).map_err(|e| bad(n + 1, &e))?;
        if !shapes.contains(&shape) {
            continue;
        }
        let pass = Pass::parse_call(&text_of("pass")?).map_err(|e| bad(n + 1, &e))?;
        let threads = v
            .get("threads")
            .and_then(Value::as_u64)
            .map_or(String::new(), |t| format!(", {t} threads"));
        let variant = match v.get("variant") {
            Some(_) => format!(" {}", text_of("variant")?),
            None => String::new(),
        };
        let path = format!(
            "{} {}{variant} (cpu{threads})",
            text_of("impl")?,
            text_of("version")?
        );
        let mut seconds = vec![number("min_s")?, number("median_s")?, number("max_s")?];
        seconds.sort_by(f64::total_cmp);
        rows.push(Row {
            shape,
            pass,
            path,
            measure: Measure::Call,
            clock: "host".into(),
            device: "cpu".into(),
            work: work(shape, pass),
            seconds,
            peak_bytes: v.get("peak_bytes").and_then(Value::as_u64),
        });
    }
    Ok(rows)
}

/// The rows of the baseline file at `path` whose shapes are among `shapes`.
pub fn baseline_rows(
    path: &Path,
    shapes: &[Shape],
    dtype: Dtype,
    loss: LossKind,
) -> Result<Vec<Row>> {
    let text = read(path)?;
    external_rows(&text, &path.display().to_string(), shapes, |s, pass| {
        work(s, loss, dtype, pass)
    })
}

/// PyTorch's rows, timed now by `benches/compare_torch.py` on the same shapes (logits and linear
/// heads) and the same thread count as the fast path. Missing Python or torch is a message, not
/// an error.
pub fn torch_rows(
    args: &BenchArgs,
    loss: LossKind,
    shapes: &[Shape],
    passes: &[Pass],
) -> Result<Vec<Row>> {
    let dtype = args.dtype.dtype();
    if loss != LossKind::CrossEntropy || dtype != Dtype::F32 {
        eprintln!("xent bench: --torch times f32 cross-entropy only; no PyTorch rows for this run");
        return Ok(Vec::new());
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/compare_torch.py");
    let mut cmd = Command::new(&args.python);
    cmd.arg(script)
        .arg("--json")
        .args(["--threads", &rayon::current_num_threads().to_string()])
        .args(["--runs", &args.runs.to_string()]);
    for s in shapes {
        let flag = match s {
            Shape::Logits(..) => "--shape",
            Shape::Linear(..) => "--linear-shape",
        };
        cmd.args([flag, &s.to_string()]);
    }
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "xent bench: could not run {} ({e}); no PyTorch rows",
                args.python
            );
            return Ok(Vec::new());
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::Io {
            path: script.into(),
            reason: format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        });
    }
    let rows = external_rows(&stdout, script, shapes, |s, pass| {
        work(s, loss, dtype, pass)
    })?;
    if rows.is_empty() {
        eprintln!(
            "xent bench: {}",
            stdout
                .lines()
                .next()
                .unwrap_or("compare_torch.py printed nothing")
        );
    }
    Ok(rows
        .into_iter()
        .filter(|r| passes.contains(&r.pass))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_rows_are_read_and_checked() {
        let text = concat!(
            "torch 2.15, 2 threads\n",
            r#"{"impl":"torch","version":"2.15","shape":"64x1000","pass":"fwd","threads":2,"runs":5,"median_s":0.002,"min_s":0.001,"max_s":0.003}"#,
            "\n",
            r#"{"impl":"torch","version":"2.15","shape":"64x1000","pass":"fwd+bwd","threads":2,"runs":5,"median_s":0.002,"min_s":0.001,"max_s":0.003}"#,
            "\n",
            r#"{"impl":"torch","version":"2.15","shape":"8x8","pass":"fwd","threads":2,"runs":5,"median_s":0.002,"min_s":0.001,"max_s":0.003}"#,
            "\n",
            r#"{"impl":"torch","version":"2.15","shape":"64x32x1000","pass":"fwd+bwd","variant":"chunked","threads":2,"runs":5,"median_s":0.002,"min_s":0.001,"max_s":0.003,"peak_bytes":4096}"#,
            "\n"
        );
        let work = |s, pass| work(s, LossKind::CrossEntropy, Dtype::F32, pass);
        let shapes = [Shape::Logits(64, 1000), Shape::Linear(64, 32, 1000)];
        let rows = external_rows(text, "t", &shapes, work).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].path, "torch 2.15 (cpu, 2 threads)");
        // 256 000 bytes of logits read in 2 ms; with the gradient, as many written too.
        assert!((rows[0].rate() - 0.128).abs() < 1e-9);
        assert!((rows[1].rate() - 0.256).abs() < 1e-9);
        assert_eq!(rows[0].peak_bytes, None);
        // 3 GEMMs of 2·64·32·1000 flops in 2 ms.
        assert_eq!(rows[2].path, "torch 2.15 chunked (cpu, 2 threads)");
        assert!((rows[2].rate() - 6.144).abs() < 1e-9);
        assert_eq!(rows[2].peak_bytes, Some(4096));
        let broken = r#"{"impl":"torch","version":"2","shape":"64x1000","pass":"fwd","median_s":-1,"min_s":1,"max_s":1}"#;
        let e = external_rows(broken, "t", &shapes, |_, _| Work::Bytes(1)).unwrap_err();
        assert!(e.to_string().contains("median_s"), "{e}");
    }
}
