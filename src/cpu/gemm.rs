//! Row-major matrix products through the `gemm` crate, on rayon's threads. Each element of a
//! product is summed over k in one order by one thread, whatever the thread count, so a product
//! has the same bits on any number of threads (`tests/linear.rs` checks it).

use gemm::{Parallelism, gemm};

/// Products of fewer multiply-adds than this stay on the calling thread.
const PARALLEL_MIN_FLOPS: usize = 1 << 20;

/// An operand of [`matmul`]: its row-major values, as the product takes them or transposed.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub values: &'a [f32],
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    /// A matrix stored as the product takes it.
    pub fn plain(values: &'a [f32]) -> Self {
        Operand {
            values,
            transposed: false,
        }
    }

    /// A matrix stored transposed: the product takes its transpose.
    pub fn transposed(values: &'a [f32]) -> Self {
        Operand {
            values,
            transposed: true,
        }
    }

    /// The (column, row) strides of a `rows` × `columns` operand.
    fn strides(&self, rows: usize, columns: usize) -> (isize, isize) {
        if self.transposed {
            (rows as isize, 1)
        } else {
            (1, columns as isize)
        }
    }
}

/// `dst` [m, n] row-major ← a [m, k] · b [k, n], or += where `add`.
pub(crate) fn matmul(
    [m, n, k]: [usize; 3],
    dst: &mut [f32],
    add: bool,
    a: Operand<'_>,
    b: Operand<'_>,
) {
    assert!(dst.len() >= m * n && a.values.len() >= m * k && b.values.len() >= k * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !add {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let (a_cs, a_rs) = a.strides(m, k);
    let (b_cs, b_rs) = b.strides(k, n);
    let threads = if m * n * k < PARALLEL_MIN_FLOPS {
        Parallelism::None
    } else {
        Parallelism::Rayon(rayon::current_num_threads())
    };
    // SAFETY: the asserts above keep every index the strides reach within its slice; `dst`
    // does not alias `a` or `b` (it is borrowed mutably).
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            add,
            a.values.as_ptr(),
            a_cs,
            a_rs,
            b.values.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            threads,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_of_every_layout_match_a_plain_loop() {
        let [m, n, k] = [5, 7, 3];
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| 2.0 - i as f32 * 0.25).collect();
        let want: Vec<f32> = (0..m * n)
            .map(|i| (0..k).map(|p| a[i / n * k + p] * b[p * n + i % n]).sum())
            .collect();
        let transpose = |x: &[f32], rows: usize, cols: usize| -> Vec<f32> {
            (0..rows * cols)
                .map(|i| x[i % rows * cols + i / rows])
                .collect()
        };
        let (at, bt) = (transpose(&a, m, k), transpose(&b, k, n));
        for (a, b) in [
            (Operand::plain(&a), Operand::plain(&b)),
            (Operand::transposed(&at), Operand::plain(&b)),
            (Operand::plain(&a), Operand::transposed(&bt)),
            (Operand::transposed(&at), Operand::transposed(&bt)),
        ] {
            let mut dst = vec![1.0; m * n];
            matmul([m, n, k], &mut dst, false, a, b);
            assert_eq!(dst, want);
            matmul([m, n, k], &mut dst, true, a, b);
            assert_eq!(dst, want.iter().map(|x| 2.0 * x).collect::<Vec<_>>());
        }
    }
}
