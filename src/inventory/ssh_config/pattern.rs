//! OpenSSH's wildcard patterns (`match.c`): `*` any run of characters, `?` one character, and
//! pattern lists where a matching `!pattern` vetoes the whole list.

/// `text` matches `pattern` (`*` and `?` wildcards, case-sensitive).
pub fn matches(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    matches_chars(&text, &pattern)
}

fn matches_chars(text: &[char], pattern: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| matches_chars(&text[skip..], rest)),
        Some(('?', rest)) => !text.is_empty() && matches_chars(&text[1..], rest),
        Some((c, rest)) => text.first() == Some(c) && matches_chars(&text[1..], rest),
    }
}

/// A `Host` line's patterns (one per argument): some positive pattern matches and no negated one
/// does. Case-sensitive, against the host as given, as OpenSSH does.
pub fn host_line_matches(host: &str, patterns: &[String]) -> bool {
    let mut positive = false;
    for pattern in patterns {
        match pattern.strip_prefix('!') {
            Some(negated) if matches(host, negated) => return false,
            Some(_) => {}
            None => positive |= matches(host, pattern),
        }
    }
    positive
}

/// A comma-separated pattern list (`Match host a,b,!c`): some positive pattern matches and no
/// negated one does. `fold_case` lowercases text and patterns (host names).
pub fn list_matches(text: &str, list: &str, fold_case: bool) -> bool {
    let (text, list) = if fold_case {
        (text.to_ascii_lowercase(), list.to_ascii_lowercase())
    } else {
        (text.to_string(), list.to_string())
    };
    let mut positive = false;
    for pattern in list.split(',') {
        match pattern.strip_prefix('!') {
            Some(negated) if matches(&text, negated) => return false,
            Some(_) => {}
            None => positive |= matches(&text, pattern),
        }
    }
    positive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_openssh() {
        assert!(matches("peer1", "peer*"));
        assert!(matches("peer1", "peer?"));
        assert!(matches("peer", "peer*"));
        assert!(!matches("peer10", "peer?"));
        assert!(matches("a.b.c", "*.c"));
        assert!(!matches("Peer1", "peer*"));
    }

    #[test]
    fn a_negated_pattern_vetoes_the_line() {
        let line = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert!(host_line_matches("web1", &line(&["*", "!db*"])));
        assert!(!host_line_matches("db1", &line(&["*", "!db*"])));
        assert!(!host_line_matches("db1", &line(&["!web*"])));
        assert!(list_matches("DB1.lan", "db?.lan,web*", true));
        assert!(!list_matches("db1", "*,!db1", false));
        assert!(!list_matches("Alice", "alice", false));
    }
}
