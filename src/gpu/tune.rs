//! The autotune: for each class of request shapes, the first calls each run one candidate row
//! kernel, timed by the same clock as the benchmark's kernel rows, twice over; from then on the
//! fastest is used. Off by default: which candidate wins depends on timing, so two processes could
//! pick differently and give results that differ in the last bits, while the fixed rule gives the
//! same bits on every run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use super::spec::Spec;
use super::variant::Variant;
use crate::request::{Dtype, LossKind};

/// Samples per candidate before one is chosen.
const ROUNDS: usize = 2;

/// Requests that share a tuned kernel: the same loss, dtype and gradient, and rows and batch in
/// the same power-of-two bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ShapeClass {
    loss: LossKind,
    dtype: Dtype,
    grad: bool,
    classes_log2: u32,
    batch_log2: u32,
}

impl ShapeClass {
    fn of(req: &Spec) -> Self {
        ShapeClass {
            loss: req.loss,
            dtype: req.dtype,
            grad: req.options.grad,
            classes_log2: req.classes.next_power_of_two().trailing_zeros(),
            batch_log2: req.batch.next_power_of_two().trailing_zeros(),
        }
    }
}

impl std::fmt::Display for ShapeClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}{}, B ≤ 2^{}, C ≤ 2^{}",
            self.loss.name(),
            self.dtype.name(),
            if self.grad { " with gradient" } else { "" },
            self.batch_log2,
            self.classes_log2
        )
    }
}

enum Entry {
    Trying {
        candidates: Vec<Variant>,
        /// Seconds per element of each candidate's runs.
        samples: Vec<Vec<f64>>,
        next: usize,
    },
    Chosen(Variant),
}

/// A trial in progress: the class and the candidate a call runs.
pub(crate) type Trial = (ShapeClass, usize);

#[derive(Default)]
pub(crate) struct Tuner {
    on: AtomicBool,
    table: Mutex<HashMap<ShapeClass, Entry>>,
}

impl Tuner {
    pub fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// The row kernel for a request, and the trial it is part of while its class is being tuned.
    pub fn pick(&self, req: &Spec, cpu_adapter: bool) -> (Variant, Option<Trial>) {
        if !self.on.load(Ordering::Relaxed) {
            return (Variant::rule(req, cpu_adapter), None);
        }
        let class = ShapeClass::of(req);
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = table.entry(class).or_insert_with(|| {
            let candidates = Variant::candidates(req, cpu_adapter);
            match candidates[..] {
                [only] => Entry::Chosen(only),
                _ => Entry::Trying {
                    samples: vec![Vec::new(); candidates.len()],
                    candidates,
                    next: 0,
                },
            }
        });
        match entry {
            Entry::Chosen(variant) => (*variant, None),
            Entry::Trying {
                candidates, next, ..
            } => {
                let i = *next % candidates.len();
                *next += 1;
                (candidates[i], Some((class, i)))
            }
        }
    }

    /// The row kernel for a request without a trial: the one chosen for its class, or else the
    /// rule's. For calls that are not timed.
    pub fn settled(&self, req: &Spec, cpu_adapter: bool) -> Variant {
        if self.on.load(Ordering::Relaxed) {
            let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(Entry::Chosen(variant)) = table.get(&ShapeClass::of(req)) {
                return *variant;
            }
        }
        Variant::rule(req, cpu_adapter)
    }

    /// Records a trial's kernel time; once every candidate has its samples, the fastest (by its
    /// best sample) is chosen for the class.
    pub fn record(&self, (class, i): Trial, seconds_per_element: f64) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(Entry::Trying {
            candidates,
            samples,
            ..
        }) = table.get_mut(&class)
        else {
            return;
        };
        samples[i].push(seconds_per_element);
        if samples.iter().all(|s| s.len() >= ROUNDS) {
            let best = |s: &Vec<f64>| s.iter().copied().fold(f64::INFINITY, f64::min);
            let winner = (0..candidates.len())
                .min_by(|&a, &b| best(&samples[a]).total_cmp(&best(&samples[b])))
                .unwrap_or(0);
            let chosen = candidates[winner];
            table.insert(class, Entry::Chosen(chosen));
        }
    }

    /// Whether some class still has trials to run.
    pub fn trying(&self) -> bool {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.values().any(|e| matches!(e, Entry::Trying { .. }))
    }

    /// One line per tuned class: the class and its kernel, or how far its trials have come.
    pub fn report(&self) -> Vec<String> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lines: Vec<String> = table
            .iter()
            .map(|(class, entry)| match entry {
                Entry::Chosen(variant) => format!("{class}: {variant}"),
                Entry::Trying {
                    candidates,
                    samples,
                    ..
                } => format!(
                    "{class}: trying {} candidates, {} of {} runs done",
                    candidates.len(),
                    samples.iter().map(Vec::len).sum::<usize>(),
                    candidates.len() * ROUNDS
                ),
            })
            .collect();
        lines.sort();
        lines
    }
}
