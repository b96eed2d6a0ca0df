//! Query parameters decoded the way the API server's parameter codec does
//! (`k8s.io/apimachinery/pkg/runtime/conversion.go`):
//!
//! - a bool is false only for `0`, `f` or `false` (any case); any other
//!   value, even an empty one, is true;
//! - an integer pointer is unset when absent or empty, else `ParseInt`,
//!   whose error becomes a 400 with Go's message;
//! - repeated keys (`command=a&command=b`) keep their order.

use crate::status::Status;

/// Decoded `key=value` pairs of a request's query string.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw (percent-encoded) query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Query { pairs }
    }

    /// The first value of `key`.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `Convert_Slice_string_To_bool`.
    pub fn bool(&self, key: &str) -> bool {
        match self.first(key) {
            None => false,
            Some(v) => {
                !(v == "0" || v.eq_ignore_ascii_case("f") || v.eq_ignore_ascii_case("false"))
            }
        }
    }

    /// `Convert_Slice_string_To_Pointer_int64`.
    pub fn int64(&self, key: &str) -> Result<Option<i64>, Status> {
        match self.first(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|e| {
                let why = match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                        "value out of range"
                    }
                    _ => "invalid syntax",
                };
                Status::bad_request(format!("strconv.ParseInt: parsing \"{v}\": {why}"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_bool_and_int_semantics() {
        let q = Query::parse(Some(
            "follow&previous=false&tty=1&tailLines=abc&command=sh&command=-c",
        ));
        assert!(q.bool("follow"));
        assert!(!q.bool("previous"));
        assert!(q.bool("tty"));
        assert!(!q.bool("stdin"));
        assert_eq!(
            q.int64("tailLines").unwrap_err().message,
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(q.all("command"), vec!["sh".to_string(), "-c".to_string()]);
    }
}
