//! Row-major matrix products through the `gemm` crate, on rayon's threads. Each element of a
//! product is summed over k in one order by one thread, whatever the thread count, so a product
//! has the same bits on any number of threads (`tests/linear.rs` checks it).

use gemm::{Parallelism, gemm};

/// Products of fewer multiply-adds than this stay on the calling thread.
const PARALLEL_MIN_FLOPS: usize = 1 << 20;

/// An operand of [`matmul`]: row-major values, as the product takes them or transposed, whose
/// stored rows are `stride` apart (a block of a wider matrix), or packed.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub values: &'a [f32],
    pub transposed: bool,
    pub stride: Option<usize>,
}

impl<'a> Operand<'a> {
    /// A matrix stored as the product takes it.
    pub fn plain(values: &'a [f32]) -> Self {
        Operand {
            values,
            transposed: false,
            stride: None,
        }
    }

    /// A matrix stored transposed: the product takes its transpose.
    pub fn transposed(values: &'a [f32]) -> Self {
        Operand {
            values,
            transposed: true,
            stride: None,
        }
    }

    /// The same operand, its stored rows `stride` apart.
    pub fn strided(self, stride: usize) -> Self {
        Operand {
            stride: Some(stride),
            ..self
        }
    }

    /// The (column, row) strides of the `rows` × `columns` matrix the product takes, and the
    /// values it reaches.
    fn strides(&self, rows: usize, columns: usize) -> ((isize, isize), usize) {
        let (stored_rows, stored_columns) = if self.transposed {
            (columns, rows)
        } else {
            (rows, columns)
        };
        let stride = self.stride.unwrap_or(stored_columns);
        let reach = (stored_rows.max(1) - 1) * stride + stored_columns;
        let strides = if self.transposed {
            (stride as isize, 1)
        } else {
            (1, stride as isize)
        };
        (strides, reach)
    }
}

/// Where [`matmul`] puts its product: row-major values (or the product's transpose), whose rows
/// are `stride` apart (a block of a wider matrix) or packed, overwritten or added to.
pub(crate) struct Dst<'a> {
    pub values: &'a mut [f32],
    pub transposed: bool,
    pub stride: Option<usize>,
    pub add: bool,
}

impl<'a> Dst<'a> {
    /// The product written over `values`, row-major and packed.
    pub fn write(values: &'a mut [f32]) -> Self {
        Dst {
            values,
            transposed: false,
            stride: None,
            add: false,
        }
    }

    /// The same, added to what `values` hold where `add`.
    pub fn adding(self, add: bool) -> Self {
        Dst { add, ..self }
    }

    /// The same, the product's transpose stored.
    pub fn transposed(self) -> Self {
        Dst {
            transposed: true,
            ..self
        }
    }

    /// The same, its rows `stride` apart.
    pub fn strided(self, stride: usize) -> Self {
        Dst {
            stride: Some(stride),
            ..self
        }
    }
}

/// `dst` ← a [m, k] · b [k, n], or `dst` += that product.
pub(crate) fn matmul([m, n, k]: [usize; 3], dst: Dst<'_>, a: Operand<'_>, b: Operand<'_>) {
    let Dst {
        values: dst,
        transposed: dst_transposed,
        stride: dst_stride,
        add,
    } = dst;
    if m == 0 || n == 0 {
        return;
    }
    let dst_operand = Operand {
        values: &*dst,
        transposed: dst_transposed,
        stride: dst_stride,
    };
    let ((dst_cs, dst_rs), dst_reach) = dst_operand.strides(m, n);
    assert!(dst.len() >= dst_reach);
    if k == 0 {
        if !add {
            for i in 0..m {
                for j in 0..n {
                    dst[i * dst_rs as usize + j * dst_cs as usize] = 0.0;
                }
            }
        }
        return;
    }
    let ((a_cs, a_rs), a_reach) = a.strides(m, k);
    let ((b_cs, b_rs), b_reach) = b.strides(k, n);
    assert!(a.values.len() >= a_reach && b.values.len() >= b_reach);
    let threads = if m * n * k < PARALLEL_MIN_FLOPS {
        Parallelism::None
    } else {
        Parallelism::Rayon(rayon::current_num_threads())
    };
    // SAFETY: the assert above keeps every index the strides reach within its slice; `dst` does
    // not alias `a` or `b` (it is borrowed mutably).
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs,
            dst_rs,
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
            matmul([m, n, k], Dst::write(&mut dst), a, b);
            assert_eq!(dst, want);
            matmul([m, n, k], Dst::write(&mut dst).adding(true), a, b);
            assert_eq!(dst, want.iter().map(|x| 2.0 * x).collect::<Vec<_>>());
            let mut dst_t = vec![1.0; m * n];
            matmul([m, n, k], Dst::write(&mut dst_t).transposed(), a, b);
            assert_eq!(dst_t, transpose(&want, m, n));
        }
        // Columns 2..5 of b, a block of its rows 7 apart, into columns 2..5 of a [m, n] product.
        let mut block = vec![9.0; m * n];
        let b_block = Operand::plain(&b[2..]).strided(n);
        let dst = Dst::write(&mut block[2..]).strided(n);
        matmul([m, 3, k], dst, Operand::plain(&a), b_block);
        for i in 0..m {
            assert_eq!(block[i * n + 2..i * n + 5], want[i * n + 2..i * n + 5]);
            assert_eq!(block[i * n..i * n + 2], [9.0; 2]);
        }
    }
}
