//! "Did you mean …?" and safe display of user-supplied values in messages.

/// The closest candidate to a mistyped item, if one is close enough to be a likely typo:
/// same letters in another case or with other separators first, then a small edit distance.
///
/// Each name is folded once into a reused buffer, and a candidate whose length alone puts it
/// beyond its limit is not aligned at all (the distance is at least the difference in length):
/// a list of typos in a `kind: List` of hooks made this ~60 000 instructions a call.
pub fn closest<'a>(item: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut folded = Vec::with_capacity(64);
    fold(item, &mut folded);
    if folded.is_empty() || item.len() > 64 {
        return None;
    }
    let mut candidate = Vec::with_capacity(64);
    for c in candidates {
        fold(c, &mut candidate);
        if candidate == folded {
            return Some(c);
        }
    }
    let mut rows = [
        Vec::with_capacity(64),
        Vec::with_capacity(64),
        Vec::with_capacity(64),
    ];
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        fold(c, &mut candidate);
        let limit = (candidate.len() / 3).clamp(1, 3);
        if folded.len().abs_diff(candidate.len()) > limit {
            continue;
        }
        let d = edit_distance(&folded, &candidate, &mut rows);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Lowercase letters and digits only: `Pre_Sync`, `pre-sync` and `PRESYNC` fold alike.
fn fold(s: &str, out: &mut Vec<char>) {
    out.clear();
    if s.is_ascii() {
        out.extend(
            s.bytes()
                .filter(u8::is_ascii_alphanumeric)
                .map(|b| char::from(b.to_ascii_lowercase())),
        );
        return;
    }
    for c in s.chars().filter(|c| c.is_alphanumeric()) {
        out.extend(c.to_lowercase());
    }
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions (`sycn`).
/// Three rows of the table (the transposition looks two rows back), kept by the caller.
fn edit_distance(a: &[char], b: &[char], rows: &mut [Vec<usize>; 3]) -> usize {
    for row in rows.iter_mut() {
        row.clear();
        row.resize(b.len() + 1, 0);
    }
    // rows[0]: i - 2, rows[1]: i - 1, rows[2]: i.
    for (j, cell) in rows[1].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        let [two_up, up, row] = rows;
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (up[j] + 1).min(row[j - 1] + 1).min(up[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(two_up[j - 2] + 1);
            }
            row[j] = best;
        }
        rows.rotate_left(1);
    }
    rows[1][b.len()]
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

    /// The first implementation (fold each name again for every use, a full table per
    /// candidate): `closest` must answer exactly as it did.
    fn reference_closest<'a>(item: &str, candidates: &[&'a str]) -> Option<&'a str> {
        fn fold(s: &str) -> String {
            s.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        }
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

    #[test]
    fn closest_answers_as_the_first_implementation() {
        let odd = &["", "İstanbul", "ÄÖÜ", "a", "ab", "x-y_z", "ǅemal", "ß"];
        let mut items: Vec<String> = [
            "PreSnyc",
            "presync",
            "PRE_SYNC",
            "sycn",
            "Snyc",
            "PostSyc",
            "SyncFailed",
            "Skp",
            "Garbage",
            "",
            ",,,",
            "HookSuceeded",
            "hook-succeeded",
            "BeforeHookCreate",
            "hooksucceeded",
            "pre-instal",
            "postinstall",
            "tset",
            "test-succes",
            "İSTANBUL",
            "istanbul",
            "äöü",
            "AOU",
            "ss",
            "SS",
            "ǆemal",
            "DŽEMAL",
            "b",
            "ba",
            "x",
            "xyz",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        items.push("P".repeat(64));
        items.push("P".repeat(65));
        items.push("é".repeat(40));
        // The names the catalogue suggests from, and some odd ones.
        let sets: [&[&str]; 4] = [
            HOOKS,
            &crate::rules::POLICY_NAMES,
            &crate::rules::HELM_EVENT_NAMES,
            odd,
        ];
        for set in sets {
            // Every candidate with one letter dropped, doubled, swapped or changed, too.
            let mut all = items.clone();
            for c in set {
                let chars: Vec<char> = c.chars().collect();
                for i in 0..chars.len() {
                    let mut v = chars.clone();
                    v.remove(i);
                    all.push(v.iter().collect());
                    let mut v = chars.clone();
                    v.insert(i, chars[i]);
                    all.push(v.iter().collect());
                    let mut v = chars.clone();
                    v[i] = 'q';
                    all.push(v.iter().collect());
                    if i + 1 < chars.len() {
                        let mut v = chars.clone();
                        v.swap(i, i + 1);
                        all.push(v.iter().collect());
                    }
                }
            }
            for item in &all {
                assert_eq!(
                    closest(item, set),
                    reference_closest(item, set),
                    "{item:?} in {set:?}"
                );
            }
        }
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
