//! Templates + resolved profile → a validated manifest set, in memory, all or nothing.

use crate::error::{Classify, ErrorKind};

/// A problem rendering templates.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::User
    }
}
