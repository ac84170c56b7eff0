//! Small pieces of error messages shared by the layers' error types.

use std::fmt;

/// `host `h1`: ` (or `step `x`: `) when there is one, nothing otherwise.
pub struct Prefix<'a, T: fmt::Display>(pub &'static str, pub &'a Option<T>);

impl<T: fmt::Display> fmt::Display for Prefix<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(name) => write!(f, "{} `{name}`: ", self.0),
            None => Ok(()),
        }
    }
}

/// Several errors, one per line.
pub struct Lines<'a, T: fmt::Display>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for Lines<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Host names in a line of text: all of them up to eight, else how many and the first three
/// (the full lists are in the journal and `status`; a thousand names help nobody in a line).
pub struct HostNames<'a, T: fmt::Display>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for HostNames<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LISTED_UP_TO: usize = 8;
        const NAMED: usize = 3;
        let names = self.0;
        let shown = if names.len() <= LISTED_UP_TO {
            names.len()
        } else {
            write!(f, "{} hosts (", names.len())?;
            NAMED
        };
        for (index, name) in names[..shown].iter().enumerate() {
            let comma = if index == 0 { "" } else { ", " };
            write!(f, "{comma}{name}")?;
        }
        if shown < names.len() {
            write!(f, ", …)")?;
        }
        Ok(())
    }
}

/// An error and its causes on one line: `a: b: c` (library errors keep causes in `source()`).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_lines() {
        assert_eq!(Prefix("host", &Some("h1")).to_string(), "host `h1`: ");
        assert_eq!(Prefix::<&str>("host", &None).to_string(), "");
        assert_eq!(Lines(&["a", "b"]).to_string(), "a\nb");
    }

    #[test]
    fn host_names_are_listed_up_to_eight_then_counted() {
        let names: Vec<String> = (1..=12).map(|i| format!("h{i}")).collect();
        assert_eq!(HostNames(&names[..2]).to_string(), "h1, h2");
        assert_eq!(
            HostNames(&names[..8]).to_string(),
            "h1, h2, h3, h4, h5, h6, h7, h8"
        );
        assert_eq!(HostNames(&names).to_string(), "12 hosts (h1, h2, h3, …)");
    }
}
