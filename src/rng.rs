//! Our own seeded randomness. Candle's CPU generator cannot be seeded, so no
//! Candle random op is ever used: every random number comes from a ChaCha
//! stream named by what it is for and which seed it belongs to.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

pub use rand::RngExt;
pub use rand_distr::{Distribution, StandardNormal};

/// An independent, reproducible random stream for `(purpose, seed)`.
///
/// Streams with different purposes never overlap, so adding a new use of
/// randomness does not shift the numbers an existing one draws.
pub fn stream(purpose: &str, seed: u64) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(purpose.as_bytes());
    hasher.update([0u8]);
    hasher.update(seed.to_le_bytes());
    ChaCha8Rng::from_seed(hasher.finalize().into())
}

/// A standard normal draw.
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample(StandardNormal)
}

/// A uniform draw in [lo, hi).
pub fn uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// A random sign, +1 or -1.
pub fn sign(rng: &mut ChaCha8Rng) -> f64 {
    if rng.random::<bool>() {
        1.0
    } else {
        -1.0
    }
}

/// Weights of a plain random init, layer by layer (row-major (out, in)):
/// normal(0, scale^2 / fan_in), drawn from the stream (purpose, seed).
pub fn random_layers(purpose: &str, seed: u64, shapes: &[(usize, usize)], scale: f64) -> Vec<Vec<f32>> {
    let mut r = stream(purpose, seed);
    shapes
        .iter()
        .map(|&(o, i)| {
            let std = scale / (i as f64).sqrt();
            (0..o * i).map(|_| (std * normal(&mut r)) as f32).collect()
        })
        .collect()
}

/// A reproducible random permutation of `0..n` from the stream `(purpose,
/// seed)`: the order in which a control pairs a quantity with the wrong items
/// (permuted labels, permuted norms), so that the pairing is what it tests.
/// Per-seed values take one permutation per seed: a single one shared by all
/// would keep whatever trend it happens to carry in every seed.
pub fn permutation(purpose: &str, seed: u64, n: usize) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut stream(purpose, seed));
    order
}

/// `values` in the order of [`permutation`]`(purpose, seed, values.len())`.
pub fn permuted(purpose: &str, seed: u64, values: &[f64]) -> Vec<f64> {
    permutation(purpose, seed, values.len()).into_iter().map(|i| values[i]).collect()
}
