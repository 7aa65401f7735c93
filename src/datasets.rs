//! The real data sets the figures read from data/, each checked against
//! the SHA-256 its figure's config gives (so a job's cache key names the
//! bytes it read) before it is parsed.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

/// Pixels of an 8x8 digit image.
pub const PIXELS: usize = 64;

/// The 8x8 UCI handwritten digits: pixels scaled from 0..16 to 0..1, and the digit.
pub struct DigitImages {
    pub x: Vec<[f32; PIXELS]>,
    pub digit: Vec<u8>,
}

/// The bytes of `path`, if their SHA-256 is `sha256`.
pub fn read_verified(path: &Path, sha256: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the data set {}", path.display()))?;
    let hash = hex::encode(Sha256::digest(&bytes));
    if !hash.eq_ignore_ascii_case(sha256) {
        bail!(
            "{}: SHA-256 is {hash}, but paper.toml expects {sha256} (the file is not the one the figure was made with)",
            path.display()
        );
    }
    Ok(bytes)
}

/// The digits as scikit-learn ships them (data/digits.csv.gz): gzip CSV, one
/// image a line, 64 pixels in 0..16 then the digit.
pub fn uci_digits(path: &Path, sha256: &str) -> Result<DigitImages> {
    let bytes = read_verified(path, sha256)?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .with_context(|| format!("{}: not a gzip text file", path.display()))?;
    let mut images = DigitImages { x: Vec::new(), digit: Vec::new() };
    for (line_no, line) in text.lines().enumerate() {
        let fields: Vec<u8> = line
            .split(',')
            .map(|f| f.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: line {}: expected 65 integers", path.display(), line_no + 1))?;
        ensure!(
            fields.len() == PIXELS + 1,
            "{}: line {}: expected 65 fields, found {}",
            path.display(),
            line_no + 1,
            fields.len()
        );
        let mut x = [0.0f32; PIXELS];
        for (v, &f) in x.iter_mut().zip(&fields) {
            *v = f as f32 / 16.0;
        }
        images.x.push(x);
        images.digit.push(fields[PIXELS]);
    }
    Ok(images)
}
