//! Which shape a row kernel takes (`Variant`): the rule that picks one from a request's shape and
//! the adapter, with no measurement, and the candidates the autotune tries.

use super::spec::Spec;

/// Rows per workgroup of `row_per_invocation`, at most; also the rows per workgroup of the
/// passes over whole rows after the row kernel (`merge_segments`, `stitch_edges`).
pub(crate) const ROWS_PER_GROUP: u32 = 64;
/// Up to this many classes, one invocation scans a whole row: a workgroup with barriers costs far
/// more than the scan of a short row, so short rows must not each get one.
const ROW_PER_INVOCATION_MAX_CLASSES: usize = 64;
/// On a CPU adapter, batches of at least this many rows get one invocation per row whatever their
/// length: an invocation there is a SIMD lane, and a lane streams its own row with no barrier.
const ROW_PER_INVOCATION_MIN_ROWS_ON_CPU: usize = 8;
/// On a CPU adapter, rows longer than 64 classes go 8 to a workgroup: one SIMD batch of lanes
/// each, which keeps the rows being streamed at once few. Shorter rows keep 64 to a workgroup.
const LONG_ROWS_PER_GROUP_ON_CPU: u32 = 8;
/// On a CPU adapter, a row that takes a workgroup (a row too long for one invocation, or a batch
/// under 8 rows) takes 8 invocations: one SIMD batch of lanes that read consecutive quads, with
/// the row's statistics merged once at the end.
const ROW_WORKGROUP_ON_CPU: usize = 8;

/// The shape of a row kernel: an invocation per row, this many rows per workgroup; a workgroup
/// of this many invocations per row; or rows split into segments, a workgroup each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Variant {
    RowPerInvocation(u32),
    RowPerWorkgroup(u32),
    SplitRow { workgroup: u32, segments: u32 },
}

/// Split rows: the fewest quads a segment gets (16 384 classes), so that the merge and the
/// segment's own reduction stay small against its scan.
const MIN_SEGMENT_QUADS: usize = 4096;
/// Split rows on a GPU: batches under this many rows are split, into about
/// `GPU_SPLIT_WORKGROUPS` workgroups in all: with a workgroup per row, a small batch of huge rows
/// leaves most of a GPU idle.
const GPU_SPLIT_BELOW_ROWS: usize = 128;
const GPU_SPLIT_WORKGROUPS: usize = 1024;

