//! What `xent loss` prints: one JSON object, or the loss as text with a line on stderr saying
//! what was computed where.

use serde_json::{Value, json};
use xent::{DeviceKind, Engine, Loss, Output};

/// Prints `out`, computed on `engine` over `rows` rows; `what` says what was computed (for the
/// text form).
pub fn print(out: &Output, engine: &Engine, json: bool, what: &str, rows: usize) {
    let device = engine.device();
    if json {
        let mut doc = match &out.loss {
            Loss::Scalar(v) => json!({ "loss": v }),
            Loss::Unreduced { values, shape } => json!({ "losses": values, "shape": shape }),
        };
        let kind = match device.kind {
            DeviceKind::Gpu => "gpu",
            DeviceKind::Cpu => "cpu",
        };
        if let Value::Object(map) = &mut doc {
            map.insert("device".into(), kind.into());
            map.insert("adapter".into(), device.adapter.clone().into());
            map.insert("backend".into(), device.backend.clone().into());
            map.insert("valid_rows".into(), out.valid_rows.into());
        }
        println!("{doc}");
        return;
    }
    match &out.loss {
        Loss::Scalar(v) => println!("{v}"),
        Loss::Unreduced { values, shape } => {
            let width = if shape.len() == 2 { shape[1] } else { 1 };
            for row in values.chunks(width) {
                let row: Vec<String> = row.iter().map(f32::to_string).collect();
                println!("{}", row.join(" "));
            }
        }
    }
    eprintln!(
        "{what}, {} valid of {rows} rows, on {device}",
        out.valid_rows
    );
}
