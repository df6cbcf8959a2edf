//! What the measurement of every shape shares: the arguments, the passes, the progress bar, and
//! the timing of calls after a warm-up over rotating inputs.

use std::time::Instant;

use indicatif::ProgressBar;
use xent::Result;

use super::args::BenchArgs;
use super::report::Pass;

/// What the measurement of every shape shares: the arguments, the passes and the progress bar.
pub struct Bench<'a> {
    /// The arguments of the run.
    pub args: &'a BenchArgs,
    /// The passes to time, in the order of their rows.
    pub passes: &'a [Pass],
    /// The progress bar: a step per probe, upload and timed call.
    pub progress: ProgressBar,
}

impl Bench<'_> {
    /// Times `--runs` calls of `f` on `sets` rotating input sets after `--warmup` untimed ones;
    /// `f` returns the seconds it measured itself, or `None` to be timed on the host.
    pub fn time(
        &self,
        sets: usize,
        mut f: impl FnMut(usize) -> Result<Option<f64>>,
    ) -> Result<Vec<f64>> {
        let (runs, warmup) = (self.args.runs as usize, self.args.warmup as usize);
        for w in 0..warmup {
            f(w % sets)?;
        }
        let mut seconds = Vec::with_capacity(runs);
        for r in 0..runs {
            let start = Instant::now();
            let own = f((warmup + r) % sets)?;
            seconds.push(own.unwrap_or_else(|| start.elapsed().as_secs_f64()));
        }
        self.progress.inc(1);
        seconds.sort_by(f64::total_cmp);
        Ok(seconds)
    }
}

/// The name of a clock in every output.
pub fn clock_name(clock: xent::Clock) -> &'static str {
    match clock {
        xent::Clock::Timestamps => "timestamps",
        xent::Clock::WallAfterSync => "wall after sync",
        xent::Clock::Host => "host",
    }
}
