//! `api_auth`: how `ipfs-cluster-ctl` reaches a peer's REST API when it wants Basic auth or
//! HTTPS (the ctl's `--basic-auth`, `--https`, `--no-check-certificate`, `--force-http`).
//!
//! The secret never leaves the host: the inventory names a file on the host holding
//! `user:password` (`credentials_file`), or an environment variable of the host's login
//! (`credentials_env`), and the command reads it into `CLUSTER_CREDENTIALS` (the ctl's own
//! variable for `--basic-auth`) when it runs. Plans, logs and journals hold only the file's path
//! or the variable's name.
//!
//! ```yaml
//! vars:
//!   api_auth:
//!     credentials_file: /etc/ipfs-cluster/api-credentials   # or credentials_env: NAME
//!     https: true               # default: true with credentials (as the ctl), else false
//!     check_certificate: true   # false: --no-check-certificate (only with https)
//! ```

use serde_json::Value;

use super::vars::Vars;

/// The variable's name.
pub const API_AUTH_VAR: &str = "api_auth";

/// Where the Basic-auth credentials come from, on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// An absolute path of a file holding `user:password`.
    File(String),
    /// The name of an environment variable of the host's login holding `user:password`.
    Env(String),
}

/// A host's `api_auth`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiAuth {
    pub credentials: Option<Credentials>,
    pub https: bool,
    pub check_certificate: bool,
}

impl ApiAuth {
    /// The host's `api_auth` variable (none: plain HTTP without credentials, as the ctl's
    /// defaults). `Err` says what is wrong in words, without repeating any value.
    pub fn of(vars: &Vars) -> Result<ApiAuth, String> {
        let Some(value) = vars.get(API_AUTH_VAR) else {
            return Ok(ApiAuth::plain());
        };
        let Value::Object(fields) = value else {
            return Err("api_auth must be a map (credentials_file or credentials_env, https, check_certificate)".into());
        };
        let mut unknown: Vec<&str> = fields
            .keys()
            .map(String::as_str)
            .filter(|k| {
                !matches!(
                    *k,
                    "credentials_file" | "credentials_env" | "https" | "check_certificate"
                )
            })
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            return Err(format!(
                "unknown key(s) {} (known: credentials_file, credentials_env, https, check_certificate); \
                 the secret itself never goes into the inventory: put `user:password` in a file on the host",
                unknown.join(", ")
            ));
        }
        let text = |key: &str| match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("api_auth.{key} must be a string")),
        };
        let flag = |key: &str| match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("api_auth.{key} must be true or false")),
        };
        let credentials = match (text("credentials_file")?, text("credentials_env")?) {
            (Some(_), Some(_)) => {
                return Err("give credentials_file or credentials_env, not both".into())
            }
            (Some(path), None) => Some(Credentials::File(checked_path(path)?)),
            (None, Some(name)) => Some(Credentials::Env(checked_env_name(name)?)),
            (None, None) => None,
        };
        // As the ctl: credentials imply HTTPS unless it is turned off (`--force-http`).
        let https = flag("https")?.unwrap_or(credentials.is_some());
        let check_certificate = flag("check_certificate")?.unwrap_or(true);
        if !check_certificate && !https {
            return Err(
                "check_certificate: false is only valid with https (as the ctl's --no-check-certificate)"
                    .into(),
            );
        }
        Ok(ApiAuth {
            credentials,
            https,
            check_certificate,
        })
    }

    /// No credentials, plain HTTP.
    pub fn plain() -> ApiAuth {
        ApiAuth {
            credentials: None,
            https: false,
            check_certificate: true,
        }
    }

    /// Shell text put before the ctl (empty, or ending in a space): sets `CLUSTER_CREDENTIALS`
    /// from the host's file or variable when the command runs.
    pub fn env_prefix(&self) -> String {
        match &self.credentials {
            None => String::new(),
            Some(Credentials::File(path)) => {
                format!("CLUSTER_CREDENTIALS=\"$(cat -- {})\" ", single_quoted(path))
            }
            Some(Credentials::Env(name)) => format!("CLUSTER_CREDENTIALS=\"${{{name}}}\" "),
        }
    }

    /// `docker exec` options passing `CLUSTER_CREDENTIALS` into the container (empty, or ending
    /// in a space).
    pub fn docker_env(&self) -> String {
        if self.credentials.is_some() {
            "-e CLUSTER_CREDENTIALS ".to_string()
        } else {
            String::new()
        }
    }

    /// The ctl's flags (empty, or starting with a space). With credentials, HTTPS or
    /// `--force-http` is always said, so the ctl never warns on stderr (which would break
    /// `--enc json` output read with `2>&1`).
    pub fn ctl_flags(&self) -> String {
        match (
            self.https,
            self.check_certificate,
            self.credentials.is_some(),
        ) {
            (true, true, _) => " --https".to_string(),
            (true, false, _) => " --https --no-check-certificate".to_string(),
            (false, _, true) => " --force-http".to_string(),
            (false, _, false) => String::new(),
        }
    }
}

