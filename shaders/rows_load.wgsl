// What the row kernels read: the input's quads as f32 (16-bit values unpacked), soft-capped when
// asked, and the class and positive weights of a quad's classes.

// Four IEEE half floats (in the low 16 bits of each lane) as f32, by their bits. unpack2x16float
// would need naga's SHADER_FLOAT16_IN_FLOAT32 capability, which not every adapter grants.
fn halves_to_f32(h: vec4<u32>) -> vec4<f32> {
    let sign = (h & vec4<u32>(0x8000u)) << vec4<u32>(16u);
    let exponent = (h >> vec4<u32>(10u)) & vec4<u32>(0x1fu);
    let mantissa = h & vec4<u32>(0x3ffu);
    let normal = sign | ((exponent + vec4<u32>(112u)) << vec4<u32>(23u)) | (mantissa << vec4<u32>(13u));
    let special = sign | vec4<u32>(0x7f800000u) | (mantissa << vec4<u32>(13u));
    // Subnormal halves are mantissa · 2^-24.
    let magnitude = vec4<f32>(mantissa) * 5.9604645e-8;
    let subnormal = select(magnitude, -magnitude, sign != vec4<u32>(0u));
    let wide = bitcast<vec4<f32>>(select(normal, special, exponent == vec4<u32>(31u)));
    return select(wide, subnormal, exponent == vec4<u32>(0u));
}

// Quad q: elements 4q .. 4q + 3 of the chunk, as f32.
fn load_quad(q: u32) -> vec4<f32> {
    if INPUT_DTYPE == F32 {
        return bitcast<vec4<f32>>(input_words[q]);
    }
    let word = input_words[q / 2u];
    let pair = select(word.xy, word.zw, (q & 1u) == 1u);
    let packed = vec4<u32>(pair.x, pair.x >> 16u, pair.y, pair.y >> 16u) & vec4<u32>(0xffffu);
    if INPUT_DTYPE == BF16 {
        // A bfloat16 is the high half of an f32.
        return bitcast<vec4<f32>>(packed << vec4<u32>(16u));
    }
    return halves_to_f32(packed);
}

// The input as the loss sees it: soft-capped when asked.
fn transform(x: vec4<f32>) -> vec4<f32> {
    if SOFTCAP {
        return params.softcap * tanh(x / params.softcap);
    }
    return x;
}

// Element i of the chunk, transformed.
fn load_element(i: u32) -> f32 {
    return transform(load_quad(i / 4u))[i % 4u];
}

// log q up to the row's lse shift: the logits themselves, log of probabilities, or log-probs.
fn log_q_unshifted(x: vec4<f32>) -> vec4<f32> {
    if INPUT_KIND == PROBS {
        return log(x);
    }
    return x;
}

fn class_weight(cls: u32) -> f32 {
    if HAS_WEIGHT {
        return weight[cls];
    }
    return 1.0;
}

// Weights of the four classes of a quad; 0 outside the row.
fn quad_weights(first_cls: vec4<u32>, inside: vec4<bool>) -> vec4<f32> {
    var w = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if inside[k] {
            w[k] = class_weight(first_cls[k]);
        }
    }
    return w;
}

fn pos_weights(first_cls: vec4<u32>, inside: vec4<bool>) -> vec4<f32> {
    var w = vec4<f32>(1.0);
    if HAS_POS_WEIGHT {
        for (var k = 0u; k < 4u; k++) {
            if inside[k] {
                w[k] = pos_weight[first_cls[k]];
            }
        }
    }
    return w;
}
