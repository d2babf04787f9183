//! Namespace name globs: `*` matches any run of characters (also none), `?` exactly one.
//! Namespace names are DNS labels, so nothing else needs escaping.

pub fn validate(glob: &str) -> Result<(), String> {
    if glob.is_empty() {
        return Err("a namespace name glob in `names` is empty".into());
    }
    match glob
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?')))
    {
        Some(c) => Err(format!(
            "namespace name glob `{glob}` has `{c}`: namespace names use a-z, 0-9 and `-`; globs add `*` and `?`"
        )),
        None => Ok(()),
    }
}

/// Iterative wildcard match with backtracking to the last `*` (linear-ish, no recursion).
pub fn matches(glob: &str, name: &str) -> bool {
    let (g, n) = (glob.as_bytes(), name.as_bytes());
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && (g[gi] == b'?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == b'*' {
            star = Some((gi, ni));
            gi += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (g, n, want) in [
            ("team-a", "team-a", true),
            ("team-a", "team-ab", false),
            ("team-*", "team-", true),
            ("team-*", "team-payments", true),
            ("team-*", "teams", false),
            ("*-prod", "shop-prod", true),
            ("*-prod", "shop-prod-2", false),
            ("*", "anything", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("ns-?", "ns-1", true),
            ("ns-?", "ns-12", false),
            ("*a*", "bab", true),
        ] {
            assert_eq!(matches(g, n), want, "{g} ~ {n}");
        }
        assert!(validate("Team").is_err());
        assert!(validate("").is_err());
        assert!(validate("team-*").is_ok());
    }
}
