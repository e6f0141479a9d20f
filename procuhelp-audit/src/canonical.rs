//! Canonical JSON: the one byte string a context value is stored, hashed and exported as.
//!
//! Object keys sorted by their UTF-8 bytes, no whitespace, strings escaped as serde_json
//! escapes them, numbers as serde_json prints them (shortest round-tripping form). The
//! encoding is idempotent — parsing it and encoding again gives the same bytes — so a
//! verifier can recompute it from an exported value, whatever key order a transport used.

use serde_json::Value;

/// The canonical encoding of `value`.
pub(crate) fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value);
    out
}

fn write(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_scalar(out, &Value::String(k.clone()));
                out.push(':');
                write(out, v);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, v);
            }
            out.push(']');
        }
        scalar => write_scalar(out, scalar),
    }
}

fn write_scalar(out: &mut String, scalar: &Value) {
    // Serializing a scalar Value cannot fail (no maps with non-string keys, no I/O).
    out.push_str(&serde_json::to_string(scalar).unwrap_or_else(|_| "null".to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_recursively_and_encoding_is_idempotent() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": true, "x": null}], "c": "é\"\n"}, "aa": 0.1});
        let s = to_string(&v);
        assert_eq!(
            s,
            r#"{"a":{"c":"é\"\n","z":[3,{"x":null,"y":true}]},"aa":0.1,"b":1}"#
        );
        let again: Value = serde_json::from_str(&s).unwrap_or(Value::Null);
        assert_eq!(to_string(&again), s);
    }

    #[test]
    fn numbers_round_trip() {
        for n in [
            "1",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            "1.5",
            "1e300",
            "0.30000000000000004",
        ] {
            let v: Value = serde_json::from_str(n).unwrap_or(Value::Null);
            let s = to_string(&v);
            let w: Value = serde_json::from_str(&s).unwrap_or(Value::Null);
            assert_eq!(to_string(&w), s, "{n}");
        }
    }
}
