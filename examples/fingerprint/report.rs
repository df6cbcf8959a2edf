//! One engine's lines: a hash per case, printed as it comes, then the hash of them all.

use std::collections::HashSet;

use xent::{Engine, Result};

use crate::fnv::Fnv;

/// The lines of one engine, and the cases that did not do what they were written to do.
pub struct Report {
    engine: String,
    all: Fnv,
    names: HashSet<String>,
    surprises: Vec<String>,
}

impl Report {
    /// The engine is named by its backend and adapter.
    pub fn new(engine: &Engine) -> Self {
        let device = engine.device();
        Report {
            engine: format!("{}/{}", device.backend, device.adapter),
            all: Fnv::default(),
            names: HashSet::new(),
            surprises: Vec::new(),
        }
    }

    /// Prints a case's line and feeds it to the engine's hash. Each case name is used once.
    pub fn line(&mut self, case: &str, hash: u64) {
        if !self.names.insert(case.to_string()) {
            self.surprise(case, "a second case of this name");
        }
        let line = format!("{}\t{case}\t{hash:016x}", self.engine);
        println!("{line}");
        self.all.tag(&line);
    }

    /// A case hashed as `feed` says.
    pub fn hashed(&mut self, case: &str, feed: impl FnOnce(&mut Fnv)) {
        let mut h = Fnv::default();
        feed(&mut h);
        self.line(case, h.finish());
    }

    /// A case that must succeed: its result hashed as `feed` says, or its error's text (a
    /// surprise).
    pub fn ok<T>(&mut self, case: &str, result: &Result<T>, feed: impl FnOnce(&mut Fnv, &T)) {
        if let Err(e) = result {
            self.surprise(case, &format!("failed: {e}"));
        }
        let mut h = Fnv::default();
        h.result(result, feed);
        self.line(case, h.finish());
    }

    /// A case that must fail: its error's text hashed (a success is a surprise).
    pub fn error<T>(&mut self, case: &str, result: &Result<T>) {
        if result.is_ok() {
            self.surprise(case, "succeeded, but is a bad request");
        }
        let mut h = Fnv::default();
        h.result(result, |h, _| h.tag("unexpected success"));
        self.line(case, h.finish());
    }

    /// Notes a case that did not do what it was written to do.
    pub fn surprise(&mut self, case: &str, what: &str) {
        self.surprises
            .push(format!("{}\t{case}: {what}", self.engine));
    }

    /// Prints the engine's last line, the hash of all its lines, and returns the surprises.
    pub fn finish(self) -> Vec<String> {
        println!(
            "{}\tall {} cases\t{:016x}",
            self.engine,
            self.names.len(),
            self.all.finish()
        );
        self.surprises
    }
}
