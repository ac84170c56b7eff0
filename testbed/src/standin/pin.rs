//! Pins and their JSON shapes per release (reference §2.6): the shapes of `state export`,
//! `state import` and the REST API's `/allocations`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{Error, Result};
use crate::release::Release;

/// One entry of the shared pinset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    pub cid: String,
    pub name: String,
    pub replication_factor_min: i64,
    pub replication_factor_max: i64,
    pub allocations: Vec<String>,
    pub recursive: bool,
}

impl Pin {
    /// A recursive pin replicated everywhere, which is what `pin add` creates by default.
    pub fn everywhere(cid: &str, name: &str) -> Result<Pin> {
        validate_cid(cid)?;
        Ok(Pin {
            cid: cid.to_string(),
            name: name.to_string(),
            replication_factor_min: -1,
            replication_factor_max: -1,
            allocations: Vec::new(),
            recursive: true,
        })
    }
}

/// Accepts anything that looks like a CIDv0 (`Qm` + 44 base58) or a base32 CIDv1 (`baf…`).
pub fn validate_cid(cid: &str) -> Result<()> {
    let base58 = |c: char| c.is_ascii_alphanumeric() && !matches!(c, '0' | 'O' | 'I' | 'l');
    let v0 = cid.len() == 46 && cid.starts_with("Qm") && cid.chars().all(base58);
    let v1 = cid.len() >= 10
        && cid.starts_with("baf")
        && cid
            .chars()
            .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c));
    if v0 || v1 {
        Ok(())
    } else {
        Err(Error::InvalidCid {
            cid: cid.to_string(),
        })
    }
}

/// The JSON shape of pins in exports and API answers, which changed with the releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// ≤ 0.9: an indented JSON array, CIDs as strings.
    ArrayString,
    /// 0.10: an indented JSON array, CIDs as `{"/": cid}`.
    ArrayObject,
    /// 0.11–0.14: NDJSON, CIDs as `{"/": cid}`, numeric `type`.
    NdjsonObject,
    /// ≥ 1.0: NDJSON, CIDs as strings, string `type` and `mode`.
    NdjsonString,
}

impl Shape {
    pub fn of(release: &Release) -> Shape {
        match (release.major, release.minor) {
            (0, 0..=9) => Shape::ArrayString,
            (0, 10) => Shape::ArrayObject,
            (0, _) => Shape::NdjsonObject,
            _ => Shape::NdjsonString,
        }
    }

    /// Whether a list of pins is one JSON array (else one object per line).
    pub fn is_array(self) -> bool {
        matches!(self, Shape::ArrayString | Shape::ArrayObject)
    }

    /// One pin in this shape.
    pub fn to_json(self, pin: &Pin) -> Value {
        let max_depth = if pin.recursive { -1 } else { 0 };
        match self {
            Shape::ArrayString => json!({
                "cid": pin.cid, "type": 2, "allocations": pin.allocations, "max_depth": max_depth,
                "reference": "", "replication_factor_min": pin.replication_factor_min,
                "replication_factor_max": pin.replication_factor_max, "name": pin.name, "shard_size": 0,
            }),
            Shape::ArrayObject | Shape::NdjsonObject => json!({
                "cid": {"/": pin.cid}, "type": 2, "allocations": pin.allocations, "max_depth": max_depth,
                "reference": null, "replication_factor_min": pin.replication_factor_min,
                "replication_factor_max": pin.replication_factor_max, "name": pin.name, "shard_size": 0,
                "user_allocations": null, "metadata": null,
            }),
            Shape::NdjsonString => json!({
                "cid": pin.cid, "type": "pin", "allocations": pin.allocations, "max_depth": max_depth,
                "reference": null, "replication_factor_min": pin.replication_factor_min,
                "replication_factor_max": pin.replication_factor_max, "name": pin.name,
                "mode": if pin.recursive { "recursive" } else { "direct" }, "shard_size": 0,
                "user_allocations": null, "expire_at": "0001-01-01T00:00:00Z", "metadata": null,
                "pin_update": null, "origins": [], "timestamp": "0001-01-01T00:00:00Z",
            }),
        }
    }

