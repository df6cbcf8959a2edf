//! The report as files: JSON and CSV, each row with its ratio to its device's probe and to
//! PyTorch's time. A loss on logits gives `batch`, `classes`, `bytes` and `gb_per_s`; a linear
//! head gives `batch` (N), `dim` (D), `classes` (V), `flops`, `gflop_per_s`, `peak_bytes`,
//! `torch_chunked_over_this` and `of_cpu_probe` (an adapter's GEMM probe against the fast CPU
//! path's).

use std::path::Path;

use serde_json::{Map, Value, json};
use xent::Result;

use super::files::write;
use super::report::{Row, Shape, Work, cpu_probe_of, probe_of, torch_chunked_of, torch_of};

/// Writes `rows` to `path` as a pretty-printed JSON array.
pub fn write_json(path: &Path, rows: &[Row]) -> Result<()> {
    write(
        path,
        &(serde_json::to_string_pretty(&json_rows(rows)).unwrap_or_default() + "\n"),
    )
}

/// Writes `rows` to `path` as CSV, with a header line.
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    write(path, &csv(rows))
}

/// The columns of the CSV, and the fields of the JSON, in order.
const COLUMNS: [&str; 22] = [
    "shape",
    "batch",
    "classes",
    "pass",
    "path",
    "measure",
    "clock",
    "device",
    "bytes",
    "runs",
    "median_s",
    "min_s",
    "max_s",
    "gb_per_s",
    "of_probe",
    "torch_over_this",
    "dim",
    "flops",
    "gflop_per_s",
    "peak_bytes",
    "torch_chunked_over_this",
    "of_cpu_probe",
];

/// The fields of `r` among `rows`, in the order of [`COLUMNS`]; `None` where the row's kind has
/// no such field (a null is a field without a value).
fn fields(rows: &[Row], r: &Row) -> [Option<Value>; 22] {
    let (batch, dim, classes) = match r.shape {
        Shape::Logits(b, c) => (b, None, c),
        Shape::Linear(n, d, v) => (n, Some(d), v),
    };
    let (bytes, flops) = match r.work {
        Work::Bytes(b) => (Some(b), None),
        Work::Flops(f) => (None, Some(f)),
    };
    let linear = dim.is_some();
    let over = |t: &Row| t.median() / r.median();
    [
        Some(json!(r.shape.to_string())),
        Some(json!(batch)),
        Some(json!(classes)),
        Some(json!(r.pass.name())),
        Some(json!(r.path)),
        Some(json!(r.measure.name())),
        Some(json!(r.clock)),
        Some(json!(r.device)),
        bytes.map(|b| json!(b)),
        Some(json!(r.seconds.len())),
        Some(json!(r.median())),
        Some(json!(r.min())),
        Some(json!(r.max())),
        bytes.map(|_| json!(r.rate())),
        Some(json!(probe_of(rows, r).map(|p| r.rate() / p.rate()))),
        Some(json!(torch_of(rows, r).map(over))),
        dim.map(|d| json!(d)),
        flops.map(|f| json!(f)),
        flops.map(|_| json!(r.rate())),
        linear.then(|| json!(r.peak_bytes)),
        linear.then(|| json!(torch_chunked_of(rows, r).map(over))),
        linear.then(|| json!(cpu_probe_of(rows, r).map(|p| r.rate() / p.rate()))),
    ]
}

fn json_rows(rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                let fields = COLUMNS.iter().zip(fields(rows, r));
                let map: Map<String, Value> = fields
                    .filter_map(|(&k, v)| Some((k.to_string(), v?)))
                    .collect();
                Value::Object(map)
            })
            .collect(),
    )
}

fn csv(rows: &[Row]) -> String {
    let mut out = COLUMNS.join(",") + "\n";
    for r in rows {
        let cells: Vec<String> = COLUMNS
            .iter()
            .zip(fields(rows, r))
            .map(|(&k, v)| match v {
                None | Some(Value::Null) => String::new(),
                // Paths, clocks and devices are quoted, as they may hold commas.
                Some(Value::String(s)) if matches!(k, "path" | "clock" | "device") => {
                    format!("\"{}\"", s.replace('"', "\"\""))
                }
                Some(Value::String(s)) => s,
                Some(v) => v.to_string(),
            })
            .collect();
        out += &(cells.join(",") + "\n");
    }
    out
}
