//! Where the target release's binaries come from and the checksums they must match.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::version::Version;

/// `cluster:` settings, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Shown in reports; defaults to the inventory file's stem.
    pub name: String,
    pub target_version: Version,
    pub releases: ReleaseSource,
}

impl ClusterSettings {
    /// Everything known about one file of the target release: where it is on the controller
    /// (local source), where the host fetches it (url source), and its checksum.
    pub fn target_file(&self, file: ReleaseFile) -> ReleaseFileInfo {
        let version = self.target_version;
        match &self.releases {
            ReleaseSource::Local { path, sums } => ReleaseFileInfo {
                file,
                local_path: Some(path.join(version.to_string()).join(file.file_name())),
                url: None,
                sha256: sums.of(file).clone(),
            },
            ReleaseSource::Url { template, sha256 } => ReleaseFileInfo {
                file,
                local_path: None,
                url: Some(template.render(version, file)),
                // Validation guarantees an entry for the target version.
                sha256: sha256
                    .get(&version)
                    .map(|sums| sums.of(file).clone())
                    .unwrap_or_else(Sha256::zero),
            },
        }
    }
}

/// Where release binaries come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum ReleaseSource {
    /// A folder on the controller holding `<version>/ipfs-cluster-service`,
    /// `<version>/ipfs-cluster-ctl` and `<version>/SHA256SUMS`; the files are uploaded.
    Local {
        /// Absolute folder path.
        path: PathBuf,
        /// The target version's checksums, read from its `SHA256SUMS` when the inventory loaded.
        sums: ReleaseSums,
    },
    /// Each host downloads the files itself from `template`, checked against `sha256`.
    Url {
        template: UrlTemplate,
        sha256: BTreeMap<Version, ReleaseSums>,
    },
}

impl ReleaseSource {
    /// Where the releases come from, in words.
    pub fn describe(&self) -> String {
        match self {
            ReleaseSource::Local { path, .. } => path.display().to_string(),
            ReleaseSource::Url { .. } => "the inventory's sha256 list".to_string(),
        }
    }

    /// `local` or `url`, as written in the inventory.
    pub fn kind(&self) -> &'static str {
        match self {
            ReleaseSource::Local { .. } => "local",
            ReleaseSource::Url { .. } => "url",
        }
    }
}

/// The two executables of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseFile {
    Service,
    Ctl,
}

impl ReleaseFile {
    pub const ALL: [ReleaseFile; 2] = [ReleaseFile::Service, ReleaseFile::Ctl];

    pub fn file_name(self) -> &'static str {
        match self {
            ReleaseFile::Service => "ipfs-cluster-service",
            ReleaseFile::Ctl => "ipfs-cluster-ctl",
        }
    }
}

/// See [`ClusterSettings::target_file`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFileInfo {
    pub file: ReleaseFile,
    pub local_path: Option<PathBuf>,
    pub url: Option<String>,
    pub sha256: Sha256,
}

/// The checksums of one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSums {
    pub service: Sha256,
    pub ctl: Sha256,
}

impl ReleaseSums {
    pub fn of(&self, file: ReleaseFile) -> &Sha256 {
        match file {
            ReleaseFile::Service => &self.service,
            ReleaseFile::Ctl => &self.ctl,
        }
    }

    /// Reads a `sha256sum` output (`<hex>  <name>` or `<hex> *<name>` per line).
    /// Returns the file names it lacks when an entry is missing or malformed.
    pub fn from_sha256sums(text: &str) -> Result<ReleaseSums, Vec<&'static str>> {
        let find = |file: ReleaseFile| {
            text.lines().find_map(|line| {
                let (hex, name) = line.split_once(char::is_whitespace)?;
                let name = name.trim_start().trim_start_matches('*').trim_end();
                (name == file.file_name())
                    .then(|| hex.parse::<Sha256>().ok())
                    .flatten()
            })
        };
        match (find(ReleaseFile::Service), find(ReleaseFile::Ctl)) {
            (Some(service), Some(ctl)) => Ok(ReleaseSums { service, ctl }),
            (service, ctl) => Err([
                (service.is_none(), "ipfs-cluster-service"),
                (ctl.is_none(), "ipfs-cluster-ctl"),
            ]
            .into_iter()
            .filter_map(|(missing, name)| missing.then_some(name))
            .collect()),
        }
    }
}

/// A SHA-256 digest as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256(String);

/// Why a digest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 hexadecimal digits (a SHA-256 digest)")]
pub struct Sha256Error;

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256 {
        Sha256::from_bytes(&<sha2::Sha256 as sha2::Digest>::digest(bytes))
    }

    /// The digest of the file at `path`, read in chunks (state exports can be large).
    pub fn of_file(path: &std::path::Path) -> std::io::Result<Sha256> {
        use sha2::Digest;
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = sha2::Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(Sha256::from_bytes(&hasher.finalize()))
    }

    /// A computed digest, as hex.
    pub fn from_bytes(digest: &[u8]) -> Sha256 {
        Sha256(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits: enough to tell two digests apart in a message.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }

    fn zero() -> Sha256 {
        Sha256("0".repeat(64))
    }
}

