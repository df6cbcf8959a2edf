//! `xent bench`: the benchmark harness, whose figures are the project's performance claims.
//!
//! For every shape of the grid and every device it measures, over fresh inputs rotated from run
//! to run so that caches do not flatter the numbers:
//! - on each GPU adapter, the kernel time (timestamps where the adapter has them, else wall time
//!   after a sync) and the end-to-end time of a call on host data (upload, kernels, reduction and
//!   readback);
//! - on the CPU, the fast path's call, and the float64 reference's at small shapes;
//! - on each device, a bandwidth probe that reads the same bytes once and sums them, the ceiling
//!   every row is set against;
//! - for each linear head (`--linear-shape NxDxV`), on every device, a GEMM probe of each pass
//!   and the calls (on a GPU, end to end and kernel), in GFLOP/s, each call's peak memory taken
//!   in a child process (`peak`), and an adapter's GEMM probe against the CPU's;
//! - with `--torch`, PyTorch's `F.cross_entropy` on the same shapes and thread count, in the same
//!   run, and its `F.linear_cross_entropy` on the linear heads; with `--baseline`, rows measured
//!   elsewhere (candle, by `benches/compare_candle`).
//!
//! It prints a table, and writes JSON, CSV and an SVG plot when asked. Data flows one way: the
//! arguments select inputs and devices, the runner and the baselines make rows of the report
//! model, and the table, the files and the plot draw those rows.

mod args;
mod baselines;
mod devices;
mod export;
mod files;
mod inputs;
mod linear;
mod linear_call;
mod peak;
mod plot;
mod report;
mod runner;
mod table;
mod timing;

use xent::{Dtype, Error, LossKind, Result};

pub use args::BenchArgs;
use devices::Device;
pub use peak::{LinearChildArgs, run_child as run_linear_child};
use report::{Pass, Shape};

/// Runs the benchmark that `args` describes, and prints and writes its report.
pub fn run(args: &BenchArgs) -> Result<()> {
    let loss = args.loss.kind();
    let dtype = args.dtype.dtype();
    let shapes = args.shapes();
    let passes = args.passes();
    if passes.contains(&Pass::FwdBwdInPlace) && dtype != Dtype::F32 {
        return Err(Error::InvalidOption {
            option: "pass",
            reason: format!(
                "a gradient in place is written over f32 logits, not {}",
                dtype.name()
            ),
        });
    }
    let linear = shapes.iter().any(|s| matches!(s, Shape::Linear(..)));
    if linear && (loss != LossKind::CrossEntropy || dtype != Dtype::F32) {
        return Err(Error::InvalidOption {
            option: "linear-shape",
            reason: format!(
                "a linear head is timed with cross-entropy on f32 hidden states and weights, \
                 not {} on {}",
                loss.name(),
                dtype.name()
            ),
        });
    }
    let devices = Device::open(&args.devices, args.autotune);
    let mut rows = runner::measure(args, loss, &shapes, passes, &devices)?;
    if args.torch {
        rows.extend(baselines::torch_rows(args, loss, &shapes, passes)?);
    }
    for path in &args.baseline {
        rows.extend(baselines::baseline_rows(path, &shapes, dtype, loss)?);
    }
    table::print(&rows, args);
    if args.autotune {
        for device in devices.iter().filter(|d| d.is_gpu()) {
            println!("autotune on {}:", device.engine.device());
            for line in device.engine.autotuned() {
                println!("  {line}");
            }
        }
    }
    if let Some(path) = &args.json {
        export::write_json(path, &rows)?;
    }
    if let Some(path) = &args.csv {
        export::write_csv(path, &rows)?;
    }
    if let Some(path) = &args.plot {
        plot::draw(path, &rows)?;
    }
    Ok(())
}
