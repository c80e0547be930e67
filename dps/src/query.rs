//! Management queries and paging: the query body, `x-ms-max-item-count`
//! and `x-ms-continuation`.
//!
//! Queries: `*`, `SELECT *`, and `SELECT * FROM <collection>` (the
//! collection the route names: `enrollments`, `enrollmentGroups`,
//! `registrations`; keywords case-insensitive) return every entry. A
//! `WHERE` clause is refused (400) with a message saying so: attest does
//! not filter, and an unfiltered answer to a filtered question would be
//! wrong, not approximate.
//!
//! Continuation tokens are keyset cursors: the key of the last item of the
//! page (and the collection it belongs to), so a client that deletes each
//! page before asking for the next one misses nothing. A token is checked
//! on use: one for another collection, or not issued in this form, is a 400.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::{DpsError, ErrorKind};

/// Most items one query page returns.
pub const MAX_PAGE: usize = 1000;
/// Items per page when `x-ms-max-item-count` is absent.
pub const DEFAULT_PAGE: usize = 100;

/// Version prefix of continuation tokens.
const TOKEN_PREFIX: &str = "k1.";

fn bad_request(message: String) -> DpsError {
    DpsError::new(ErrorKind::BadRequest, message)
}

/// The paging headers of a query request, as sent (checked by
/// [`Page::from_headers`] once the collection is known).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paging {
    /// `x-ms-max-item-count`.
    pub max_item_count: Option<String>,
    /// `x-ms-continuation`.
    pub continuation: Option<String>,
}

/// One page of a query of one collection: its size, and the key after
/// which it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Items per page.
    pub size: usize,
    /// The page starts after this key (`None`: at the first item).
    pub after: Option<String>,
    collection: String,
}

impl Page {
    /// The page of `collection` (a name that scopes the token, e.g.
    /// `enrollments` or `registrations/<group>`) asked for by the two paging
    /// headers' values.
    pub fn from_headers(
        collection: &str,
        max_item_count: Option<&str>,
        continuation: Option<&str>,
    ) -> Result<Page, DpsError> {
        let size = match max_item_count {
            None => DEFAULT_PAGE,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(bad_request(format!(
                        "x-ms-max-item-count {v:?} must be 1 to {MAX_PAGE}"
                    )));
                }
            },
        };
        let after = continuation
            .map(|token| {
                decode(token, collection).ok_or_else(|| {
                    bad_request(format!(
                        "x-ms-continuation {:?} is not a token this service issued for {collection}",
                        token.chars().take(80).collect::<String>()
                    ))
                })
            })
            .transpose()?;
        Ok(Page {
            size,
            after,
            collection: collection.to_string(),
        })
    }

    /// The page of `collection` that `paging` asks for.
    pub fn of(collection: &str, paging: &Paging) -> Result<Page, DpsError> {
        Page::from_headers(
            collection,
            paging.max_item_count.as_deref(),
            paging.continuation.as_deref(),
        )
    }

    /// How many items to fetch after [`Page::after`]: one more than the
    /// page, to learn whether another page follows.
    pub fn fetch(&self) -> usize {
        self.size + 1
    }

    /// This page from `items` (at most [`Page::fetch`] items after
    /// [`Page::after`], in key order, each with its key), and the token of
    /// the next page if there is one.
    pub fn finish<T>(&self, mut items: Vec<(String, T)>) -> (Vec<T>, Option<String>) {
        let more = items.len() > self.size;
        items.truncate(self.size);
        let token = match items.last() {
            Some((key, _)) if more => Some(encode(&self.collection, key)),
            _ => None,
        };
        (items.into_iter().map(|(_, item)| item).collect(), token)
    }
}

fn encode(collection: &str, key: &str) -> String {
    format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(format!("{collection}\n{key}"))
    )
}

