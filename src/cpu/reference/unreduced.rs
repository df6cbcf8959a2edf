//! What every loss family of the reference gives: its values before the reduction, and their
//! derivatives.

use crate::request::Checked;

/// Per-row (or per-element) values of the main loss in nats and of the z-loss term; and, when a
/// gradient is asked for, their derivatives with respect to each (soft-capped) input element.
#[derive(Default)]
pub(super) struct Unreduced {
    pub main: Vec<f64>,
    pub z: Vec<f64>,
    pub lse: Vec<f64>,
    pub d_main: Vec<f64>,
    pub d_z: Vec<f64>,
}

impl Unreduced {
    /// Appends one row's (or element's) value and z term.
    pub fn value(&mut self, main: f64, z: f64) {
        self.main.push(main);
        self.z.push(z);
    }

    /// Appends one element's derivatives, when the request asks for a gradient.
    pub fn derivative(&mut self, req: &Checked, d_main: f64, d_z: f64) {
        if req.options.grad {
            self.d_main.push(d_main);
            self.d_z.push(d_z);
        }
    }
}
