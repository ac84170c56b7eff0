//! A saved plan is sealed: its last field is `"digest"`, the SHA-256 of the plan's JSON body
//! without that field. A plan whose commands, facts or run id were edited after `plan` wrote
//! it no longer matches its digest and is refused when read. The digest is computed while the
//! plan is streamed out (no copy of a large plan in memory) and checked over the exact bytes
//! read back, so a reformatted plan counts as an edited one.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

/// Why a plan file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(
        "plan format {found} (this cluster-upgrade reads {}); make a new plan",
        super::PLAN_FORMAT
    )]
    Format { found: u64 },
    #[error("not a plan: {0}")]
    Json(#[source] serde_json::Error),
}

/// Why a plan file's seal does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "it has no digest (plans written by `cluster-upgrade plan` end with one); make a new plan"
    )]
    Missing,
    #[error("its digest does not match its contents: the plan was changed after `cluster-upgrade plan` wrote it; make a new plan instead of editing one")]
    Mismatch,
}

/// `,"digest":"` + 64 hex digits + `"}`.
const PREFIX: &[u8] = b",\"digest\":\"";
const SUFFIX_LEN: usize = PREFIX.len() + 64 + 2;

/// Wraps the writer a plan's JSON object is serialized into: everything passes through but the
/// closing `}`, held back until [`SealingWriter::finish`] writes the digest field before it.
pub struct SealingWriter<W: Write> {
    inner: W,
    hash: Sha256,
    held: Option<u8>,
}

impl<W: Write> SealingWriter<W> {
    pub fn new(inner: W) -> SealingWriter<W> {
        SealingWriter {
            inner,
            hash: Sha256::new(),
            held: None,
        }
    }

    /// Writes the digest field and the closing brace, and a newline.
    pub fn finish(mut self) -> io::Result<W> {
        if self.held != Some(b'}') {
            return Err(io::Error::other("a plan must serialize as a JSON object"));
        }
        self.hash.update(b"}");
        let digest = hex(&self.hash.finalize());
        self.inner.write_all(PREFIX)?;
        self.inner.write_all(digest.as_bytes())?;
        self.inner.write_all(b"\"}\n")?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealingWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let Some((&last, body)) = bytes.split_last() else {
            return Ok(0);
        };
        if let Some(held) = self.held.take() {
            self.hash.update([held]);
            self.inner.write_all(&[held])?;
        }
        self.hash.update(body);
        self.inner.write_all(body)?;
        self.held = Some(last);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Checks the seal of a plan file's bytes and turns them into the plan's body (the JSON the
/// digest covers), in place.
pub fn unseal(bytes: &mut Vec<u8>) -> Result<(), SealError> {
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    let Some(start) = bytes.len().checked_sub(SUFFIX_LEN) else {
        return Err(SealError::Missing);
    };
    let suffix = &bytes[start..];
    let digest = &suffix[PREFIX.len()..PREFIX.len() + 64];
    let well_formed = suffix.starts_with(PREFIX)
        && suffix.ends_with(b"\"}")
        && digest.iter().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(SealError::Missing);
    }
    let digest = digest.to_ascii_lowercase();
    bytes.truncate(start);
    bytes.push(b'}');
    if hex(&Sha256::digest(&bytes[..])).as_bytes() == digest.as_slice() {
        Ok(())
    } else {
        Err(SealError::Mismatch)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(value: &serde_json::Value) -> Vec<u8> {
        let mut writer = SealingWriter::new(Vec::new());
        serde_json::to_writer(&mut writer, value).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn a_sealed_plan_reads_back_as_its_body() {
        let body = serde_json::json!({"run_id": "r", "steps": [{"command": "true"}]});
        let mut bytes = sealed(&body);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.ends_with("\"}\n") && text.contains(",\"digest\":\""),
            "{text}"
        );
        // The sealed file is itself one JSON object (jq and serde read it).
        let whole: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(whole["steps"], body["steps"]);
        unseal(&mut bytes).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            body
        );
    }

    #[test]
    fn an_edited_or_unsealed_plan_is_refused() {
        let body = serde_json::json!({"run_id": "r", "command": "systemctl stop x"});
        let bytes = sealed(&body);
        let mut edited = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("systemctl stop x", "rm -rf /")
            .into_bytes();
        assert_eq!(unseal(&mut edited), Err(SealError::Mismatch));
        let mut plain = serde_json::to_vec(&body).unwrap();
        assert_eq!(unseal(&mut plain), Err(SealError::Missing));
        let mut reformatted = serde_json::to_vec_pretty(
            &serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
        )
        .unwrap();
        assert!(unseal(&mut reformatted).is_err());
        assert_eq!(unseal(&mut Vec::new()), Err(SealError::Missing));
    }
}
