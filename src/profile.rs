//! Profiles (dev, ci, prod, and a project's own): overlays that resolve to settings.

use crate::error::{Classify, ErrorKind};

/// A problem with a profile.
#[derive(Debug, thiserror::Error)]
pub enum Error {}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::User
    }
}