    /// A whole pin list as the export file / API body of this shape.
    pub fn encode_list(self, pins: &[Pin]) -> String {
        if self.is_array() {
            let list: Vec<Value> = pins.iter().map(|p| self.to_json(p)).collect();
            let mut text = pretty(&Value::Array(list));
            text.push('\n');
            text
        } else {
            pins.iter()
                .map(|p| format!("{}\n", self.to_json(p)))
                .collect()
        }
    }

    /// Decodes an import file, accepting only this shape; errors read like Go's decoder.
    pub fn decode_list(self, text: &str) -> Result<Vec<Pin>> {
        let shape_err = |detail: String| Error::ImportShape { detail };
        let values: Vec<Value> = if self.is_array() {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(items)) => items,
                Ok(other) => {
                    return Err(shape_err(format!(
                        "json: cannot unmarshal {} into Go value of type []api.Pin",
                        kind(&other)
                    )))
                }
                Err(err) => return Err(shape_err(err.to_string())),
            }
        } else {
            let mut items = Vec::new();
            for item in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
                let item = item.map_err(|e| shape_err(e.to_string()))?;
                if !item.is_object() {
                    return Err(shape_err(format!(
                        "json: cannot unmarshal {} into Go value of type api.Pin",
                        kind(&item)
                    )));
                }
                items.push(item);
            }
            items
        };
        values
            .iter()
            .map(|v| self.decode_one(v).map_err(shape_err))
            .collect()
    }

    fn decode_one(self, value: &Value) -> std::result::Result<Pin, String> {
        let field_err = |field: &str, got: &Value, want: &str| {
            format!(
                "json: cannot unmarshal {} into Go struct field Pin.{field} of type {want}",
                kind(got)
            )
        };
        let Some(obj) = value.as_object() else {
            return Err(format!(
                "json: cannot unmarshal {} into Go value of type api.Pin",
                kind(value)
            ));
        };
        let raw_cid = obj.get("cid").unwrap_or(&Value::Null);
        let cid = match self {
            Shape::ArrayString | Shape::NdjsonString => raw_cid
                .as_str()
                .ok_or_else(|| field_err("cid", raw_cid, "string"))?
                .to_string(),
            Shape::ArrayObject | Shape::NdjsonObject => raw_cid
                .get("/")
                .and_then(Value::as_str)
                .ok_or_else(|| field_err("cid", raw_cid, "cid.Cid"))?
                .to_string(),
        };
        validate_cid(&cid).map_err(|e| e.to_string())?;
        if let Some(kind_value) = obj.get("type") {
            let ok = match self {
                Shape::NdjsonString => kind_value.is_string(),
                _ => kind_value.is_u64(),
            };
            if !ok {
                return Err(field_err("type", kind_value, "api.PinType"));
            }
        }
        let int = |key: &str| obj.get(key).and_then(Value::as_i64).unwrap_or(-1);
        let recursive = match obj.get("mode").and_then(Value::as_str) {
            Some(mode) => mode == "recursive",
            None => obj.get("max_depth").and_then(Value::as_i64).unwrap_or(-1) != 0,
        };
        Ok(Pin {
            cid,
            name: obj
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            replication_factor_min: int("replication_factor_min"),
            replication_factor_max: int("replication_factor_max"),
            allocations: obj
                .get("allocations")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            recursive,
        })
    }
}

/// Go's name for a JSON value kind in unmarshal errors.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Pretty JSON with the 4-space indent of the old exports.
pub fn pretty(value: &Value) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser).expect("json value serializes");
    String::from_utf8(out).expect("json is utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";

    #[test]
    fn each_shape_round_trips_and_rejects_the_others() {
        let pins = vec![Pin::everywhere(CID, "a").unwrap()];
        let shapes = [
            Shape::ArrayString,
            Shape::ArrayObject,
            Shape::NdjsonObject,
            Shape::NdjsonString,
        ];
        for a in shapes {
            let text = a.encode_list(&pins);
            for b in shapes {
                let decoded = b.decode_list(&text);
                if a == b {
                    assert_eq!(decoded.unwrap(), pins, "{a:?}");
                } else {
                    assert!(decoded.is_err(), "{b:?} must reject a {a:?} export");
                }
            }
        }
    }

    #[test]
    fn cids_look_like_cids() {
        assert!(validate_cid(CID).is_ok());
        assert!(
            validate_cid("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi").is_ok()
        );
        assert!(validate_cid("hello").is_err());
    }
}
