//! The fast CPU path's threads: the caller and helper threads that, between calls, spin a while
//! before they sleep.
//!
//! A sleeping thread can take longer to wake (a futex wake and, on a virtual machine, an idle
//! virtual CPU's) than a whole small call's work. So the helpers keep watching for the next call
//! for [`spin`] after each one (1 ms unless `XENT_SPIN_US` says otherwise; 0 sleeps at once), as
//! OpenMP's default wait policy does, and back-to-back calls find them awake. A caller never
//! waits for a helper to start: it works through the tasks itself, and helpers that are late
//! find less or nothing left.
//!
//! One call holds the helpers at a time; a call that finds them held (another thread's call, or
//! a call from inside a task) runs its tasks on its own thread.

use std::any::Any;
use std::env::VarError;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Below this many elements a call stays on the calling thread: handing out its tasks costs more
/// than it saves.
pub(crate) const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// Spins of a waiting helper between looks at the clock.
const SPINS_PER_CLOCK: u32 = 256;

/// Runs every task and returns their results in task order. Small calls stay on the calling
/// thread. Larger ones are shared between the calling thread and up to rayon's thread count less
/// one helper.
pub(crate) fn run_tasks<T: Send, R: Send>(
    tasks: Vec<T>,
    elements: usize,
    run: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let helpers = if elements < PARALLEL_MIN_ELEMENTS {
        0
    } else {
        rayon::current_num_threads().saturating_sub(1)
    };
    share(pool(), tasks, helpers, run)
}

/// Runs every task on the calling thread and up to `helpers` of `pool`'s helpers, each claiming
/// the next task from a counter until none is left, and returns their results in task order.
fn share<T: Send, R: Send>(
    pool: &Pool,
    tasks: Vec<T>,
    helpers: usize,
    run: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let helpers = helpers.min(tasks.len().saturating_sub(1));
    if helpers == 0 {
        return tasks.into_iter().map(run).collect();
    }
    let slots: Vec<Mutex<(Option<T>, Option<R>)>> = tasks
        .into_iter()
        .map(|t| Mutex::new((Some(t), None)))
        .collect();
    let next = AtomicUsize::new(0);
    let work = || {
        while let Some(slot) = slots.get(next.fetch_add(1, Ordering::Relaxed)) {
            let task = lock(slot).0.take();
            if let Some(task) = task {
                let result = run(task);
                lock(slot).1 = Some(result);
            }
        }
    };
    pool.run(helpers, &work);
    slots
        .into_iter()
        .filter_map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()).1)
        .collect()
}

/// How long helpers watch for the next call when `XENT_SPIN_US` is not set.
const DEFAULT_SPIN: Duration = Duration::from_millis(1);

/// How long a helper watches for the next call before it sleeps: `XENT_SPIN_US` microseconds,
/// else 1 ms; an error, which the fast engine's calls return, when the variable is not a whole
/// number.
pub(crate) fn spin() -> Result<Duration> {
    static SPIN: OnceLock<std::result::Result<Duration, String>> = OnceLock::new();
    SPIN.get_or_init(|| match std::env::var(SPIN_VAR) {
        Err(VarError::NotPresent) => Ok(DEFAULT_SPIN),
        Ok(v) => v
            .trim()
            .parse()
            .map(Duration::from_micros)
            .map_err(|_| format!("{v:?} is not a whole number of microseconds")),
        Err(VarError::NotUnicode(v)) => Err(format!("{v:?} is not a whole number of microseconds")),
    })
    .clone()
    .map_err(|reason| Error::InvalidOption {
        option: SPIN_VAR,
        reason,
    })
}

const SPIN_VAR: &str = "XENT_SPIN_US";

/// A lock whose data a panic cannot leave half-written, so a poisoned one is taken as it is.
fn lock<S>(mutex: &Mutex<S>) -> MutexGuard<'_, S> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

/// A call's work, shared with the helpers: a pointer to the caller's closure, valid while the
/// call is open (see [`Pool::run`]).
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn() + Sync + 'static));

// SAFETY: the closure is `Sync`, and `Pool::run` keeps it alive while any helper holds the pointer.
unsafe impl Send for Job {}