impl FromStr for Sha256 {
    type Err = Sha256Error;
    fn from_str(text: &str) -> Result<Sha256, Sha256Error> {
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Sha256(text.to_ascii_lowercase()))
        } else {
            Err(Sha256Error)
        }
    }
}

impl TryFrom<String> for Sha256 {
    type Error = Sha256Error;
    fn try_from(text: String) -> Result<Sha256, Sha256Error> {
        text.parse()
    }
}

impl From<Sha256> for String {
    fn from(sum: Sha256) -> String {
        sum.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A download URL with two placeholders, `{{ version }}` and `{{ file }}`.
///
/// Deliberately not a minijinja template: it is filled in by the planner for the release facts,
/// never with host variables, and two placeholders need no second template engine setup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UrlTemplate(String);

/// Why a URL template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlTemplateError {
    #[error("must start with http:// or https://")]
    Scheme,
    #[error(
        "unknown placeholder `{{{{ {0} }}}}` (only `{{{{ version }}}}` and `{{{{ file }}}}` exist)"
    )]
    Placeholder(String),
    #[error("unclosed `{{{{`")]
    Unclosed,
}

impl UrlTemplate {
    /// The URL of `file` of release `version`.
    pub fn render(&self, version: Version, file: ReleaseFile) -> String {
        let mut out = String::new();
        // Validation guarantees every `{{ … }}` is one of the two placeholders.
        let _ = for_each_part(&self.0, |part| {
            match part {
                UrlPart::Text(text) => out.push_str(text),
                UrlPart::Placeholder("version") => out.push_str(&version.to_string()),
                UrlPart::Placeholder(_) => out.push_str(file.file_name()),
            }
            Ok(())
        });
        out
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

enum UrlPart<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

fn for_each_part<'a>(
    template: &'a str,
    mut visit: impl FnMut(UrlPart<'a>) -> Result<(), UrlTemplateError>,
) -> Result<(), UrlTemplateError> {
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        visit(UrlPart::Text(&rest[..open]))?;
        let close = rest[open..].find("}}").ok_or(UrlTemplateError::Unclosed)? + open;
        visit(UrlPart::Placeholder(rest[open + 2..close].trim()))?;
        rest = &rest[close + 2..];
    }
    visit(UrlPart::Text(rest))
}

impl FromStr for UrlTemplate {
    type Err = UrlTemplateError;
    fn from_str(text: &str) -> Result<UrlTemplate, UrlTemplateError> {
        if !(text.starts_with("https://") || text.starts_with("http://")) {
            return Err(UrlTemplateError::Scheme);
        }
        for_each_part(text, |part| match part {
            UrlPart::Placeholder(name) if name != "version" && name != "file" => {
                Err(UrlTemplateError::Placeholder(name.to_string()))
            }
            _ => Ok(()),
        })?;
        Ok(UrlTemplate(text.to_string()))
    }
}

impl TryFrom<String> for UrlTemplate {
    type Error = UrlTemplateError;
    fn try_from(text: String) -> Result<UrlTemplate, UrlTemplateError> {
        text.parse()
    }
}

impl From<UrlTemplate> for String {
    fn from(template: UrlTemplate) -> String {
        template.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_templates_fill_version_and_file() {
        let template: UrlTemplate = "https://dl.example/{{ version }}/{{file}}".parse().unwrap();
        assert_eq!(
            template.render(Version::new(1, 1, 6), ReleaseFile::Ctl),
            "https://dl.example/1.1.6/ipfs-cluster-ctl"
        );
        assert_eq!(
            "ftp://x/{{ version }}".parse::<UrlTemplate>(),
            Err(UrlTemplateError::Scheme)
        );
        assert_eq!(
            "https://x/{{ host }}".parse::<UrlTemplate>(),
            Err(UrlTemplateError::Placeholder("host".into()))
        );
        assert_eq!(
            "https://x/{{ version".parse::<UrlTemplate>(),
            Err(UrlTemplateError::Unclosed)
        );
    }

    #[test]
    fn sha256sums_files_are_read() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let text = format!("{a}  ipfs-cluster-service\n{b} *ipfs-cluster-ctl\n");
        let sums = ReleaseSums::from_sha256sums(&text).unwrap();
        assert_eq!(sums.service.as_str(), a);
        assert_eq!(sums.ctl.as_str(), "b".repeat(64));
        assert_eq!(
            ReleaseSums::from_sha256sums(&format!("{a}  ipfs-cluster-service\n")),
            Err(vec!["ipfs-cluster-ctl"])
        );
    }
}