fn checked_path(path: String) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err("api_auth.credentials_file must be an absolute path on the host".into());
    }
    if path.contains(['\n', '\r', '\0']) {
        return Err("api_auth.credentials_file must not contain a line break or NUL".into());
    }
    Ok(path)
}

fn checked_env_name(name: String) -> Result<String, String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(name)
    } else {
        Err("api_auth.credentials_env must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)".into())
    }
}

/// `'text'` for a POSIX shell.
fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::VarName;

    fn of(yaml: &str) -> Result<ApiAuth, String> {
        let mut vars = Vars::new();
        let value: Value = serde_saphyr::from_str(yaml).unwrap();
        vars.insert(API_AUTH_VAR.parse::<VarName>().unwrap(), value);
        ApiAuth::of(&vars)
    }

    #[test]
    fn no_api_auth_is_plain_http_without_credentials() {
        let auth = ApiAuth::of(&Vars::new()).unwrap();
        assert_eq!(auth, ApiAuth::plain());
        assert_eq!(
            (auth.env_prefix(), auth.docker_env(), auth.ctl_flags()),
            (String::new(), String::new(), String::new())
        );
    }

    #[test]
    fn credentials_from_a_file_imply_https_as_the_ctl_does() {
        let auth = of("{credentials_file: /etc/ipfs-cluster/it's}").unwrap();
        assert_eq!(
            auth.env_prefix(),
            r#"CLUSTER_CREDENTIALS="$(cat -- '/etc/ipfs-cluster/it'\''s')" "#
        );
        assert_eq!(auth.ctl_flags(), " --https");
        assert_eq!(auth.docker_env(), "-e CLUSTER_CREDENTIALS ");
    }

    #[test]
    fn https_off_is_said_as_force_http_and_no_check_certificate_needs_https() {
        let auth = of("{credentials_env: CLUSTER_API, https: false}").unwrap();
        assert_eq!(
            auth.env_prefix(),
            r#"CLUSTER_CREDENTIALS="${CLUSTER_API}" "#
        );
        assert_eq!(auth.ctl_flags(), " --force-http");
        let auth = of("{https: true, check_certificate: false}").unwrap();
        assert_eq!(auth.ctl_flags(), " --https --no-check-certificate");
        assert_eq!(auth.env_prefix(), "");
        let error = of("{check_certificate: false}").unwrap_err();
        assert!(error.contains("only valid with https"), "{error}");
    }

    #[test]
    fn a_secret_in_the_inventory_is_refused_without_repeating_it() {
        let error = of("{password: hunter2, credentials_file: /f}").unwrap_err();
        assert!(error.contains("unknown key(s) password"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        for (yaml, part) in [
            ("{credentials_file: relative/file}", "absolute path"),
            ("{credentials_env: 'A B'}", "environment variable name"),
            ("{credentials_file: /f, credentials_env: X}", "not both"),
            ("{https: 'yes'}", "true or false"),
            ("[credentials_file]", "must be a map"),
        ] {
            let error = of(yaml).unwrap_err();
            assert!(error.contains(part), "{yaml}: {error}");
        }
    }
}
