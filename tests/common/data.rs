//! Test data: seeded random logits, targets and distributions, values rounded to a dtype, and the
//! bytes of `.safetensors` and `.npy` files.

use half::{bf16, f16};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, Normal};
use xent::Dtype;
use xent::io::Floats;

/// A generator seeded from `XENT_SEED`, or from the clock; the seed is printed so that a failure
/// can be replayed.
pub fn rng(test: &str) -> StdRng {
    let seed = std::env::var("XENT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: XENT_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// `n` logits drawn from N(0, scale²).
pub fn logits(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    let normal = Normal::new(0.0, scale).expect("positive scale");
    (0..n).map(|_| normal.sample(rng)).collect()
}

/// Rows of a softmax of N(0, 4) logits: a distribution per row, for probability inputs and soft
/// targets.
pub fn distribution(rng: &mut StdRng, batch: usize, classes: usize) -> Vec<f32> {
    logits(rng, batch * classes, 2.0)
        .chunks(classes)
        .flat_map(|row| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let e: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            e.into_iter().map(move |v| v / sum)
        })
        .collect()
}

/// `batch` class indices in [0, classes), with each row ignored (-100) with probability `ignored`.
pub fn targets(rng: &mut StdRng, batch: usize, classes: usize, ignored: f64) -> Vec<i64> {
    (0..batch)
        .map(|_| {
            if rng.random_bool(ignored) {
                -100
            } else {
                rng.random_range(0..classes as i64)
            }
        })
        .collect()
}

/// `x` rounded to `dtype` (to nearest, ties to even), with every value that would round to 0
/// made 0.5 instead: a kernel that reads the wrong half of a 32-bit word, or a zeroed one, cannot
/// match by chance.
pub fn round_to(dtype: Dtype, x: &[f32]) -> Floats<'static> {
    let x = x.iter().map(|&v| {
        let nonzero = match dtype {
            Dtype::F32 => v != 0.0,
            Dtype::F16 => f16::from_f32(v).to_f32() != 0.0,
            Dtype::Bf16 => bf16::from_f32(v).to_f32() != 0.0,
        };
        if nonzero { v } else { 0.5 }
    });
    match dtype {
        Dtype::F32 => Floats::F32(x.collect::<Vec<_>>().into()),
        Dtype::F16 => Floats::F16(x.map(f16::from_f32).collect::<Vec<_>>().into()),
        Dtype::Bf16 => Floats::Bf16(x.map(bf16::from_f32).collect::<Vec<_>>().into()),
    }
}

/// The bytes of a `.safetensors` file holding `tensors` (name, values, shape), written by the
/// `safetensors` crate.
pub fn safetensors_file(tensors: &[(&str, &Floats, &[usize])]) -> Vec<u8> {
    let data: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|&(name, values, shape)| {
            let (dtype, bytes) = match values {
                Floats::F32(v) => (safetensors::Dtype::F32, le_bytes(v, |x| x.to_le_bytes())),
                Floats::F16(v) => (safetensors::Dtype::F16, le_bytes(v, |x| x.to_le_bytes())),
                Floats::Bf16(v) => (safetensors::Dtype::BF16, le_bytes(v, |x| x.to_le_bytes())),
            };
            (name.to_string(), dtype, shape.to_vec(), bytes)
        })
        .collect();
    let views = data.iter().map(|(name, dtype, shape, bytes)| {
        let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes);
        (name, view.expect("the shape fits the values"))
    });
    safetensors::serialize(views, None).expect("a serializable file")
}

/// A `.safetensors` file built by hand: the header's length (8 bytes, little-endian), the header
/// as given, then `data`; for malformed files.
pub fn safetensors_raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn le_bytes<T: Copy, const N: usize>(values: &[T], bytes: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| bytes(v)).collect()
}

/// A `.npy` input read through xent's reader ([`xent::io::Source`]), kept after the file.
pub fn read_input(path: &std::path::Path) -> xent::Result<(Floats<'static>, [usize; 2])> {
    let file = xent::io::Source::open(path)?;
    xent::io::npy::read_input(&file).map(|(values, shape)| (values.into_owned(), shape))
}

/// A `.npy` target read through xent's reader, kept after the file.
pub fn read_target(path: &std::path::Path) -> xent::Result<xent::io::TargetData<'static>> {
    let file = xent::io::Source::open(path)?;
    xent::io::npy::read_target(&file).map(xent::io::TargetData::into_owned)
}

/// A `.npy` vector read through xent's reader, kept after the file.
pub fn read_vector(path: &std::path::Path) -> xent::Result<Vec<f32>> {
    let file = xent::io::Source::open(path)?;
    xent::io::npy::read_vector(&file).map(|v| v.into_owned())
}

/// A 2-D float file read through xent's reader, kept after the file: a `.safetensors` file's
/// only tensor (by the extension), or else a `.npy` array.
pub fn read_matrix(path: &std::path::Path) -> xent::Result<(Floats<'static>, [usize; 2])> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        read_safetensors(path, None)
    } else {
        read_input(path)
    }
}

/// The case folders of `tests/fixtures/<name>`, sorted; at least `at_least` of them.
pub fn fixture_dirs(name: &str, at_least: usize) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= at_least,
        "fixtures missing under {}",
        root.display()
    );
    dirs
}

/// A `.safetensors` input read through xent's reader, kept after the file.
pub fn read_safetensors(
    path: &std::path::Path,
    tensor: Option<&str>,
) -> xent::Result<(Floats<'static>, [usize; 2])> {
    let file = xent::io::Source::open(path)?;
    xent::io::safetensors::read_input(&file, tensor)
        .map(|(values, shape)| (values.into_owned(), shape))
}

/// Writes a row-major `.npy` file of `shape` holding `data`, in `T`'s own dtype, through npyz.
pub fn write_npy<T: npyz::AutoSerialize + Copy>(
    path: &std::path::Path,
    shape: &[usize],
    data: &[T],
) {
    use npyz::WriterBuilder;
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(file)
        .begin_nd()
        .unwrap();
    writer.extend(data.iter().copied()).unwrap();
    writer.finish().unwrap();
}

/// Every reduction, with the name the fixtures give it.
pub const REDUCTIONS: [(&str, xent::Reduction); 4] = [
    ("mean", xent::Reduction::Mean),
    ("sum", xent::Reduction::Sum),
    ("none", xent::Reduction::None),
    ("batchmean", xent::Reduction::BatchMean),
];
