//! The small value types of a figure's configuration: numbers that carry
//! their own rule (a positive rate, a non-zero count), the loss, and the names
//! an experiment produces. A leaf: it imports nothing from the crate, so the
//! spec, the engines, the theory and every kind can share it.
//!
//! Each rule lives in its type's `Deserialize`, so the TOML parser reports a
//! bad value at its own line and column.

use serde::{Deserialize, Serialize};

macro_rules! validated {
    ($(#[$doc:meta])* $name:ident($inner:ty), $expect:literal, |$v:ident| $ok:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let $v = <$inner>::deserialize(d)?;
                if $ok {
                    Ok($name($v))
                } else {
                    Err(serde::de::Error::custom(format!(
                        concat!("invalid value {}: expected ", $expect),
                        $v
                    )))
                }
            }
        }

        impl $name {
            pub fn get(self) -> $inner {
                self.0
            }
        }
    };
}

validated!(
    /// A finite number > 0 (rates, norms, scales).
    Positive(f64), "a finite number > 0", |v| v.is_finite() && v > 0.0);
validated!(
    /// A finite number >= 0.
    NonNegative(f64), "a finite number >= 0", |v| v.is_finite() && v >= 0.0);
validated!(
    /// A number in [0, 1].
    Fraction(f64), "a number between 0 and 1", |v| (0.0..=1.0).contains(&v));
validated!(
    /// A count >= 1 (steps, points, seeds).
    Count(u64), "a whole number >= 1", |v| v >= 1);
validated!(
    /// A network depth: 1 (linear) to 8 weight matrices.
    Depth(u64), "a depth between 1 and 8", |v| (1..=8).contains(&v));
validated!(
    /// An image size in pixels.
    Pixels(u32), "a size between 200 and 4000 pixels", |v| (200..=4000).contains(&v));

impl Count {
    pub fn usize(self) -> usize {
        self.0 as usize
    }
}

/// The loss on the margin m = y f(x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// log(1 + e^-m)
    CrossEntropy,
    /// max(0, 1 - m)
    Hinge,
}

impl Loss {
    /// In figure names and legends: "cross-entropy", "hinge".
    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross-entropy",
            Loss::Hinge => "hinge",
        }
    }
}

/// The names an experiment will produce, known from its config alone.
#[derive(Debug, Default)]
pub struct Outputs {
    pub series: Vec<String>,
    pub scalars: Vec<String>,
}
