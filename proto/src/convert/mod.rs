//! Conversions between the client API's messages and core types.
//!
//! Inbound ([`request`]): every proto request is validated completely and turned into core
//! values, or refused with a [`FieldError`] that names the field and what is wrong with it
//! (`INVALID_ARGUMENT` on the wire). Outbound ([`response`]): core answers become proto
//! responses, and core [`RequestError`](keyshard_core::node::RequestError)s become gRPC
//! statuses with a stable code per kind ([`response::status`]).

pub mod request;
pub mod response;

use core::fmt;

pub use request::{
    add_member, create_key, get_public_key, get_task, remove_member, reshare, sign, ClientRequest,
    NewMember,
};
pub use response::{
    create_key_result, key_info, member, node_role, reshare_result, sign_result, status, task_info,
};

/// A request field that is missing, malformed or out of range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as named in the .proto file (`messages[3]` for an element).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

impl From<FieldError> for tonic::Status {
    fn from(e: FieldError) -> tonic::Status {
        tonic::Status::invalid_argument(e.to_string())
    }
}

#[cfg(test)]
mod tests;
