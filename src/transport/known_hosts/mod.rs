//! Our own known_hosts matcher, as strict as OpenSSH's (russh's own check accepts `@revoked`
//! keys and misses wildcard and tab-separated lines).
//!
//! Supported: plain names and addresses, `[host]:port` for ports other than 22, comma-separated
//! lists, hashed `|1|salt|hash` names, `*` and `?` wildcards, negated `!pattern`s, `@revoked`
//! and `@cert-authority` markers, comments, blank lines, spaces or tabs between fields.
//!
//! Decisions, where OpenSSH leaves room:
//! - A key on an `@revoked` line is refused for every host, whatever the line's host patterns
//!   (OpenSSH: "must not ever be accepted"), and even if another line trusts it.
//! - `@cert-authority` lines trust host certificates their key signed, for the hosts their
//!   patterns match ([`KnownHosts::check_certificate`]): the certificate must be a host
//!   certificate, valid now, with no critical option, and name the host among its principals
//!   (OpenSSH accepts a certificate without principals; this tool does not).
//! - A host that is known only with other keys, also of other key types, is
//!   [`Match::Changed`], never "unknown": otherwise a server that presents a new key type would
//!   slip through the accept-new policy. Connections restrict the offered key types to the
//!   known ones ([`KnownHosts::key_types`]), so a legitimate server presents a known type.
//! - Lines that cannot be parsed are skipped, as OpenSSH does.

mod pattern;

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::{certificate::CertType, Algorithm, Certificate, HashAlg, PublicKey};
use thiserror::Error;

use pattern::{match_list, HostMatch};

/// A line of one of the known_hosts files: the file and its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub path: PathBuf,
    pub number: usize,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.number)
    }
}

/// What the known_hosts files say about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// The key is listed for the host.
    Trusted {
        /// The line that trusts the key.
        at: Line,
    },
    /// The key is marked `@revoked`; it must never be accepted.
    Revoked {
        /// The `@revoked` line.
        at: Line,
    },
    /// The host is known, but with other keys: possibly a man-in-the-middle.
    Changed {
        /// The first line for the host with a key of the same type, else its first line.
        at: Line,
        /// The key types known for the host.
        known_types: Vec<Algorithm>,
    },
    /// Nothing is known about the host.
    Unknown,
}

/// A known_hosts file could not be read or written.
#[derive(Debug, Error)]
pub enum KnownHostsError {
    /// Reading failed (a missing file is not an error: it is empty).
    #[error("cannot read known_hosts file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Appending a new entry failed.
    #[error("cannot append to known_hosts file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Which of the files (an index into `KnownHosts::paths`).
    file: usize,
    line: usize,
    marker: Marker,
    hosts: String,
    key: PublicKey,
}

/// Parsed known_hosts files, indexed: a run reads them once and looks up every host in them,
/// so files of N hosts cost O(N) per run, not per connection.
///
/// Several files (ssh_config's `UserKnownHostsFile a b`, or a list in `ssh.known_hosts`) are
/// one set of lines, as OpenSSH treats them: a key `@revoked` in any file is refused, a key
/// listed for the host in any file is trusted, a host listed in any file with other keys only
/// is [`Match::Changed`]. New keys are appended to the first file.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    /// The files, in order; the first is the one new keys are appended to.
    paths: Vec<PathBuf>,
    entries: Vec<Entry>,
    /// Unmarked entries whose host field is a plain list of names (no wildcard, negation or
    /// hash), by lower-case name: found without a scan.
    by_name: HashMap<String, Vec<usize>>,
    /// The other unmarked entries, matched pattern by pattern (hashed names: an HMAC each).
    patterned: Vec<usize>,
    /// `@revoked` entries: refused for every host.
    revoked: Vec<usize>,
    /// `@cert-authority` entries, matched pattern by pattern.
    authorities: Vec<usize>,
}

/// What the known_hosts file says about a host certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertMatch {
    /// Signed by the key of this `@cert-authority` line, for this host, valid now.
    Trusted { at: Line },
    /// Why not, in words.
    Refused { why: String },
}

