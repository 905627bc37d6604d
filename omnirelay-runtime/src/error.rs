//! Error codes, the [`Error`] type and the mapping tables between OmniRelay codes, gRPC status codes
//! and HTTP statuses (DESIGN §4).
//!
//! Numbers equal gRPC status codes, so the gRPC mapping is the identity. The HTTP mapping follows
//! yarpc-go: every code has one status it is sent as, and a client recovers a code from the status
//! when no `Rpc-Error-Code` header is present.

use std::fmt;

use bytes::Bytes;

/// The OmniRelay status codes: the 16 error codes of gRPC and yarpc plus `ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    /// Not an error; only used where a status must be spelled out (a gRPC `grpc-status: 0`).
    Ok = 0,
    /// The caller cancelled the call.
    Cancelled = 1,
    /// An error that fits no other code.
    Unknown = 2,
    /// The request was malformed.
    InvalidArgument = 3,
    /// The deadline passed before the call finished.
    DeadlineExceeded = 4,
    /// The requested entity does not exist.
    NotFound = 5,
    /// The entity the call tried to create already exists.
    AlreadyExists = 6,
    /// The caller may not do this.
    PermissionDenied = 7,
    /// A quota, a rate limit or a size limit was hit.
    ResourceExhausted = 8,
    /// The system is not in the state the call needs.
    FailedPrecondition = 9,
    /// The call was aborted, typically by a concurrency conflict.
    Aborted = 10,
    /// A value was outside its valid range.
    OutOfRange = 11,
    /// The procedure is not implemented or not registered.
    Unimplemented = 12,
    /// An invariant of the server broke.
    Internal = 13,
    /// The service cannot serve right now; retrying may help.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The caller has no valid credentials.
    Unauthenticated = 16,
}

/// Whose fault an error is: decides retry and logging policy in middleware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The request was at fault; retrying the same request will not help.
    Client,
    /// The server or the network was at fault.
    Server,
    /// No fault (`ok`).
    None,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code's number, equal to its gRPC status code.
    pub const fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code for a gRPC status number; numbers outside 0..=16 are `unknown`, as gRPC specifies.
    pub const fn from_i32(n: i32) -> Code {
        if n >= 0 && n <= 16 {
            Code::ALL[n as usize]
        } else {
            Code::Unknown
        }
    }

    /// The yarpc text of the code, e.g. `invalid-argument`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Cancelled => "cancelled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid-argument",
            Code::DeadlineExceeded => "deadline-exceeded",
            Code::NotFound => "not-found",
            Code::AlreadyExists => "already-exists",
            Code::PermissionDenied => "permission-denied",
            Code::ResourceExhausted => "resource-exhausted",
            Code::FailedPrecondition => "failed-precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out-of-range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data-loss",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// Parses any common spelling of a code: yarpc text (`invalid-argument`), gRPC constant style
    /// (`INVALID_ARGUMENT`), .NET/Pascal style (`InvalidArgument`) or the number (`3`).
    /// Case and the separators `-`, `_` are ignored; `canceled` is accepted too.
    pub fn parse(text: &str) -> Option<Code> {
        let text = text.trim();
        if let Ok(n) = text.parse::<i32>() {
            return (0..=16).contains(&n).then(|| Code::from_i32(n));
        }
        let mut norm = [0u8; 24];
        let mut len = 0;
        for b in text.bytes() {
            if b == b'-' || b == b'_' || b == b' ' {
                continue;
            }
            if len == norm.len() {
                return None;
            }
            norm[len] = b.to_ascii_lowercase();
            len += 1;
        }
        let code = match &norm[..len] {
            b"ok" => Code::Ok,
            b"cancelled" | b"canceled" => Code::Cancelled,
            b"unknown" => Code::Unknown,
            b"invalidargument" => Code::InvalidArgument,
            b"deadlineexceeded" => Code::DeadlineExceeded,
            b"notfound" => Code::NotFound,
            b"alreadyexists" => Code::AlreadyExists,
            b"permissiondenied" => Code::PermissionDenied,
            b"resourceexhausted" => Code::ResourceExhausted,
            b"failedprecondition" => Code::FailedPrecondition,
            b"aborted" => Code::Aborted,
            b"outofrange" => Code::OutOfRange,
            b"unimplemented" => Code::Unimplemented,
            b"internal" => Code::Internal,
            b"unavailable" => Code::Unavailable,
            b"dataloss" => Code::DataLoss,
            b"unauthenticated" => Code::Unauthenticated,
            _ => return None,
        };
        Some(code)
    }

    /// The HTTP status this code is sent as over YARPC-HTTP.
    pub const fn http_status(self) -> u16 {
        match self {
            Code::Ok => 200,
            Code::Cancelled => 499,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::Unauthenticated => 401,
        }
    }

    /// The code a client infers from an HTTP status when the response names no code.
    pub const fn from_http_status(status: u16) -> Code {
        match status {
            200..=299 => Code::Ok,
            400 | 422 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::NotFound,
            409 => Code::Aborted,
            429 => Code::ResourceExhausted,
            499 => Code::Cancelled,
            501 => Code::Unimplemented,
            503 => Code::Unavailable,
            504 => Code::DeadlineExceeded,
            402..=498 => Code::InvalidArgument,
            _ => Code::Unknown,
        }
    }

    /// Whose fault an error with this code is.
    pub const fn fault(self) -> Fault {
        match self {
            Code::Ok => Fault::None,
            Code::Unknown
            | Code::DeadlineExceeded
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss => Fault::Server,
            _ => Fault::Client,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Code {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::parse(s).ok_or_else(|| Error::invalid_argument(format!("unknown error code {s:?}")))
    }
}

/// The error every OmniRelay call and handler returns: a [`Code`], a human-readable message and
/// optional opaque details (carried as `grpc-status-details-bin` over gRPC).
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    code: Code,
    message: String,
    details: Bytes,
}

