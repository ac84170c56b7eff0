//! One ssh_config line split as OpenSSH splits it: the keyword (ended by whitespace or one `=`),
//! then arguments with `"…"`/`'…'` quotes and backslash escapes, up to an unquoted `#`.

/// A line's keyword (lowercased) and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub keyword: String,
    /// The text after the keyword and its separator, untouched (ProxyJump reads it raw).
    pub rest: String,
}

/// The keyword and the rest of `text`, or `None` for a blank or comment line.
pub fn split_line(text: &str) -> Option<Line> {
    let text = text.trim_start_matches([' ', '\t']);
    let text = text.trim_end_matches([' ', '\t', '\r', '\n', '\x0c']);
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let end = text.find([' ', '\t', '=']).unwrap_or(text.len());
    let keyword = text[..end].to_ascii_lowercase();
    let mut rest = text[end..].trim_start_matches([' ', '\t']);
    if let Some(after) = rest.strip_prefix('=') {
        rest = after.trim_start_matches([' ', '\t']);
    }
    Some(Line {
        keyword,
        rest: rest.to_string(),
    })
}

/// The arguments of `rest`, unquoted; `Err` names an unclosed quote.
pub fn arguments(rest: &str) -> Result<Vec<String>, &'static str> {
    let chars: Vec<char> = rest.chars().collect();
    let mut args = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && matches!(chars[i], ' ' | '\t') {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '#' {
            break;
        }
        let mut arg = String::new();
        let mut quote = None;
        while i < chars.len() {
            let c = chars[i];
            match (c, quote) {
                ('\\', _) if escapable(chars.get(i + 1).copied(), quote) => {
                    i += 1;
                    arg.push(chars[i]);
                }
                (' ' | '\t', None) => break,
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(open)) if c == open => quote = None,
                (c, _) => arg.push(c),
            }
            i += 1;
        }
        if quote.is_some() {
            return Err("unclosed quote");
        }
        args.push(arg);
    }
    Ok(args)
}

fn escapable(next: Option<char>, quote: Option<char>) -> bool {
    matches!(next, Some('\'' | '"' | '\\')) || (quote.is_none() && next == Some(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_end_at_whitespace_or_one_equals_sign() {
        for text in [
            "HostName x",
            "  hostname=x",
            "HOSTNAME = x",
            "\tHostName\t x  ",
        ] {
            let line = split_line(text).unwrap();
            assert_eq!(
                (line.keyword.as_str(), line.rest.as_str()),
                ("hostname", "x"),
                "{text}"
            );
        }
        assert_eq!(split_line("   # comment"), None);
        assert_eq!(split_line("   "), None);
    }

    #[test]
    fn arguments_unquote_and_stop_at_comments() {
        assert_eq!(
            arguments(r#"a "b c" 'd"e' f\ g # h"#).unwrap(),
            vec!["a", "b c", "d\"e", "f g"]
        );
        assert_eq!(arguments("x#y").unwrap(), vec!["x#y"]);
        assert!(arguments("\"open").is_err());
    }
}