/// How many segments each row of `req` is split into (1: not split). On a CPU adapter, batches
/// with fewer rows than the CPU has cores, so that every core (llvmpipe's threads) has a
/// workgroup; on a GPU, batches under 128 rows, into about 1024 workgroups. Segments keep at
/// least `MIN_SEGMENT_QUADS`.
fn split_segments(req: &Spec, cpu_adapter: bool) -> usize {
    let target = if cpu_adapter {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else if req.batch < GPU_SPLIT_BELOW_ROWS {
        GPU_SPLIT_WORKGROUPS
    } else {
        1
    };
    let by_parallelism = target.div_ceil(req.batch.max(1));
    let by_length = req.classes.div_ceil(4) / MIN_SEGMENT_QUADS;
    by_parallelism.min(by_length).max(1)
}

/// The rule's workgroup for a row, or a segment of one: on a CPU adapter 8 invocations, or more
/// where one would scan past the loop limit; elsewhere enough that each scans a few dozen quads,
/// from 32 to 256.
fn row_workgroup(classes: usize, segments: u32, cpu_adapter: bool) -> u32 {
    let quads = (segment_quads(classes, segments) as usize).min(classes.div_ceil(4));
    let size = if cpu_adapter {
        // At the largest chunk (32 MiB), 128 invocations scan 16 384 quads each, within the
        // limit.
        quads
            .div_ceil(CPU_MAX_QUADS_PER_INVOCATION)
            .max(ROW_WORKGROUP_ON_CPU)
    } else {
        (quads / 32).clamp(32, 256)
    };
    size.next_power_of_two().min(256) as u32
}

/// Quads per segment when each row of `classes` is split into `segments`: a row spans at most
/// one quad more than its own length, where it starts mid-quad.
pub(crate) fn segment_quads(classes: usize, segments: u32) -> u32 {
    (classes.div_ceil(4) + 1).div_ceil(segments.max(1) as usize) as u32
}

/// On a CPU adapter, the most quads one invocation scans in one pass over a row. The cap exists
/// because llvmpipe stops an invocation's long loops, silently leaving the rest of the row
/// unwritten; a row may be scanned twice (with the gradient), and twice the cap stays within
/// llvmpipe's limit.
const CPU_MAX_QUADS_PER_INVOCATION: usize = 30_000;

/// Whether one invocation per row of `classes` stays within what the adapter runs.
fn lane_per_row_fits(classes: usize, cpu_adapter: bool) -> bool {
    !cpu_adapter || classes.div_ceil(4) <= CPU_MAX_QUADS_PER_INVOCATION
}

/// Whether a workgroup of `size` per row stays within what the adapter runs.
fn workgroup_fits(classes: usize, size: u32, cpu_adapter: bool) -> bool {
    !cpu_adapter || classes.div_ceil(4).div_ceil(size as usize) <= CPU_MAX_QUADS_PER_INVOCATION
}

/// Workgroup sizes an autotune tries for a workgroup per row.
const TUNED_WORKGROUPS: [u32; 3] = [64, 128, 256];
/// Smaller workgroups an autotune also tries for a workgroup per row, on CPU adapters.
const TUNED_WORKGROUPS_ON_CPU: [u32; 2] = [8, 16];
/// Rows per workgroup an autotune tries for a row per invocation, on CPU adapters.
const TUNED_ROWS_PER_GROUP: [u32; 4] = [8, 16, 32, 64];

impl Variant {
    /// The rule, with no measurement: a row per invocation for short rows, and on CPU adapters
    /// for batches of 8 or more; otherwise a workgroup per row: on CPU adapters of 8 invocations
    /// (more where a row would take one past the loop limit), elsewhere of enough invocations
    /// that each scans a few dozen quads, up to 256.
    pub fn rule(req: &Spec, cpu_adapter: bool) -> Self {
        if req.classes <= ROW_PER_INVOCATION_MAX_CLASSES
            || (cpu_adapter
                && req.batch >= ROW_PER_INVOCATION_MIN_ROWS_ON_CPU
                && lane_per_row_fits(req.classes, cpu_adapter))
        {
            return Variant::RowPerInvocation(
                if cpu_adapter && req.classes > ROW_PER_INVOCATION_MAX_CLASSES {
                    LONG_ROWS_PER_GROUP_ON_CPU
                } else {
                    ROWS_PER_GROUP
                },
            );
        }
        let segments = split_segments(req, cpu_adapter);
        let workgroup = row_workgroup(req.classes, segments as u32, cpu_adapter);
        if segments > 1 {
            Variant::SplitRow {
                workgroup,
                segments: segments as u32,
            }
        } else {
            Variant::RowPerWorkgroup(workgroup)
        }
    }

    /// For a gradient pass from merged row statistics (`segment_grad` alone): the rule's split,
    /// or rows whole, a workgroup each, as one segment.
    pub fn merged_stats(req: &Spec, cpu_adapter: bool) -> Self {
        match Self::rule(req, cpu_adapter) {
            split @ Variant::SplitRow { .. } => split,
            _ => Variant::SplitRow {
                workgroup: row_workgroup(req.classes, 1, cpu_adapter),
                segments: 1,
            },
        }
    }

    /// What an autotune tries for a request, the rule's choice first: for rows longer than 64
    /// classes, a workgroup per row at each tuned size, and on a CPU adapter (batches of 8 or
    /// more) a row per invocation at each tuned group size. Short rows have one choice.
    pub fn candidates(req: &Spec, cpu_adapter: bool) -> Vec<Self> {
        let mut all = vec![Self::rule(req, cpu_adapter)];
        if req.classes > ROW_PER_INVOCATION_MAX_CLASSES {
            let cpu_sizes = if cpu_adapter {
                &TUNED_WORKGROUPS_ON_CPU[..]
            } else {
                &[]
            };
            all.extend(
                cpu_sizes
                    .iter()
                    .chain(&TUNED_WORKGROUPS)
                    .filter(|&&size| workgroup_fits(req.classes, size, cpu_adapter))
                    .map(|&size| Variant::RowPerWorkgroup(size)),
            );
            if cpu_adapter
                && req.batch >= ROW_PER_INVOCATION_MIN_ROWS_ON_CPU
                && lane_per_row_fits(req.classes, cpu_adapter)
            {
                all.extend(TUNED_ROWS_PER_GROUP.map(Variant::RowPerInvocation));
            }
        }
        // Split rows: at least 2 segments, and twice as many, where segments stay long enough.
        let most = req.classes.div_ceil(4) / MIN_SEGMENT_QUADS;
        let least = split_segments(req, cpu_adapter).max(2);
        for segments in [least, 2 * least] {
            if segments <= most {
                let segments = segments as u32;
                all.push(Variant::SplitRow {
                    workgroup: row_workgroup(req.classes, segments, cpu_adapter),
                    segments,
                });
            }
        }
        let mut seen = Vec::new();
        all.retain(|v| {
            let new = !seen.contains(v);
            seen.push(*v);
            new
        });
        all
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Variant::RowPerInvocation(rows) => {
                write!(f, "a row per invocation, {rows} per workgroup")
            }
            Variant::RowPerWorkgroup(size) => write!(f, "a workgroup of {size} per row"),
            Variant::SplitRow {
                workgroup,
                segments,
            } => write!(
                f,
                "rows split in {segments} segments, a workgroup of {workgroup} each"
            ),
        }
    }
}