#[derive(Default)]
struct Shared {
    /// Bumped for each call: what waiting helpers watch.
    generation: AtomicU64,
    /// The open call's work and how many helpers it wants; `None` between calls.
    job: Mutex<Option<(Job, usize)>>,
    /// Helpers inside the open call's work.
    active: AtomicUsize,
    /// Helpers asleep, or about to be, on `wake`.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
    /// The first panic of a helper's work in the open call, which the caller goes on with.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

#[derive(Default)]
struct Pool {
    shared: Arc<Shared>,
    /// Whether a call holds the helpers.
    held: AtomicBool,
    /// Helper threads started so far (started when a call first wants them).
    started: Mutex<usize>,
}

impl Pool {
    /// Runs `work` on the calling thread and on up to `helpers` helpers at once, and returns once
    /// every one of them has left it.
    fn run(&self, helpers: usize, work: &(dyn Fn() + Sync)) {
        if self
            .held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            work();
            return;
        }
        let helpers = self.start(helpers);
        let shared = &self.shared;
        // SAFETY: only the lifetime is erased. The pointer is withdrawn from `job` below, and the
        // helpers that took it have all left it (`active` is 0), before this function returns.
        let job = Job(unsafe {
            std::mem::transmute::<*const (dyn Fn() + Sync + '_), *const (dyn Fn() + Sync + 'static)>(
                work,
            )
        });
        *lock(&shared.job) = Some((job, helpers));
        shared.generation.fetch_add(1, Ordering::SeqCst);
        if shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _sleep = lock(&shared.sleep);
            shared.wake.notify_all();
        }
        let caller = catch_unwind(AssertUnwindSafe(work));
        // Helpers join under this lock, so once it is withdrawn none can, and `active` counts
        // every one that did.
        *lock(&shared.job) = None;
        // Helpers still in it finish a task each; one that lost its CPU gets it back sooner
        // when this thread gives its own up.
        while shared.active.load(Ordering::Acquire) != 0 {
            for _ in 0..SPINS_PER_CLOCK {
                std::hint::spin_loop();
            }
            std::thread::yield_now();
        }
        let helper = lock(&shared.panic).take();
        self.held.store(false, Ordering::Release);
        if let Some(payload) = caller.err().or(helper) {
            resume_unwind(payload);
        }
    }

    /// Starts helper threads until there are `wanted`; returns how many of them a call may use:
    /// `wanted`, or fewer where the system would start no more.
    fn start(&self, wanted: usize) -> usize {
        let mut started = lock(&self.started);
        let spin = spin().unwrap_or(DEFAULT_SPIN);
        while *started < wanted {
            let shared = Arc::clone(&self.shared);
            let index = *started;
            let spawned = std::thread::Builder::new()
                .name(format!("xent-cpu-{index}"))
                .spawn(move || help(&shared, index, spin));
            if spawned.is_err() {
                break;
            }
            *started += 1;
        }
        wanted.min(*started)
    }
}

/// A helper's life: wait for a call (watching for `spin`, then asleep), join it if it wants
/// this many helpers, work, repeat.
fn help(shared: &Shared, index: usize, spin: Duration) {
    let mut seen = shared.generation.load(Ordering::SeqCst);
    loop {
        seen = wait_for_call(shared, seen, spin);
        let job = {
            let open = lock(&shared.job);
            match *open {
                Some((job, helpers)) if index < helpers => {
                    shared.active.fetch_add(1, Ordering::Relaxed);
                    job
                }
                _ => continue,
            }
        };
        // SAFETY: the call that published `job` stays open, keeping the closure alive, until
        // `active` is back to 0.
        let work = unsafe { &*job.0 };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(work)) {
            lock(&shared.panic).get_or_insert(payload);
        }
        shared.active.fetch_sub(1, Ordering::Release);
    }
}

