// Exact sums of non-negative finite f32 values and the f32 nearest 1 / (ln · sum), with integer
// operations only: the device's half of src/request/exact_sum.rs, which documents the method and
// which these functions follow step for step, so that host and device scales agree bit for bit.
// A sum is WORDS 32-bit words, little-endian, in units of 2^-149, with 1 at bit ONE_AT (both
// constants of the prelude, from their Rust twins).

// Adds `value` to word `word` of `sum`, carrying up.
fn add_word(sum: ptr<function, array<u32, WORDS>>, value: u32, word: u32) {
    var carry = value;
    for (var i = word; i < WORDS && carry != 0u; i++) {
        let s = (*sum)[i] + carry;
        carry = select(0u, 1u, s < carry);
        (*sum)[i] = s;
    }
}

// Adds `value` · 2^`at` units.
fn add_at(sum: ptr<function, array<u32, WORDS>>, value: u32, at: u32) {
    let shift = at % 32u;
    add_word(sum, value << shift, at / 32u);
    if shift != 0u {
        add_word(sum, value >> (32u - shift), at / 32u + 1u);
    }
}

// Adds a non-negative finite f32 given by its bits.
fn add_weight(sum: ptr<function, array<u32, WORDS>>, bits: u32) {
    let exponent = (bits >> 23u) & 0xffu;
    let hidden = select(0u, 0x800000u, exponent > 0u);
    add_at(sum, (bits & 0x7fffffu) | hidden, max(exponent, 1u) - 1u);
}

fn add_sums(a: array<u32, WORDS>, b: array<u32, WORDS>) -> array<u32, WORDS> {
    var sum = a;
    for (var i = 0u; i < WORDS; i++) {
        add_word(&sum, b[i], i);
    }
    return sum;
}

// Bits `start .. start + 32` of `sum` (0 outside it).
fn bits_at(sum: ptr<function, array<u32, WORDS>>, start: i32) -> u32 {
    let index = select(start / 32, (start - 31) / 32, start < 0);
    let shift = u32(start - 32 * index);
    var low = 0u;
    var high = 0u;
    if index >= 0 && index < i32(WORDS) {
        low = (*sum)[index] >> shift;
    }
    if shift != 0u && index + 1 >= 0 && index + 1 < i32(WORDS) {
        high = (*sum)[index + 1] << (32u - shift);
    }
    return low | high;
}

// Whether any bit of `sum` below `bit` is set.
fn any_below(sum: ptr<function, array<u32, WORDS>>, bit: i32) -> bool {
    var any = false;
    for (var i = 0; i < i32(WORDS) && 32 * i < bit; i++) {
        let left = bit - 32 * i;
        let mask = select((1u << u32(left)) - 1u, 0xffffffffu, left >= 32);
        any = any || ((*sum)[i] & mask) != 0u;
    }
    return any;
}

// The index of the top set bit of a non-zero sum.
fn top_bit(sum: ptr<function, array<u32, WORDS>>) -> i32 {
    var top = -1;
    for (var i = 0; i < i32(WORDS); i++) {
        if (*sum)[i] != 0u {
            top = 32 * i + i32(firstLeadingBit((*sum)[i]));
        }
    }
    return top;
}

// a · b as (low, high) words.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p11 = a1 * b1;
    let p01 = a0 * b1;
    let middle = p01 + a1 * b0;
    let middle_carry = select(0u, 0x10000u, middle < p01);
    let low = p00 + (middle << 16u);
    let low_carry = select(0u, 1u, low < p00);
    return vec2<u32>(low, p11 + (middle >> 16u) + middle_carry + low_carry);
}

// The f32 nearest `q` · 2^`exponent` (0 < q < 2^27), ties to even, where `inexact` says the
// exact value is a little above `q`.
fn round_to_f32(q: u32, inexact: bool, exponent: i32) -> f32 {
    let top = i32(firstLeadingBit(q));
    let unbiased = top + exponent;
    if unbiased > 127 {
        return bitcast<f32>(0x7f800000u);
    }
    let dropped = top - 23 + max(-126 - unbiased, 0);
    if dropped > top + 1 {
        return 0.0;
    }
    let half = 1u << u32(dropped - 1);
    var kept = q >> u32(dropped);
    let rest = q & ((half << 1u) - 1u);
    let up = rest > half || (rest == half && (inexact || (kept & 1u) == 1u));
    kept += select(0u, 1u, up);
    var bits = 0u;
    if unbiased >= -126 {
        bits = u32(unbiased + 126) << 23u;
    }
    return bitcast<f32>(min(bits + kept, 0x7f800000u));
}

// The f32 nearest 1 / (ln · sum), ln a normal positive f64 given by its bits (low word first).
fn reciprocal(total: array<u32, WORDS>, ln_bits: vec2<u32>) -> f32 {
    var sum = total;
    let t = top_bit(&sum);
    if t < 0 {
        return bitcast<f32>(0x7f800000u);
    }
    let sum_high = bits_at(&sum, t - 31);
    let sum_low = bits_at(&sum, t - 63);
    let sum_rest = any_below(&sum, t - 63);
    let ln_exponent = i32((ln_bits.y >> 20u) & 0x7ffu) - 1075;
    let ln_high = (ln_bits.y & 0xfffffu) | 0x100000u;
    let ln_low = ln_bits.x;
    var product: array<u32, WORDS>;
    let ll = mul_wide(ln_low, sum_low);
    let lh = mul_wide(ln_low, sum_high);
    let hl = mul_wide(ln_high, sum_low);
    let hh = mul_wide(ln_high, sum_high);
    add_word(&product, ll.x, 0u);
    add_word(&product, ll.y, 1u);
    add_word(&product, lh.x, 1u);
    add_word(&product, lh.y, 2u);
    add_word(&product, hl.x, 1u);
    add_word(&product, hl.y, 2u);
    add_word(&product, hh.x, 2u);
    add_word(&product, hh.y, 3u);
    let shift = top_bit(&product) - 63;
    let d_high = bits_at(&product, shift + 32);
    let d_low = bits_at(&product, shift);
    let rest = sum_rest || any_below(&product, shift);
    let exponent = shift + ln_exponent + t - 63 - i32(ONE_AT);
    // 2^89 / d by restoring division, one quotient bit a step: 27 bits, in (2^25, 2^26].
    var r_high = 0x80000000u;
    var r_low = 0u;
    var q = 0u;
    for (var k = 0u; k < 27u; k++) {
        var carry = false;
        if k > 0u {
            carry = (r_high >> 31u) == 1u;
            r_high = (r_high << 1u) | (r_low >> 31u);
            r_low = r_low << 1u;
        }
        let fits = carry || r_high > d_high || (r_high == d_high && r_low >= d_low);
        q = (q << 1u) | select(0u, 1u, fits);
        if fits {
            let borrow = select(0u, 1u, r_low < d_low);
            r_low = r_low - d_low;
            r_high = r_high - d_high - borrow;
        }
    }
    return round_to_f32(q, rest || r_high != 0u || r_low != 0u, -89 - exponent);
}
