// The gradient's writes: a row's quads through the soft cap's chain rule, f32 or rounded to the
// input's 16-bit dtype, to `grad_out` or over the input itself.

// Stores u32 word k of 16-byte word w of the gradient (the input itself when in place).
fn store_word(w: u32, k: u32, bits: u32) {
    if GRAD_IN_PLACE {
        input_words[w][k] = bits;
    } else {
        grad_out[w][k] = bits;
    }
}

// The u32 word k of 16-byte word w of the gradient, as it stands.
fn stored_word(w: u32, k: u32) -> u32 {
    if GRAD_IN_PLACE {
        return input_words[w][k];
    }
    return grad_out[w][k];
}

// f32 to bfloat16 bits, rounded to nearest even; a NaN stays a (quiet) NaN.
fn to_bf16(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    if (bits & 0x7fffffffu) > 0x7f800000u {
        return (bits >> 16u) | 0x40u;
    }
    return (bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u;
}

// f32 to IEEE half bits, rounded to nearest even: overflow to inf, underflow through the
// subnormals to zero, and a NaN stays a (quiet) NaN.
fn to_f16(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    let sign = (bits >> 16u) & 0x8000u;
    let exponent = (bits >> 23u) & 0xffu;
    let mantissa = bits & 0x7fffffu;
    if exponent == 0xffu {
        return sign | 0x7c00u | select(0u, 0x200u, mantissa != 0u) | (mantissa >> 13u);
    }
    let e = i32(exponent) - 112;
    if e >= 31 {
        return sign | 0x7c00u;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mantissa | 0x800000u;
        let shift = u32(14 - e);
        let round = 1u << (shift - 1u);
        let up = (m & round) != 0u && (m & (3u * round - 1u)) != 0u;
        return sign | ((m >> shift) + u32(up));
    }
    let up = (mantissa & 0x1000u) != 0u && (mantissa & 0x2fffu) != 0u;
    return (sign | (u32(e) << 10u) | (mantissa >> 13u)) + u32(up);
}

fn to_half_bits(v: f32) -> u32 {
    if INPUT_DTYPE == BF16 {
        return to_bf16(v);
    }
    return to_f16(v);
}

// Writes the gradient of quad q of chunk row `row`: whole when the quad lies inside the row, else
// lane by lane, since the rest of the quad belongs to a neighbouring row that another invocation
// writes. Packed, a quad is two u32 words; a word half in another row is left to `stitch_edges`.
fn write_grad(row: u32, q: u32, g: vec4<f32>, inside: vec4<bool>) {
    if GRAD_PACKED {
        for (var k = 0u; k < 2u; k++) {
            let first = inside[2u * k];
            let second = inside[2u * k + 1u];
            if first && second {
                let word = to_half_bits(g[2u * k]) | (to_half_bits(g[2u * k + 1u]) << 16u);
                store_word(q / 2u, 2u * (q & 1u) + k, word);
            } else if first {
                edges[2u * row + 1u] = g[2u * k];
            } else if second {
                edges[2u * row] = g[2u * k + 1u];
            }
        }
        return;
    }
    if all(inside) {
        if GRAD_IN_PLACE {
            input_words[q] = bitcast<vec4<u32>>(g);
        } else {
            grad_out[q] = bitcast<vec4<u32>>(g);
        }
        return;
    }
    for (var k = 0u; k < 4u; k++) {
        if inside[k] {
            store_word(q, k, bitcast<u32>(g[k]));
        }
    }
}

// Writes the gradient of quads span.x + lane, span.x + lane + lanes, ... of a chunk row whose
// statistics are complete, through the soft cap's chain rule: d(c·tanh(x/c))/dx = 1 - (x'/c)².
fn grad_quads(row: u32, st: Stats, span: vec2<u32>, lane: u32, lanes: u32) {
    let start = row * params.classes;
    let end = start + params.classes;
    for (var q = span.x + lane; q < span.y; q += lanes) {
        let idx = vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u);
        let inside = (idx >= vec4<u32>(start)) & (idx < vec4<u32>(end));
        let x = transform(load_quad(q));
        var g = grad_quad(row, st, q, x, idx - vec4<u32>(start), inside);
        if SOFTCAP {
            let r = x / params.softcap;
            g *= 1.0 - r * r;
        }
        write_grad(row, q, g, inside);
    }
}