impl Error {
    /// An error with the given code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            details: Bytes::new(),
        }
    }

    /// Attaches opaque details (for example an encoded `google.rpc.Status`).
    pub fn with_details(mut self, details: Bytes) -> Self {
        self.details = details;
        self
    }

    /// The error's code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The error's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error's details; empty when none were attached.
    pub fn details(&self) -> &Bytes {
        &self.details
    }

    /// Whose fault the error is.
    pub fn fault(&self) -> Fault {
        self.code.fault()
    }
}

macro_rules! constructors {
    ($($name:ident => $code:ident),* $(,)?) => {
        impl Error {
            $(
                #[doc = concat!("An error with code `", stringify!($name), "`.")]
                pub fn $name(message: impl Into<String>) -> Self {
                    Error::new(Code::$code, message)
                }
            )*
        }
    };
}

constructors! {
    cancelled => Cancelled,
    unknown => Unknown,
    invalid_argument => InvalidArgument,
    deadline_exceeded => DeadlineExceeded,
    not_found => NotFound,
    already_exists => AlreadyExists,
    permission_denied => PermissionDenied,
    resource_exhausted => ResourceExhausted,
    failed_precondition => FailedPrecondition,
    aborted => Aborted,
    out_of_range => OutOfRange,
    unimplemented => Unimplemented,
    internal => Internal,
    unavailable => Unavailable,
    data_loss => DataLoss,
    unauthenticated => Unauthenticated,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("code", &self.code).field("message", &self.message);
        if !self.details.is_empty() {
            d.field("details", &self.details);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// A result whose error is an OmniRelay [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for code in Code::ALL {
            assert_eq!(Code::from_i32(code.as_i32()), code);
            assert_eq!(Code::parse(code.as_str()), Some(code));
        }
        assert_eq!(Code::from_i32(17), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
    }

    #[test]
    fn parses_every_spelling() {
        assert_eq!(Code::parse("INVALID_ARGUMENT"), Some(Code::InvalidArgument));
        assert_eq!(Code::parse("InvalidArgument"), Some(Code::InvalidArgument));
        assert_eq!(Code::parse("invalid-argument"), Some(Code::InvalidArgument));
        assert_eq!(Code::parse("CANCELED"), Some(Code::Cancelled));
        assert_eq!(Code::parse("14"), Some(Code::Unavailable));
        assert_eq!(Code::parse("17"), None);
        assert_eq!(Code::parse("bogus"), None);
        assert_eq!(Code::parse("a-very-long-string-that-is-no-code"), None);
    }

    #[test]
    fn http_mapping_follows_the_table() {
        let expected = [
            (Code::Cancelled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, status) in expected {
            assert_eq!(code.http_status(), status, "{code}");
        }
        assert_eq!(Code::from_http_status(422), Code::InvalidArgument);
        assert_eq!(Code::from_http_status(418), Code::InvalidArgument);
        assert_eq!(Code::from_http_status(409), Code::Aborted);
        assert_eq!(Code::from_http_status(502), Code::Unknown);
    }

    #[test]
    fn faults() {
        assert_eq!(Code::InvalidArgument.fault(), Fault::Client);
        assert_eq!(Code::Unavailable.fault(), Fault::Server);
        assert_eq!(Code::Ok.fault(), Fault::None);
    }
}
