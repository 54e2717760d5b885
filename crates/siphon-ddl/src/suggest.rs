//! "Did you mean ...?" suggestions.
//!
//! This module owns the typo matcher used by every layer that rejects a name (statement
//! keywords here, option names and connector kinds later). It is a case-insensitive
//! optimal-string-alignment edit distance (Damerau-Levenshtein where a transposition
//! counts as one edit) with a cut-off, so that only plausible typos are suggested.

/// Case-insensitive optimal-string-alignment distance between `a` and `b`: the number of
/// single-char insertions, deletions, substitutions and adjacent transpositions.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    osa(&a, &b)
}

fn osa(a: &[char], b: &[char]) -> usize {
    let (n, m) = (a.len(), b.len());
    // Three rolling rows: i-2, i-1, i.
    let mut prev2: Vec<usize> = vec![0; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur: Vec<usize> = vec![0; m + 1];
    for i in 1..=n {
        cur[0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
///
/// Comparison is case-insensitive. A candidate qualifies when its [`distance`] to
/// `word` is at most `max(1, chars(word) / 3)`; among qualifying candidates the
/// nearest wins, ties going to the earliest. Returns `None` for an empty word.
///
/// ```
/// use siphon_ddl::closest;
/// let names = ["endpoint", "interval_ms", "poll_interval_ms"];
/// assert_eq!(closest("endpiont", names), Some("endpoint"));
/// assert_eq!(closest("xyz", names), None);
/// ```
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w: Vec<char> = word.to_lowercase().chars().collect();
    if w.is_empty() {
        return None;
    }
    let limit = (w.len() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for cand in candidates {
        let c: Vec<char> = cand.to_lowercase().chars().collect();
        // Cheap length filter: the distance is at least the length difference.
        if c.len().abs_diff(w.len()) > limit {
            continue;
        }
        let d = osa(&w, &c);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// `", did you mean `X`?"` when [`closest`] finds a candidate, else an empty string;
/// meant to be appended to an error message.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match closest(word, candidates) {
        Some(c) => format!(", did you mean `{c}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[&str] = &[
        "endpoint",
        "method",
        "headers",
        "query_params",
        "body",
        "interval_ms",
        "poll_interval_ms",
        "timeout_ms",
        "time_format",
        "auth_type",
        "username",
        "password",
        "token",
        "api_key",
        "api_key_header",
        "format",
        "json_path",
    ];

    #[test]
    fn distances() {
        assert_eq!(distance("endpiont", "endpoint"), 1);
        assert_eq!(distance("ENDPOINT", "endpoint"), 0);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("ca", "abc"), 3); // OSA, not full Damerau
    }

    #[test]
    fn typos_are_found() {
        let opts = OPTIONS.iter().copied();
        assert_eq!(closest("endpiont", opts.clone()), Some("endpoint"));
        assert_eq!(closest("intervl_ms", opts.clone()), Some("interval_ms"));
        assert_eq!(
            closest("pol_interval_ms", opts.clone()),
            Some("poll_interval_ms")
        );
        assert_eq!(closest("Endpoint", opts.clone()), Some("endpoint"));
        assert_eq!(
            closest("CRATE", ["CREATE", "DROP", "SELECT", "WITH"]),
            Some("CREATE")
        );
        assert_eq!(
            closest("tabel", ["TABLE", "VIEW", "CONNECTION"]),
            Some("TABLE")
        );
    }

    #[test]
    fn far_words_are_not_suggested() {
        let opts = OPTIONS.iter().copied();
        assert_eq!(closest("xyz", opts.clone()), None);
        assert_eq!(closest("", opts.clone()), None);
        assert_eq!(closest("completely_different", opts), None);
    }

    #[test]
    fn nearest_wins_and_ties_go_first() {
        assert_eq!(closest("abcd", ["abxx", "abcx"]), Some("abcx"));
        assert_eq!(closest("abc", ["abd", "abe"]), Some("abd"));
    }

    #[test]
    fn hint_text() {
        assert_eq!(
            did_you_mean("endpiont", ["endpoint"]),
            ", did you mean `endpoint`?"
        );
        assert_eq!(did_you_mean("zzz", ["endpoint"]), "");
    }
}
