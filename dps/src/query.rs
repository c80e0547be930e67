//! Management queries and paging: the query body, `x-ms-max-item-count`
//! and `x-ms-continuation`.

use serde_json::Value;

use crate::{DpsError, ErrorKind};

/// Most items one query page returns.
pub const MAX_PAGE: usize = 1000;
/// Items per page when `x-ms-max-item-count` is absent.
pub const DEFAULT_PAGE: usize = 100;

/// One page of a query: its size and where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Items per page.
    pub size: usize,
    /// Items skipped (from a continuation token this service issued).
    pub offset: usize,
}

impl Page {
    /// The page asked for by the two paging headers' values.
    pub fn from_headers(
        max_item_count: Option<&str>,
        continuation: Option<&str>,
    ) -> Result<Page, DpsError> {
        let size = match max_item_count {
            None => DEFAULT_PAGE,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(DpsError::new(
                        ErrorKind::BadRequest,
                        format!("x-ms-max-item-count {v:?} must be 1 to {MAX_PAGE}"),
                    ));
                }
            },
        };
        let offset = match continuation {
            None => 0,
            Some(token) => token
                .strip_prefix("offset:")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    DpsError::new(
                        ErrorKind::BadRequest,
                        format!("x-ms-continuation {token:?} is not a token this service issued"),
                    )
                })?,
        };
        Ok(Page { size, offset })
    }

    /// This page of `items`, and the continuation token of the next page
    /// if there is one.
    pub fn slice<T>(&self, items: Vec<T>) -> (Vec<T>, Option<String>) {
        let total = items.len();
        let page: Vec<T> = items
            .into_iter()
            .skip(self.offset)
            .take(self.size)
            .collect();
        let next = self.offset + page.len();
        let token = (next < total).then(|| format!("offset:{next}"));
        (page, token)
    }
}

/// Checks a query body (`{"query": …}`): attest answers the unfiltered
/// query only.
pub fn check_query(body: &Value) -> Result<(), DpsError> {
    match body.get("query") {
        None => Ok(()),
        Some(Value::String(q)) if q.trim() == "*" || q.trim().eq_ignore_ascii_case("select *") => {
            Ok(())
        }
        Some(other) => Err(DpsError::new(
            ErrorKind::BadRequest,
            format!("query {other} is not supported; attest answers \"*\" (all entries)"),
        )),
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

    #[test]
    fn pages_and_tokens() {
        let page = Page::from_headers(Some("2"), None).unwrap();
        let (items, next) = page.slice(vec![1, 2, 3]);
        assert_eq!(items, [1, 2]);
        let page = Page::from_headers(Some("2"), next.as_deref()).unwrap();
        assert_eq!(page.slice(vec![1, 2, 3]), (vec![3], None));
        assert!(Page::from_headers(Some("0"), None).is_err());
        assert!(Page::from_headers(None, Some("bogus")).is_err());
    }
}