/// Waits until the generation differs from `seen`, and returns it: watching it for `spin`,
/// giving up the CPU between looks to any thread that wants it, then asleep.
fn wait_for_call(shared: &Shared, seen: u64, spin: Duration) -> u64 {
    let start = Instant::now();
    loop {
        for _ in 0..SPINS_PER_CLOCK {
            let now = shared.generation.load(Ordering::Acquire);
            if now != seen {
                return now;
            }
        }
        std::thread::yield_now();
        if start.elapsed() >= spin {
            break;
        }
    }
    let mut sleep = lock(&shared.sleep);
    shared.sleepers.fetch_add(1, Ordering::SeqCst);
    let mut now = shared.generation.load(Ordering::SeqCst);
    while now == seen {
        sleep = shared.wake.wait(sleep).unwrap_or_else(|e| e.into_inner());
        now = shared.generation.load(Ordering::SeqCst);
    }
    shared.sleepers.fetch_sub(1, Ordering::SeqCst);
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tasks of numbers to sum.
    fn tasks(count: usize) -> Vec<Vec<u64>> {
        (0..count)
            .map(|t| (0..4096).map(|i| i * 7 + t as u64).collect())
            .collect()
    }

    fn sums(tasks: &[Vec<u64>]) -> Vec<u64> {
        tasks.iter().map(|t| t.iter().sum()).collect()
    }

    #[test]
    fn every_task_runs_once_and_results_keep_task_order() {
        // Many helpers first, so that the later calls find more started than they ask for.
        for helpers in [7, 0, 1, 2] {
            for count in [1, 2, 5, 64] {
                let work = tasks(count);
                let want = sums(&work);
                let runs = AtomicUsize::new(0);
                let threads = Mutex::new(std::collections::HashSet::new());
                let got = share(pool(), work, helpers, |t| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    lock(&threads).insert(std::thread::current().id());
                    // Long enough that every helper allowed in gets a task.
                    std::thread::sleep(Duration::from_micros(200));
                    t.iter().sum::<u64>()
                });
                assert_eq!(got, want, "{helpers} helpers, {count} tasks");
                assert_eq!(runs.into_inner(), count);
                let threads = lock(&threads).len();
                assert!(
                    threads <= helpers + 1,
                    "{threads} threads for {helpers} helpers"
                );
            }
        }
    }

    #[test]
    fn calls_from_tasks_and_from_other_threads_run_on_their_own_thread() {
        let outer = tasks(6);
        let want: Vec<u64> = sums(&outer).iter().map(|s| s * 2).collect();
        let got = std::thread::scope(|scope| {
            let calls: Vec<_> = (0..4)
                .map(|_| {
                    let outer = outer.clone();
                    scope.spawn(|| {
                        share(pool(), outer, 2, |t| {
                            // A call inside a task finds the helpers held.
                            let halves = vec![t.clone(), t];
                            share(pool(), halves, 2, |h| h.iter().sum::<u64>())
                                .iter()
                                .sum::<u64>()
                        })
                    })
                })
                .collect();
            calls
                .into_iter()
                .map(|c| c.join().expect("no panic"))
                .collect::<Vec<_>>()
        });
        for result in got {
            assert_eq!(result, want);
        }
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_leaves_the_pool_working() {
        for bad in [0, 5] {
            let result = std::panic::catch_unwind(|| {
                share(pool(), tasks(8), 1, |t| {
                    assert!(t[0] != bad, "task {bad} fails");
                    t[0]
                })
            });
            // Whichever thread ran it, the caller panics with the task's own message.
            let payload = result.expect_err("the task's panic was lost");
            let message = payload.downcast_ref::<String>().map(String::as_str);
            assert_eq!(message, Some(format!("task {bad} fails").as_str()));
        }
        let work = tasks(8);
        let want = sums(&work);
        assert_eq!(share(pool(), work, 1, |t| t.iter().sum::<u64>()), want);
    }

    #[test]
    fn helpers_sleep_after_their_spin_and_wake_for_the_next_call() {
        let pool = Pool::default();
        pool.run(1, &|| ());
        let asleep = Instant::now();
        while pool.shared.sleepers.load(Ordering::SeqCst) == 0 {
            assert!(
                asleep.elapsed() < Duration::from_secs(10),
                "the helper never slept"
            );
            std::thread::sleep(DEFAULT_SPIN);
        }
        let caller = std::thread::current().id();
        let helped = AtomicBool::new(false);
        pool.run(1, &|| {
            if std::thread::current().id() == caller {
                // The call stays open until the helper has joined it.
                let start = Instant::now();
                while !helped.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(10) {
                    std::thread::yield_now();
                }
            } else {
                helped.store(true, Ordering::SeqCst);
            }
        });
        assert!(
            helped.into_inner(),
            "the sleeping helper did not wake for the call"
        );
    }
}
