//! The project file `samestack.yaml`: typed schema, loading, validation with file:line errors.

use crate::error::{Classify, ErrorKind};

/// A problem with the project file.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::User
    }
}