/// The name known_hosts uses for a host: `host` on port 22, `[host]:port` otherwise.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The SHA-256 fingerprint as OpenSSH prints it (`SHA256:` and unpadded base64).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl KnownHosts {
    /// Reads and parses `path`; a missing file reads as empty.
    pub fn load(path: &Path) -> Result<Self, KnownHostsError> {
        Self::load_all(&[path.to_path_buf()])
    }

    /// Reads and parses every file of `paths`, in order (missing files read as empty).
    pub fn load_all(paths: &[PathBuf]) -> Result<Self, KnownHostsError> {
        let mut known = Self::default();
        for path in paths {
            match fs::read_to_string(path) {
                Ok(text) => known.parse_file(path, &text),
                Err(e) if e.kind() == io::ErrorKind::NotFound => known.parse_file(path, ""),
                Err(source) => {
                    return Err(KnownHostsError::Read {
                        path: path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(known)
    }

    /// Parses known_hosts text; `path` is kept for messages.
    pub fn parse(path: &Path, text: &str) -> Self {
        let mut known = Self::default();
        known.parse_file(path, text);
        known
    }

    /// Adds the lines of one more file.
    fn parse_file(&mut self, path: &Path, text: &str) {
        let file = self.paths.len();
        self.paths.push(path.to_path_buf());
        for (index, line) in text.lines().enumerate() {
            match parse_line((file, index + 1), line) {
                Some(entry) => self.add(entry),
                None if !is_blank_or_comment(line) => {
                    tracing::debug!(path = %path.display(), line = index + 1, "skipping unparsable known_hosts line")
                }
                None => {}
            }
        }
    }

    /// Records what [`append`] wrote at `line` of the first file, so the rest of the run sees it.
    pub fn add_appended(&mut self, line: usize, (host, port): (&str, u16), key: &PublicKey) {
        self.add(Entry {
            file: 0,
            line,
            marker: Marker::None,
            hosts: host_name(&host.to_ascii_lowercase(), port),
            key: key.clone(),
        });
    }

    fn add(&mut self, entry: Entry) {
        let at = self.entries.len();
        match entry.marker {
            Marker::Revoked => self.revoked.push(at),
            Marker::CertAuthority => self.authorities.push(at),
            Marker::None if !entry.hosts.contains(['*', '?', '!', '|']) => {
                for name in entry.hosts.split(',').filter(|n| !n.is_empty()) {
                    self.by_name
                        .entry(name.to_ascii_lowercase())
                        .or_default()
                        .push(at);
                }
            }
            Marker::None => self.patterned.push(at),
        }
        self.entries.push(entry);
    }

    /// The first file: the one new keys are appended to.
    pub fn path(&self) -> &Path {
        self.paths.first().map_or(Path::new(""), PathBuf::as_path)
    }

    /// Every file read, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The files as a message names them: `a` or `a, b`.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        names.join(", ")
    }

    fn at(&self, entry: &Entry) -> Line {
        Line {
            path: self.paths[entry.file].clone(),
            number: entry.line,
        }
    }

    /// Checks `key` for `host` (a name or address) on `port`.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Match {
        if let Some(revoked) = self.revoked().find(|e| e.key.key_data() == key.key_data()) {
            return Match::Revoked {
                at: self.at(revoked),
            };
        }
        let for_host = self.host_entries(host, port);
        if let Some(trusted) = for_host.iter().find(|e| e.key.key_data() == key.key_data()) {
            return Match::Trusted {
                at: self.at(trusted),
            };
        }
        let Some(first) = for_host.first() else {
            return Match::Unknown;
        };
        let same_type = for_host
            .iter()
            .find(|e| same_family(&e.key.algorithm(), &key.algorithm()));
        Match::Changed {
            at: self.at(same_type.unwrap_or(first)),
            known_types: self.key_types(host, port),
        }
    }

    /// The key types listed for the host (revoked keys excluded), in file order, without duplicates.
    pub fn key_types(&self, host: &str, port: u16) -> Vec<Algorithm> {
        let mut types: Vec<Algorithm> = Vec::new();
        for entry in self.host_entries(host, port) {
            let algorithm = entry.key.algorithm();
            if self.is_revoked(&entry.key) || types.contains(&algorithm) {
                continue;
            }
            types.push(algorithm);
        }
        types
    }

    /// Whether an `@cert-authority` line covers the host (then host certificates are asked for).
    pub fn has_authority_for(&self, host: &str, port: u16) -> bool {
        !self.authority_entries(host, port).is_empty()
    }

    /// Checks a host certificate that `host` on `port` presented, at `now` (Unix seconds).
    pub fn check_certificate(
        &self,
        (host, port): (&str, u16),
        cert: &Certificate,
        now: u64,
    ) -> CertMatch {
        let refused = |why: String| CertMatch::Refused { why };
        let ca = cert.signature_key();
        let ca_fingerprint = ca.fingerprint(HashAlg::Sha256);
        if let Some(revoked) = self
            .revoked()
            .find(|e| e.key.key_data() == ca || e.key.key_data() == cert.public_key())
        {
            return refused(format!(
                "its key or its authority ({ca_fingerprint}) is revoked ({})",
                self.at(revoked)
            ));
        }
        let authorities = self.authority_entries(host, port);
        if authorities.is_empty() {
            return refused(format!(
                "no @cert-authority line covers {}",
                host_name(host, port)
            ));
        }
        let Some(authority) = authorities.iter().find(|e| e.key.key_data() == ca) else {
            return refused(format!(
                "it is signed by {ca_fingerprint}, which no @cert-authority line for {} trusts",
                host_name(host, port)
            ));
        };
        if cert.cert_type() != CertType::Host {
            return refused("it is a user certificate, not a host certificate".to_string());
        }
        if cert.validate_at(now, [&ca_fingerprint]).is_err() {
            return refused(if now < cert.valid_after() || now >= cert.valid_before() {
                format!(
                    "it is valid from {} to {} (Unix time), not now ({now})",
                    cert.valid_after(),
                    cert.valid_before()
                )
            } else {
                "its signature does not verify".to_string()
            });
        }
        if !cert
            .valid_principals()
            .iter()
            .any(|p| p.eq_ignore_ascii_case(host))
        {
            return refused(format!(
                "it names the principals [{}], not {host}",
                cert.valid_principals().join(", ")
            ));
        }
        if !cert.critical_options().is_empty() {
            return refused(
                "it has critical options, which no host certificate should".to_string(),
            );
        }
        CertMatch::Trusted {
            at: self.at(authority),
        }
    }

    /// `@cert-authority` entries whose patterns match the host, in file order.
    fn authority_entries(&self, host: &str, port: u16) -> Vec<&Entry> {
        let name = host_name(&host.to_ascii_lowercase(), port);
        self.authorities
            .iter()
            .map(|&i| &self.entries[i])
            .filter(|e| match_list(&name, &e.hosts) == HostMatch::Yes && !self.is_revoked(&e.key))
            .collect()
    }

    fn revoked(&self) -> impl Iterator<Item = &Entry> {
        self.revoked.iter().map(|&i| &self.entries[i])
    }

    fn is_revoked(&self, key: &PublicKey) -> bool {
        self.revoked().any(|e| e.key.key_data() == key.key_data())
    }

    /// Plain (unmarked) entries whose patterns match the host, in file order.
    fn host_entries(&self, host: &str, port: u16) -> Vec<&Entry> {
        let name = host_name(&host.to_ascii_lowercase(), port);
        let mut found: Vec<usize> = self.by_name.get(&name).cloned().unwrap_or_default();
        found.extend(
            self.patterned
                .iter()
                .copied()
                .filter(|&i| match_list(&name, &self.entries[i].hosts) == HostMatch::Yes),
        );
        found.sort_unstable();
        found.into_iter().map(|i| &self.entries[i]).collect()
    }
}

/// Appends `[host]:port type base64` (plain `host` on port 22) to the file, creating it and
/// its folder if needed; returns the new line's number.
pub fn append(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<usize, KnownHostsError> {
    let write_error = |source| KnownHostsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let existing = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(KnownHostsError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(write_error)?;
    }
    // The comment is dropped: it is whatever the server's admin typed, not ours to record.
    let bare = PublicKey::new(key.key_data().clone(), "");
    let encoded = bare
        .to_openssh()
        .map_err(|e| write_error(io::Error::other(e.to_string())))?;
    let mut text = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("{} {}\n", host_name(host, port), encoded.trim()));
    // One write with O_APPEND, so concurrent connections appending for other hosts do not interleave.
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(write_error)?;
    file.write_all(text.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    Ok(existing.lines().count() + 1)
}

/// Whether two key types are the same for known_hosts purposes (RSA signature hashes differ,
/// the key does not).
pub(crate) fn same_family(a: &Algorithm, b: &Algorithm) -> bool {
    match (a, b) {
        (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
        _ => a == b,
    }
}

fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim_start();
    line.is_empty() || line.starts_with('#')
}

fn parse_line((file, number): (usize, usize), line: &str) -> Option<Entry> {
    if is_blank_or_comment(line) {
        return None;
    }
    let mut fields = line.split([' ', '\t']).filter(|f| !f.is_empty());
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let (key_type, blob) = (fields.next()?, fields.next()?);
    // from_openssh refuses a type field that disagrees with the blob; OpenSSH skips such lines too.
    let key = PublicKey::from_openssh(&format!("{key_type} {blob}")).ok()?;
    Some(Entry {
        file,
        line: number,
        marker,
        hosts: first.to_string(),
        key,
    })
}

#[cfg(test)]
mod tests;
