//! "did you mean `learning_rate`?": the known name nearest to a misspelt one.
//!
//! The distance comes from `strsim` (already in the build through clap, which
//! suggests options with it): a kept, tested implementation of edit distances
//! rather than one more hand-written loop.

/// The known name nearest to `name`, if one is near enough to be a likely
/// misspelling: a similar prefix (Jaro-Winkler, catches `seeds` for
/// `seed_count`) or few edits for its length (Damerau-Levenshtein, catches
/// `learnin_rate`). None when nothing is close, so no wild guess is shown.
pub fn nearest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let score = |k: &str| {
        let (a, b) = (name.to_lowercase(), k.to_lowercase());
        strsim::jaro_winkler(&a, &b).max(strsim::normalized_damerau_levenshtein(&a, &b))
    };
    known
        .into_iter()
        .filter(|k| *k != name)
        .map(|k| (score(k), k))
        .filter(|(s, _)| *s >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// "; did you mean `x`?" for the nearest known name, or nothing.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    nearest(name, known).map_or(String::new(), |k| format!("; did you mean `{k}`?"))
}

/// The names between backticks in serde's "unknown field `x`, expected one
/// of `a`, `b`" (or "unknown variant ..."): the unknown one and those expected.
pub fn serde_unknown(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field ").or_else(|| message.strip_prefix("unknown variant "))?;
    let mut names = rest.split('`').skip(1).step_by(2);
    let unknown = names.next()?;
    Some((unknown, names.collect()))
}
