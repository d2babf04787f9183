//! "Did you mean …?" and safe display of user-supplied values in messages.

/// The closest candidate to a mistyped item, if one is close enough to be a likely typo:
/// same letters in another case or with other separators first, then a small edit distance.
pub fn closest<'a>(item: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let folded = fold(item);
    if folded.is_empty() || item.len() > 64 {
        return None;
    }
    if let Some(c) = candidates.iter().find(|c| fold(c) == folded) {
        return Some(c);
    }
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let d = edit_distance(&folded, &fold(c));
        let limit = (fold(c).chars().count() / 3).clamp(1, 3);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Lowercase letters and digits only: `Pre_Sync`, `pre-sync` and `PRESYNC` fold alike.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions (`sycn`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// A user value quoted for a message: control characters escaped, long values cut (with
/// their full length), so a huge or binary annotation cannot flood a response or a log.
pub fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut out = String::from("`");
    for (count, c) in value.chars().enumerate() {
        if count == MAX_CHARS {
            out.push_str(&format!("…` ({} bytes)", value.len()));
            return out;
        }
        if c.is_control() || c == '`' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

/// Truncates to at most `max` characters, ending in `…` when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const HOOKS: &[&str] = &[
        "PreSync",
        "Sync",
        "PostSync",
        "SyncFail",
        "Skip",
        "PreDelete",
        "PostDelete",
    ];

    #[rstest]
    #[case("presync", Some("PreSync"))]
    #[case("PRESYNC", Some("PreSync"))]
    #[case("Pre-Sync", Some("PreSync"))]
    #[case("PreSynch", Some("PreSync"))]
    #[case("PostSyc", Some("PostSync"))]
    #[case("post sync", Some("PostSync"))]
    #[case("SyncFailed", Some("SyncFail"))]
    #[case("sycn", Some("Sync"))]
    #[case("Garbage", None)]
    #[case("", None)]
    #[case(",,,", None)]
    fn suggestions(#[case] item: &str, #[case] want: Option<&str>) {
        assert_eq!(closest(item, HOOKS), want);
    }

    #[test]
    fn policy_suggestions() {
        let p = &["HookSucceeded", "HookFailed", "BeforeHookCreation"];
        assert_eq!(closest("HookSuceeded", p), Some("HookSucceeded"));
        assert_eq!(closest("hook-succeeded", p), Some("HookSucceeded"));
        assert_eq!(closest("BeforeHookCreate", p), Some("BeforeHookCreation"));
    }

    #[test]
    fn shown_escapes_and_cuts() {
        assert_eq!(shown("PreSync"), "`PreSync`");
        assert_eq!(shown("a\nb"), "`a\\nb`");
        let long = "x".repeat(1000);
        let s = shown(&long);
        assert!(s.len() < 70, "{s}");
        assert!(s.ends_with("(1000 bytes)"));
        assert_eq!(shown("ünï"), "`ünï`");
        assert_eq!(truncate_chars("héllo", 3), "hé…");
        assert_eq!(truncate_chars("héllo", 5), "héllo");
    }
}
