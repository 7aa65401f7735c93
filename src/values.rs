//! The small value types of a figure's configuration: numbers that carry
//! their own rule (a positive rate, a non-zero count), the loss, and the names
//! an experiment produces. A leaf: it imports nothing from the crate, so the
//! spec, the engines, the theory and every kind can share it.
//!
//! Each rule lives in its type's `Deserialize`, so the TOML parser reports a
//! bad value at its own line and column; under [`collecting`] every bad value
//! of a file is recorded and the parse goes on.

use std::cell::RefCell;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Value problems, each with its span in the TOML text.
type Problems = Vec<(Range<usize>, String)>;

thread_local! {
    /// While [`collecting`] runs: the value problems found so far, each with
    /// its span in the TOML text.
    static PROBLEMS: RefCell<Option<Problems>> = const { RefCell::new(None) };
    /// Whether [`collecting_other`] runs: the second set of stand-ins.
    static OTHER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `parse` (a `toml::from_str` of a spec) so that a value breaking its
/// type's rule does not stop the parse: it is recorded with its span and a
/// valid stand-in takes its place. Returns the result with every problem
/// recorded, so the user sees all of a file's bad values in one round
/// instead of one per run. Outside this function a bad value is an error.
pub fn collecting<T>(parse: impl FnOnce() -> T) -> (T, Problems) {
    /// Ends collecting even if `parse` panics, so that a later parse on
    /// this thread does not collect silently.
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            PROBLEMS.with(|p| p.borrow_mut().take());
        }
    }
    PROBLEMS.with(|p| *p.borrow_mut() = Some(Vec::new()));
    let stop = Stop;
    let result = parse();
    let problems = PROBLEMS.with(|p| p.borrow_mut().take()).unwrap_or_default();
    drop(stop);
    (result, problems)
}

/// Like [`collecting`], with another valid stand-in for each bad value: a
/// problem between values that both readings raise does not come from a
/// stand-in, so it can be reported beside the bad values.
pub fn collecting_other<T>(parse: impl FnOnce() -> T) -> (T, Problems) {
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            OTHER.with(|o| o.set(false));
        }
    }
    OTHER.with(|o| o.set(true));
    let _stop = Stop;
    collecting(parse)
}

fn is_collecting() -> bool {
    PROBLEMS.with(|p| p.borrow().is_some())
}

fn record(span: Range<usize>, problem: String) {
    PROBLEMS.with(|p| p.borrow_mut().get_or_insert_with(Vec::new).push((span, problem)));
}

/// A number of a TOML value as f64 (integers too), if it is one.
fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Float(f) => Some(*f),
        toml::Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// A whole number of a TOML value, if it is one (negative included, so that
/// the message says what a count must be rather than "expected u64").
fn whole(v: &toml::Value) -> Option<i64> {
    match v {
        toml::Value::Integer(i) => Some(*i),
        _ => None,
    }
}

/// How `toml` hands out a value's span: a value asked for as this struct
/// comes as a map of its start, end and value (as for `toml::Spanned`, whose
/// names these are; `toml::Spanned` itself cannot take the value where a
/// deserializer has no span, e.g. in an inline table inside an array).
const SPANNED: &str = "$__serde_spanned_private_Spanned";
const SPANNED_FIELDS: [&str; 3] =
    ["$__serde_spanned_private_start", "$__serde_spanned_private_end", "$__serde_spanned_private_value"];

/// A TOML value with its span where the deserializer gives one.
struct MaybeSpanned;

impl<'de> serde::de::Visitor<'de> for MaybeSpanned {
    type Value = (toml::Value, Option<Range<usize>>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut start, mut end, mut value) = (None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match SPANNED_FIELDS.iter().position(|f| *f == key) {
                Some(0) => start = Some(map.next_value::<usize>()?),
                Some(1) => end = Some(map.next_value::<usize>()?),
                Some(_) => value = Some(map.next_value::<toml::Value>()?),
                // A table where a number belongs.
                None => return Err(serde::de::Error::invalid_type(serde::de::Unexpected::Map, &self)),
            }
        }
        let value = value.ok_or_else(|| serde::de::Error::invalid_type(serde::de::Unexpected::Map, &self))?;
        Ok((value, start.zip(end).map(|(s, e)| s..e)))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok((toml::Value::Integer(v), None))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok((i64::try_from(v).map_or(toml::Value::Float(v as f64), toml::Value::Integer), None))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok((toml::Value::Float(v), None))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok((toml::Value::Boolean(v), None))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((toml::Value::String(v.to_string()), None))
    }
}

macro_rules! validated {
    ($(#[$doc:meta])* $name:ident($inner:ty), $expect:literal, $read:ident, $stand_in:expr, |$v:ident| $ok:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $name {
            /// The value if it keeps the rule, else the message.
            #[allow(clippy::unnecessary_cast)] // `as` is f64 -> f64 for some types, i64 -> u64 for others
            fn check(value: &toml::Value) -> Result<$inner, String> {
                match $read(value) {
                    Some($v) if $ok => Ok($v as $inner),
                    _ => Err(format!(concat!("invalid value {}: expected ", $expect), value)),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // Read as any TOML value, so that a wrong sign or type gets
                // this type's own message, not serde's "expected u64".
                // Only toml's own deserializers give spans; asked for one,
                // others fail (serde's buffer under `#[serde(flatten)]`).
                let spans = std::any::type_name::<D>().starts_with("toml::");
                let read = if spans {
                    d.deserialize_struct(SPANNED, &SPANNED_FIELDS, MaybeSpanned)
                } else {
                    d.deserialize_any(MaybeSpanned)
                };
                match read? {
                    (value, Some(span)) if is_collecting() => match Self::check(&value) {
                        Ok(v) => Ok($name(v)),
                        Err(problem) => {
                            record(span, problem);
                            let (first, other) = $stand_in;
                            Ok($name(if OTHER.with(|o| o.get()) { other } else { first }))
                        }
                    },
                    (value, _) => Self::check(&value).map($name).map_err(serde::de::Error::custom),
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
    Positive(f64), "a finite number > 0", number, (1.0, 2.0), |v| v.is_finite() && v > 0.0);
validated!(
    /// A finite number >= 0.
    NonNegative(f64), "a finite number >= 0", number, (0.0, 1.0), |v| v.is_finite() && v >= 0.0);
validated!(
    /// A number in [0, 1].
    Fraction(f64), "a number between 0 and 1", number, (0.5, 0.25), |v| (0.0..=1.0).contains(&v));
validated!(
    /// A count >= 1 (steps, points, seeds).
    Count(u64), "a whole number >= 1", whole, (1, 2), |v| v >= 1);
validated!(
    /// A network depth: 1 (linear) to 8 weight matrices.
    Depth(u64), "a depth between 1 and 8", whole, (2, 3), |v| (1..=8).contains(&v));
validated!(
    /// An image size in pixels.
    Pixels(u32), "a size between 200 and 4000 pixels", whole, (800, 900), |v| (200..=4000).contains(&v));

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
    /// Per-seed values (one per seed, or per pair of seeds), for claims that
    /// decide on an interval.
    pub samples: Vec<String>,
}
