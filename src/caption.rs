//! Captions with placeholders: every number a caption states that comes from
//! the config or the run is filled in from them, so a caption cannot go stale
//! when a value changes.
//!
//! `{config.seed_count}` is a value of the figure's `[figure.experiment.<kind>]`
//! table (a dotted path; list items by index: `{config.model.1.width}`).
//! `{scalar.NAME}` is a scalar the figure measured, `{scalar.NAME|3}` with 3
//! significant digits (the default is 3). `{{` and `}}` are literal braces.

use std::collections::BTreeMap;
use std::ops::Range;

/// One `{...}` of a caption.
#[derive(Debug, Clone, PartialEq)]
pub enum Placeholder {
    Config(Vec<String>),
    Scalar { name: String, digits: i32 },
}

/// The placeholders of a caption, each with its byte range in the caption
/// (braces included), or a problem with its range.
pub fn placeholders(text: &str) -> Vec<(Range<usize>, Result<Placeholder, String>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(offset) = text[i..].find(['{', '}']) {
        let at = i + offset;
        let rest = &text[at..];
        if rest.starts_with("{{") || rest.starts_with("}}") {
            i = at + 2;
            continue;
        }
        if rest.starts_with('}') {
            out.push((at..at + 1, Err("a lone `}`: write `}}` for a literal brace".into())));
            i = at + 1;
            continue;
        }
        // A placeholder ends at its `}`; another `{` before it means this one was never closed.
        let next = rest[1..].find(['{', '}']).map(|i| i + 1);
        let Some(len) = next.filter(|&i| rest.as_bytes()[i] == b'}') else {
            // Up to the next `{` (where scanning goes on) or the end.
            let end = next.map_or(text.len(), |i| at + i);
            out.push((at..end, Err("a `{` without its closing `}` (write `{{` for a literal brace)".into())));
            i = end;
            continue;
        };
        out.push((at..at + len + 1, parse(&rest[1..len])));
        i = at + len + 1;
    }
    out
}

fn parse(inner: &str) -> Result<Placeholder, String> {
    if let Some(path) = inner.strip_prefix("config.") {
        return Ok(Placeholder::Config(path.split('.').map(String::from).collect()));
    }
    if let Some(rest) = inner.strip_prefix("scalar.") {
        let (name, digits) = match rest.rsplit_once('|') {
            Some((name, d)) => match d.trim().parse::<i32>() {
                Ok(d) if (1..=8).contains(&d) => (name, d),
                _ => return Err(format!("`|{d}`: expected a number of significant digits from 1 to 8")),
            },
            None => (rest, 3),
        };
        return Ok(Placeholder::Scalar { name: name.to_string(), digits });
    }
    Err(format!("`{{{inner}}}`: expected `{{config.PATH}}` or `{{scalar.NAME}}` (write `{{{{` for a literal brace)"))
}

/// A figure's experiment config as placeholders see it: the fields of its
/// `[figure.experiment.<kind>]` table, without the kind.
pub fn experiment_config(experiment: &impl serde::Serialize) -> serde_json::Value {
    match serde_json::to_value(experiment).expect("configs serialize") {
        serde_json::Value::Object(map) if map.len() == 1 => map.into_iter().next().expect("one entry").1,
        other => other,
    }
}

/// The value at a dotted path of a config, as text.
pub fn config_value(config: &serde_json::Value, path: &[String]) -> Option<String> {
    let mut v = config;
    for key in path {
        v = match v {
            serde_json::Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => v.get(key)?,
        };
    }
    Some(plain(v))
}

fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// What is wrong with a placeholder, given the config and the names of the
/// scalars the figure will produce; None when it can be filled.
pub fn problem(placeholder: &Placeholder, config: &serde_json::Value, scalars: &[String]) -> Option<String> {
    match placeholder {
        Placeholder::Config(path) => match config_value(config, path) {
            Some(_) => None,
            None => {
                let keys =
                    config.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default();
                Some(format!(
                    "`{{config.{}}}` names no value of the experiment's config; its keys: {keys}",
                    path.join(".")
                ))
            }
        },
        Placeholder::Scalar { name, .. } if !scalars.contains(name) => {
            Some(format!("`{{scalar.{name}}}` names no scalar of the figure; expected one of: {}", scalars.join(", ")))
        }
        Placeholder::Scalar { .. } => None,
    }
}

/// The caption with every placeholder filled. Placeholders were checked when
/// the spec was loaded; one that still cannot be filled is a bug, shown as such.
pub fn fill(text: &str, config: &serde_json::Value, scalars: &BTreeMap<String, f64>) -> String {
    let mut out = String::new();
    let mut last = 0;
    for (range, placeholder) in placeholders(text) {
        out.push_str(&text[last..range.start]);
        let value = match placeholder {
            Ok(Placeholder::Config(path)) => config_value(config, &path),
            Ok(Placeholder::Scalar { name, digits }) => scalars.get(&name).map(|v| format_scalar(*v, digits)),
            Err(_) => None,
        };
        out.push_str(&value.unwrap_or_else(|| format!("<unfilled {}>", &text[range.clone()])));
        last = range.end;
    }
    out.push_str(&text[last..]);
    out.replace("{{", "{").replace("}}", "}")
}

fn format_scalar(v: f64, digits: i32) -> String {
    if v.is_nan() {
        return "undefined".into();
    }
    let r = crate::figure::round_sig(v, digits);
    // Keep trailing zeros that are significant: 1.0 to 3 digits is "1.00".
    let decimals = (digits - 1 - r.abs().log10().floor() as i32).max(0) as usize;
    if r == 0.0 {
        "0".into()
    } else {
        format!("{r:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_config_and_scalars() {
        let config = serde_json::json!({"seed_count": 8, "model": [{"width": 32}, {"width": 64}], "rate": 0.25});
        let scalars = BTreeMap::from([("ratio: a / b".to_string(), 2.14257), ("undef".to_string(), f64::NAN)]);
        let text = "{config.seed_count} seeds, width {config.model.1.width}, lr {config.rate}: \
                    {scalar.ratio: a / b} or {scalar.ratio: a / b|2}, {scalar.undef}, {{literal}}";
        assert_eq!(fill(text, &config, &scalars), "8 seeds, width 64, lr 0.25: 2.14 or 2.1, undefined, {literal}");
    }

    #[test]
    fn reports_bad_placeholders_with_their_place() {
        let found = placeholders("ok {config.a} then {oops} and {scalar.x|0} and {unclosed");
        let problems: Vec<(Range<usize>, bool)> = found.iter().map(|(r, p)| (r.clone(), p.is_err())).collect();
        assert_eq!(problems, vec![(3..13, false), (19..25, true), (30..42, true), (47..56, true)]);
        let config = serde_json::json!({"a": 1});
        assert!(problem(&Placeholder::Config(vec!["b".into()]), &config, &[]).unwrap().contains("its keys: a"));
        assert!(problem(&Placeholder::Scalar { name: "y".into(), digits: 3 }, &config, &["x".into()]).is_some());
    }

    #[test]
    fn keeps_significant_zeros() {
        assert_eq!(format_scalar(1.0, 3), "1.00");
        assert_eq!(format_scalar(0.964953, 3), "0.965");
        assert_eq!(format_scalar(1234.5, 2), "1200");
    }
}
