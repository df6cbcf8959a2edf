//! The report as files: JSON and CSV, each row with its ratio to its device's probe and to
//! PyTorch's time.

use std::path::Path;

use serde_json::{Value, json};
use xent::Result;

use super::files::write;
use super::report::{Row, probe_of, torch_of};

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

fn json_rows(rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "shape": r.shape.to_string(),
                    "batch": r.shape.0,
                    "classes": r.shape.1,
                    "pass": r.pass.name(),
                    "path": r.path,
                    "measure": r.measure.name(),
                    "clock": r.clock,
                    "device": r.device,
                    "bytes": r.bytes,
                    "runs": r.seconds.len(),
                    "median_s": r.median(),
                    "min_s": r.min(),
                    "max_s": r.max(),
                    "gb_per_s": r.gbs(),
                    "of_probe": probe_of(rows, r).map(|p| r.gbs() / p.gbs()),
                    "torch_over_this": torch_of(rows, r).map(|t| t.median() / r.median()),
                })
            })
            .collect(),
    )
}

fn csv(rows: &[Row]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let mut out = String::from(
        "shape,batch,classes,pass,path,measure,clock,device,bytes,runs,median_s,min_s,max_s,gb_per_s,of_probe,torch_over_this\n",
    );
    for r in rows {
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.shape,
            r.shape.0,
            r.shape.1,
            r.pass.name(),
            quote(&r.path),
            r.measure.name(),
            quote(&r.clock),
            quote(&r.device),
            r.bytes,
            r.seconds.len(),
            r.median(),
            r.min(),
            r.max(),
            r.gbs(),
            opt(probe_of(rows, r).map(|p| r.gbs() / p.gbs())),
            opt(torch_of(rows, r).map(|t| t.median() / r.median())),
        );
    }
    out
}
