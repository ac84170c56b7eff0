//! The one place where arguments become shell text.
//!
//! Everything else in the tool keeps commands as argument vectors; the remote login shell
//! (POSIX `sh`-compatible) sees only what these functions produce.

use thiserror::Error;

/// Why a value cannot be quoted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuoteError {
    /// A NUL byte cannot travel through a shell word; refusing is safer than truncating.
    #[error("cannot quote {value:?} for the remote shell: it contains a NUL byte")]
    Nul {
        /// The offending value, for the message (never a secret: commands are logged anyway).
        value: String,
    },
}

/// Whether `word` is one shell word as it stands: non-empty, and only characters that `shlex`
/// leaves unquoted too (`[A-Za-z0-9_./:@+-]`), so quoting it would return it unchanged. A cheap
/// check that lets the callers skip the quoter (and its copy) for the common case of paths and
/// names.
pub fn is_plain_word(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| PLAIN[usize::from(b)])
}

/// The bytes of a plain word, as a table: the templates quote paths byte by byte for every host.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'_' | b'.' | b'/' | b':' | b'@' | b'+' | b'-');
        b += 1;
    }
    table
};

/// Quotes one word for a POSIX shell, leaving plain words (`abc`, `/usr/bin`) unchanged.
pub fn quote(word: &str) -> Result<String, QuoteError> {
    if is_plain_word(word) {
        return Ok(word.to_string());
    }
    shlex::try_quote(word)
        .map(|quoted| quoted.into_owned())
        .map_err(|_| QuoteError::Nul {
            value: word.to_string(),
        })
}

/// Quotes every word and joins them with spaces into one command line.
pub fn join(words: &[&str]) -> Result<String, QuoteError> {
    // Quote word by word (rather than `try_join`) so the error names the bad word.
    let quoted = words
        .iter()
        .map(|word| quote(word))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_plain() {
        assert_eq!(
            quote("ipfs-cluster-service").unwrap(),
            "ipfs-cluster-service"
        );
        assert_eq!(quote("/usr/local/bin/x").unwrap(), "/usr/local/bin/x");
    }

    #[test]
    fn plain_words_are_exactly_what_shlex_leaves_unquoted() {
        // The fast path must never change the result: every plain word is one that shlex
        // returns as it is, and so is every ASCII byte the fast path accepts on its own.
        for word in [
            "a",
            "h1",
            "/srv/x/bin",
            "/ip4/127.0.0.1/tcp/9094",
            "user@host:22",
            "a+b-c_d.e",
        ] {
            assert!(is_plain_word(word), "{word}");
            assert_eq!(shlex::try_quote(word).unwrap(), word);
        }
        for byte in 0u8..0x80 {
            let word = (byte as char).to_string();
            if is_plain_word(&word) {
                assert_eq!(shlex::try_quote(&word).unwrap(), word.as_str(), "{byte:#x}");
            }
        }
        for word in ["", "a b", "a=b", "50%", "a,b", "^x", "x\u{e4}", "a\0b"] {
            assert!(!is_plain_word(word), "{word:?}");
        }
    }

    #[test]
    fn special_characters_are_quoted() {
        assert_eq!(quote("a b").unwrap(), "'a b'");
        assert_eq!(quote("").unwrap(), "''");
        assert_eq!(quote("$(rm -rf /)").unwrap(), "'$(rm -rf /)'");
        let quoted = quote("it's").unwrap();
        assert!(quoted == "\"it's\"" || quoted == "'it'\\''s'", "{quoted}");
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(
            quote("a\0b"),
            Err(QuoteError::Nul {
                value: "a\0b".into()
            })
        );
        assert!(join(&["echo", "a\0"]).is_err());
    }

    #[test]
    fn join_quotes_each_word() {
        let line = join(&["printf", "%s\\n", "a b", "c"]).unwrap();
        assert!(
            line.starts_with("printf ") && line.ends_with(" 'a b' c"),
            "{line}"
        );
        assert_eq!(
            shlex::split(&line).unwrap(),
            ["printf", "%s\\n", "a b", "c"]
        );
        assert_eq!(join(&[]).unwrap(), "");
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let words = [
            "printf", "[%s]", "a b", "'q'", "\"d\"", "$HOME", "`x`", "*", "ä\tb\nc", "!", "~",
        ];
        let line = join(&words).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        let expected: String = words[2..].iter().map(|w| format!("[{w}]")).collect();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    }
}
