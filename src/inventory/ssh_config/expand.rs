//! The `%` tokens and `~` that OpenSSH expands in file names (IdentityFile, UserKnownHostsFile,
//! IdentityAgent): `%%`, `%d` home, `%h` host name, `%n` the host as given, `%p` port, `%r`
//! remote user, `%u` local user, and `${VAR}` from the environment. Other tokens are refused.

use super::Context;

/// The values the tokens stand for.
pub struct Tokens<'a> {
    pub context: &'a Context,
    pub hostname: &'a str,
    pub original: &'a str,
    pub port: u16,
    pub remote_user: &'a str,
}

/// `value` with a leading `~` and every token expanded.
pub fn expand(value: &str, tokens: &Tokens<'_>) -> Result<String, String> {
    let home = tokens.context.home.to_string_lossy();
    let value = if let Some(rest) = value.strip_prefix("~/") {
        format!("{home}/{rest}")
    } else if value == "~" {
        home.to_string()
    } else if value.starts_with('~') {
        return Err("`~user` is not supported".into());
    } else {
        value.to_string()
    };
    let mut out = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push_str(&percent(chars.next(), tokens)?),
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let value = (tokens.context.env)(&name)
                    .ok_or_else(|| format!("environment variable `{name}` is not set"))?;
                out.push_str(&value);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn percent(token: Option<char>, tokens: &Tokens<'_>) -> Result<String, String> {
    Ok(match token {
        Some('%') => "%".into(),
        Some('d') => tokens.context.home.to_string_lossy().into_owned(),
        Some('h') => tokens.hostname.into(),
        Some('n') => tokens.original.into(),
        Some('p') => tokens.port.to_string(),
        Some('r') => tokens.remote_user.into(),
        Some('u') => tokens.context.local_user.clone(),
        Some(other) => {
            return Err(format!(
                "`%{other}` is not supported (only %%, %d, %h, %n, %p, %r, %u)"
            ))
        }
        None => return Err("a lone `%` at the end".into()),
    })
}

/// `HostName`'s own expansion: only `%%` and `%h` (the host as given).
pub fn hostname(value: &str, original: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, c == '%') {
            (_, true) => match chars.next() {
                Some('%') => out.push('%'),
                Some('h') => out.push_str(original),
                Some(other) => {
                    return Err(format!(
                        "`%{other}` is not allowed in HostName (only %% and %h)"
                    ))
                }
                None => return Err("a lone `%` at the end".into()),
            },
            (c, false) => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn context() -> Context {
        Context {
            home: PathBuf::from("/home/op"),
            local_user: "op".into(),
            env: |name| (name == "KEYS").then(|| "/keys".to_string()),
        }
    }

    #[test]
    fn file_names_expand_tokens_home_and_environment() {
        let context = context();
        let tokens = Tokens {
            context: &context,
            hostname: "10.0.0.5",
            original: "peer1",
            port: 2222,
            remote_user: "admin",
        };
        assert_eq!(
            expand("~/.ssh/id_%n_%h_%p_%r_%u_%%", &tokens).unwrap(),
            "/home/op/.ssh/id_peer1_10.0.0.5_2222_admin_op_%"
        );
        assert_eq!(expand("%d/k", &tokens).unwrap(), "/home/op/k");
        assert_eq!(expand("${KEYS}/k", &tokens).unwrap(), "/keys/k");
        assert!(expand("${NOPE}/k", &tokens).is_err());
        assert!(expand("%C", &tokens).is_err());
        assert!(expand("~bob/k", &tokens).is_err());
    }

    #[test]
    fn hostname_expands_only_h_and_percent() {
        assert_eq!(hostname("%h.lan", "peer1").unwrap(), "peer1.lan");
        assert_eq!(hostname("%%h-%h", "a8").unwrap(), "%h-a8");
        assert!(hostname("%p", "x").is_err());
    }
}
