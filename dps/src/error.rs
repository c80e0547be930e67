//! Every error the DPS APIs answer, in one table: HTTP status, DPS
//! `errorCode`, and what it means. Transports render a [`DpsError`] in
//! their own framing (an HTTP response with `x-ms-error-code`; an MQTT
//! `$dps/registrations/res/{status}` publish) from the same fields.

use serde_json::{Value, json};

macro_rules! error_kinds {
    ($($(#[doc = $doc:literal])* $kind:ident = $status:literal, $code:literal;)*) => {
        /// The kinds of DPS error attest answers.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[doc = $doc])* $kind,)*
        }

        impl ErrorKind {
            /// Every kind, in table order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind,)*];

            /// The HTTP status (and the status of an MQTT reply topic).
            pub const fn status(self) -> u16 {
                match self {
                    $(ErrorKind::$kind => $status,)*
                }
            }

            /// The DPS `errorCode` (also the `x-ms-error-code` header).
            pub const fn code(self) -> u32 {
                match self {
                    $(ErrorKind::$kind => $code,)*
                }
            }
        }
    };
}

error_kinds! {
    /// A request the API cannot act on (bad document, bad query, bad header).
    BadRequest = 400, 400_000;
    /// A request body that is not readable JSON (or not the object expected).
    MalformedBody = 400, 400_001;
    /// A registration ID outside DPS's rules, or one that differs between
    /// URL and body.
    InvalidRegistrationId = 400, 400_004;
    /// The management API's SAS token is missing or refused.
    Unauthenticated = 401, 401_000;
    /// The device is refused (attest's refusal code is in the message).
    DeviceUnauthorized = 401, 401_002;
    /// No management resource at that path, or no such entity.
    NotFound = 404, 404_000;
    /// No individual enrollment or enrollment group of that ID.
    EnrollmentNotFound = 404, 404_201;
    /// No registration record of that ID.
    RegistrationNotFound = 404, 404_202;
    /// No device API resource or operation at that path.
    DeviceNotFound = 404, 404_001;
    /// The request body did not arrive in time.
    RequestTimeout = 408, 408_000;
    /// The write conflicts with another entity (a CA already in a group, a
    /// CA still referenced).
    Conflict = 409, 409_000;
    /// An edge snapshot delta from a version whose history is no longer
    /// kept: the gateway takes a full snapshot.
    SnapshotHistoryGone = 410, 410_000;
    /// `If-Match` does not match the entity's etag, or is missing where
    /// it is required. (DPS documents only the status; the detail digits
    /// are attest's.)
    PreconditionFailed = 412, 412_002;
    /// The request body exceeds the size limit.
    PayloadTooLarge = 413, 413_000;
    /// The service failed; nothing was acknowledged.
    Internal = 500, 500_000;
    /// Every policy sandbox is busy, or the store is unavailable: retry.
    Unavailable = 503, 503_000;
}

/// A DPS error: a kind and a one-line message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {message}", kind.code(), kind.status())]
pub struct DpsError {
    /// Status and DPS code.
    pub kind: ErrorKind,
    /// One line for a human.
    pub message: String,
    /// Seconds to wait before retrying, where the error knows better than
    /// [`DpsError::retry_after`]'s default.
    retry_after: Option<u32>,
}

impl DpsError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> DpsError {
        DpsError {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Seconds after which the client should retry, where DPS says so.
    pub fn retry_after(&self) -> Option<u32> {
        (self.kind == ErrorKind::Unavailable).then(|| self.retry_after.unwrap_or(1))
    }

    /// The same error, telling the client to retry after `seconds` (at
    /// least 1; only an `Unavailable` error carries it).
    pub fn retry_after_seconds(mut self, seconds: u32) -> DpsError {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The DPS error body: `{"errorCode","trackingId","message","timestampUtc"}`.
    pub fn body(&self, tracking_id: &str, timestamp_utc: &str) -> Value {
        json!({
            "errorCode": self.kind.code(),
            "trackingId": tracking_id,
            "message": self.message,
            "timestampUtc": timestamp_utc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_start_with_their_status() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            assert!(seen.insert(kind.code()), "{kind:?}");
            assert_eq!(kind.code() / 1000, u32::from(kind.status()), "{kind:?}");
        }
    }
}
