//! One call of a linear head as the benchmark makes it, in the timing loop and in the child that
//! measures its peak memory: fwd (the loss alone) or fwd+bwd (the gradients of H, W and b into
//! buffers of the caller's), on the host clock or with its kernel time.

use xent::{Engine, KernelTime, LinearGradsMut, Request, Result};

use super::report::Pass;

/// The caller's gradient buffers of a pass of N × D × V: dH, dW and db for fwd+bwd, none for
/// fwd.
pub struct LinearCall {
    pass: Pass,
    hidden: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl LinearCall {
    /// The buffers of `pass` on N × D × V, each value `fill` (written now, so that their pages
    /// are resident before any call).
    pub fn new([n, d, v]: [usize; 3], pass: Pass, fill: f32) -> Self {
        let buffer = |len| vec![fill; if pass == Pass::FwdBwd { len } else { 0 }];
        LinearCall {
            pass,
            hidden: buffer(n * d),
            weight: buffer(v * d),
            bias: buffer(v),
        }
    }

    /// Makes the call of `request` (with a bias) on `engine`: with `timed`, returns its kernel
    /// time ([`Engine::compute_linear_timed`]); else `None`
    /// ([`Engine::compute_linear_into`]).
    pub fn run(
        &mut self,
        engine: &Engine,
        request: &Request,
        timed: bool,
    ) -> Result<Option<KernelTime>> {
        let grads = match self.pass {
            Pass::FwdBwd => LinearGradsMut {
                hidden: Some(&mut self.hidden),
                weight: Some(&mut self.weight),
                bias: Some(&mut self.bias),
                add: false,
            },
            _ => LinearGradsMut::default(),
        };
        if timed {
            Ok(Some(engine.compute_linear_timed(request, grads)?.1))
        } else {
            engine.compute_linear_into(request, grads)?;
            Ok(None)
        }
    }
}