fn decode(token: &str, collection: &str) -> Option<String> {
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim().strip_prefix(TOKEN_PREFIX)?)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (scope, key) = text.split_once('\n')?;
    (scope == collection && !key.is_empty()).then(|| key.to_string())
}

/// Checks a query body (`{"query": …}`) for `collection` (see the module
/// documentation for what is answered).
pub fn check_query(body: &Value, collection: &str) -> Result<(), DpsError> {
    let query = match body.get("query") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(q)) => q.trim(),
        Some(other) => {
            return Err(bad_request(format!(
                "query {other} must be a string such as \"SELECT * FROM {collection}\""
            )));
        }
    };
    let words: Vec<&str> = query.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match lower.as_slice() {
        ["*"] | ["select", "*"] => Ok(()),
        ["select", "*", "from", source] if *source == collection.to_ascii_lowercase() => Ok(()),
        ["select", "*", "from", source, "where", ..]
            if *source == collection.to_ascii_lowercase() =>
        {
            Err(bad_request(format!(
                "query {query:?}: WHERE clauses are not supported; attest answers unfiltered queries (\"SELECT * FROM {collection}\") and the client filters"
            )))
        }
        ["select", "*", "from", _, ..] => Err(bad_request(format!(
            "query {query:?}: this route queries {collection} (\"SELECT * FROM {collection}\")"
        ))),
        _ => Err(bad_request(format!(
            "query {query:?} is not supported; attest answers \"*\" or \"SELECT * FROM {collection}\""
        ))),
    }
}

/// Parses a JSON request body; an empty body is `{}` (the Node SDK sends
/// `{}` or nothing on GET).
pub fn json_body(bytes: &[u8]) -> Result<Value, DpsError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        DpsError::new(
            ErrorKind::MalformedBody,
            format!("request body is not JSON: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keyed(keys: &[&str]) -> Vec<(String, String)> {
        keys.iter()
            .map(|k| (k.to_string(), k.to_string()))
            .collect()
    }

    #[test]
    fn keyset_pages() {
        let page = Page::from_headers("enrollments", Some("2"), None).unwrap();
        assert_eq!((page.after.as_deref(), page.fetch()), (None, 3));
        let (items, next) = page.finish(keyed(&["a", "b", "c"]));
        assert_eq!(items, ["a", "b"]);
        let next = next.unwrap();
        let page = Page::from_headers("enrollments", Some("2"), Some(&next)).unwrap();
        assert_eq!(page.after.as_deref(), Some("b"));
        assert_eq!(page.finish(keyed(&["c"])), (vec!["c".to_string()], None));
        // A token is for one collection; garbage and offsets are refused.
        assert!(Page::from_headers("enrollmentGroups", None, Some(&next)).is_err());
        for bad in ["bogus", "offset:2", "k1.", "k1.!!!"] {
            assert!(
                Page::from_headers("enrollments", None, Some(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(Page::from_headers("enrollments", Some("0"), None).is_err());
        assert!(Page::from_headers("enrollments", Some("1001"), None).is_err());
    }

    #[test]
    fn queries() {
        for ok in [
            json!({}),
            json!({"query": "*"}),
            json!({"query": "select *"}),
            json!({"query": "SELECT * FROM enrollments"}),
            json!({"query": "  select  *  from  Enrollments "}),
        ] {
            assert!(check_query(&ok, "enrollments").is_ok(), "{ok}");
        }
        for bad in [
            json!({"query": "SELECT * FROM enrollments WHERE attestation.type = 'x509'"}),
            json!({"query": "SELECT * FROM enrollmentGroups"}),
            json!({"query": "DELETE FROM enrollments"}),
            json!({"query": 7}),
        ] {
            let e = check_query(&bad, "enrollments").unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadRequest, "{bad}");
        }
        let e = check_query(
            &json!({"query": "select * from enrollments where x = 1"}),
            "enrollments",
        )
        .unwrap_err();
        assert!(e.message.contains("WHERE clauses are not supported"), "{e}");
    }
}
