//! The one place where values become shell words for the remote shell.

/// Quotes one word for a POSIX shell.
///
/// Lab values are paths, addresses and generated names; a NUL byte cannot come from them, and
/// would be a bug worth stopping on.
pub fn word(text: &str) -> String {
    shlex::try_quote(text)
        .expect("lab values hold no NUL byte")
        .into_owned()
}

/// Quotes an argument vector into one shell command.
pub fn command<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .map(|a| word(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `NAME=value` for an environment assignment in front of a command.
pub fn env(name: &str, value: &str) -> String {
    format!("{name}={}", word(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_survive_the_shell() {
        assert_eq!(command(&["a", "b c", "it's"]), r#"a 'b c' "it's""#);
        assert_eq!(env("CLUSTER_PEERNAME", "h1"), "CLUSTER_PEERNAME=h1");
        assert_eq!(word("/ip4/127.1.2.3/tcp/9096"), "/ip4/127.1.2.3/tcp/9096");
    }
}
