//! Turning an observation into something two implementations can share: IDs, addresses,
//! paths and times replaced by names, JSON reduced to its field names and types.

use serde_json::Value;

/// Literal replacements (longest first), then timestamps.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pairs: Vec<(String, String)>,
}

impl Names {
    /// Replaces `literal` by `<name>` from now on.
    pub fn add(&mut self, literal: &str, name: &str) {
        if literal.is_empty() || self.pairs.iter().any(|(l, _)| l == literal) {
            return;
        }
        self.pairs.push((literal.to_string(), format!("<{name}>")));
        self.pairs.sort_by_key(|(l, _)| std::cmp::Reverse(l.len()));
    }

    /// The text with every known literal and every timestamp replaced.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (literal, name) in &self.pairs {
            out = out.replace(literal, name);
        }
        times(&out)
    }
}

/// Replaces RFC 3339 timestamps (`2026-12-05T06:50:31.810Z`, with or without fraction or
/// zone) by `<time>`.
pub fn times(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let digits = |from: usize, n: usize| {
        from + n <= bytes.len() && bytes[from..from + n].iter().all(u8::is_ascii_digit)
    };
    while i < bytes.len() {
        let stamp = digits(i, 4)
            && bytes.get(i + 4) == Some(&b'-')
            && digits(i + 5, 2)
            && bytes.get(i + 7) == Some(&b'-')
            && digits(i + 8, 2)
            && bytes.get(i + 10) == Some(&b'T');
        if stamp {
            let mut j = i + 11;
            while j < bytes.len() && (bytes[j].is_ascii_digit() || b":.".contains(&bytes[j])) {
                j += 1;
            }
            if j < bytes.len() && bytes[j] == b'Z' {
                j += 1;
            } else if j < bytes.len() && b"+-".contains(&bytes[j]) && digits(j + 1, 2) {
                j += 3;
                while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b':') {
                    j += 1;
                }
            }
            out.push_str("<time>");
            i = j;
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The field names and types of a JSON value: `{a:str,b:[num]}`; lists by the union of their
/// elements' shapes.
pub fn shape(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "num".into(),
        Value::String(_) => "str".into(),
        Value::Array(items) => {
            let mut shapes: Vec<String> = items.iter().map(shape).collect();
            shapes.sort();
            shapes.dedup();
            format!("[{}]", shapes.join("|"))
        }
        Value::Object(map) => {
            let mut fields: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    // Maps keyed by peer ID (`peer_map`) are shaped by their values.
                    let key = if k.starts_with("12D3Koo") || k.starts_with("Qm") {
                        "<peer>"
                    } else {
                        k
                    };
                    format!("{key}:{}", shape(v))
                })
                .collect();
            fields.sort();
            fields.dedup();
            format!("{{{}}}", fields.join(","))
        }
    }
}

/// The shape of a JSON document or of NDJSON (one shape per distinct line shape), or
/// `not json: <first line>`.
pub fn json_shape(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "empty".into();
    }
    let Some(values) = stream(text) else {
        let line = text.lines().next().unwrap_or("");
        return format!("not json: {}", line.chars().take(80).collect::<String>());
    };
    if values.len() == 1 {
        return shape(&values[0]);
    }
    let mut shapes: Vec<String> = values.iter().map(shape).collect();
    shapes.sort();
    shapes.dedup();
    format!("stream of {}", shapes.join(" | "))
}

/// A text of whitespace-separated JSON values (one document, NDJSON, or the indented objects
/// one after the other that ipfs-cluster-ctl prints), or `None` if it is not all JSON.
fn stream(text: &str) -> Option<Vec<Value>> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .ok()
}

/// The JSON values of a document or NDJSON text (an array counts as its elements).
pub fn json_values(text: &str) -> Vec<Value> {
    let values = stream(text.trim()).unwrap_or_default();
    match <[Value; 1]>::try_from(values) {
        Ok([Value::Array(items)]) => items,
        Ok([other]) => vec![other],
        Err(values) => values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_ids_and_shapes() {
        let mut names = Names::default();
        names.add("12D3KooWABC", "id:a");
        assert_eq!(
            names.apply("2026-12-05T06:50:31.810Z\tINFO 12D3KooWABC at 2026-12-05T06:50:31Z"),
            "<time>\tINFO <id:a> at <time>"
        );
        assert_eq!(json_shape("{\"b\":1,\"a\":[\"x\"]}\n"), "{a:[str],b:num}");
        assert_eq!(json_shape("{\"a\":1}\n{\"a\":2}\n"), "stream of {a:num}");
        assert_eq!(json_values("{\n \"a\": 1\n}\n{\n \"a\": 2\n}\n").len(), 2);
        assert!(json_shape("Qm | x").starts_with("not json"));
    }
}
