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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_lines() {
        assert_eq!(Prefix("host", &Some("h1")).to_string(), "host `h1`: ");
        assert_eq!(Prefix::<&str>("host", &None).to_string(), "");
        assert_eq!(Lines(&["a", "b"]).to_string(), "a\nb");
    }
}
