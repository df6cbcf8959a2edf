// A fixed-order tree sum over one workgroup, shared by the device-side reduction and the bandwidth
// probe. The order of additions depends only on the workgroup's width, so the same values give
// the same bits on every run. Call it from uniform control flow: it has barriers.

var<workgroup> partial: array<f32, 256>;

// The sum of `value` over invocations 0 .. width - 1 (width a power of two, at most 256), for
// every invocation.
fn workgroup_sum(lid: u32, width: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = width / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    return partial[0];
}
