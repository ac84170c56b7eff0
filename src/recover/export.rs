//! The shape of a `state export` file, and whether a release can import it: the docs say to
//! import only with the release that exported, and the shapes changed three times (reference
//! §2.6). Checked before planning, so a wrong `--from-export` file is refused before any peer is
//! stopped or cleaned. Pure.

use std::fmt;

use serde_json::Value;

use super::plan::ExportFile;
use super::source::SourceChoice;
use super::{ExportProblem, RecoverError};
use crate::inventory::Version;

/// The four export shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportShape {
    /// One JSON array, CIDs as strings: 0.3.2 – 0.9.x.
    ArrayOfStringCids,
    /// One JSON array, CIDs as `{"/": cid}`: 0.10.x.
    ArrayOfObjectCids,
    /// One pin object per line, CIDs as `{"/": cid}`: 0.11 – 0.14.
    StreamOfObjectCids,
    /// One pin object per line, CIDs as strings: 1.0 and later.
    StreamOfStringCids,
}

impl ExportShape {
    /// The shape of an export's text, from its first pin; `None` when it holds no pin.
    pub fn of(text: &str) -> Option<ExportShape> {
        let array = text.trim_start().starts_with('[');
        let first = serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .next()?
            .ok()?;
        let pin = if array {
            first.as_array()?.first()?.clone()
        } else {
            first
        };
        let object_cid = match pin.get("cid")? {
            Value::String(_) => false,
            Value::Object(_) => true,
            _ => return None,
        };
        Some(match (array, object_cid) {
            (true, false) => ExportShape::ArrayOfStringCids,
            (true, true) => ExportShape::ArrayOfObjectCids,
            (false, true) => ExportShape::StreamOfObjectCids,
            (false, false) => ExportShape::StreamOfStringCids,
        })
    }

    /// The shape `version` writes and reads.
    pub fn of_release(version: Version) -> ExportShape {
        if version < Version::new(0, 10, 0) {
            ExportShape::ArrayOfStringCids
        } else if version < Version::new(0, 11, 0) {
            ExportShape::ArrayOfObjectCids
        } else if version < Version::new(1, 0, 0) {
            ExportShape::StreamOfObjectCids
        } else {
            ExportShape::StreamOfStringCids
        }
    }
}

impl fmt::Display for ExportShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportShape::ArrayOfStringCids => "a JSON array with string CIDs (0.9 and earlier)",
            ExportShape::ArrayOfObjectCids => "a JSON array with {\"/\": cid} CIDs (0.10)",
            ExportShape::StreamOfObjectCids => {
                "one pin per line with {\"/\": cid} CIDs (0.11 to 0.14)"
            }
            ExportShape::StreamOfStringCids => "one pin per line with string CIDs (1.0 and later)",
        })
    }
}

/// Refuses an export that the source host's release cannot import.
pub fn check_export_fits(export: &ExportFile, choice: &SourceChoice) -> Result<(), RecoverError> {
    let expected = ExportShape::of_release(choice.from);
    if export.shape == expected {
        return Ok(());
    }
    Err(RecoverError::Export {
        path: export.path.clone(),
        problem: ExportProblem::WrongShape {
            shape: export.shape,
            host: choice.source.host.clone(),
            version: choice.from,
            expected,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_era_is_told_apart_and_matched_to_its_releases() {
        let cases = [
            (
                "[\n    {\n        \"cid\": \"QmA\",\n        \"name\": \"\"\n    }\n]\n",
                "0.9.0",
            ),
            (
                "[\n  {\n    \"cid\": {\n      \"/\": \"QmA\"\n    }\n  }\n]\n",
                "0.10.1",
            ),
            (
                "{\"cid\":{\"/\":\"QmA\"},\"type\":2}\n{\"cid\":{\"/\":\"QmB\"},\"type\":2}\n",
                "0.11.0",
            ),
            ("{\"cid\":\"QmA\",\"type\":\"pin\"}\n", "1.1.6"),
        ];
        for (text, release) in cases {
            let shape = ExportShape::of(text).unwrap();
            assert_eq!(
                shape,
                ExportShape::of_release(release.parse().unwrap()),
                "{text}"
            );
        }
        assert_eq!(ExportShape::of("[]"), None);
        assert_eq!(ExportShape::of("not json"), None);
        assert_ne!(
            ExportShape::of(cases[1].0).unwrap(),
            ExportShape::of_release("0.9.0".parse().unwrap())
        );
    }
}
