//! Why a load run could not be carried out: options that do not allow one, a step that
//! failed (with what the tool was doing), or something the run needs that is missing.
//! Owns only the error type and the means to say what was being done; it decides nothing.

use std::error::Error;
use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The options, the configuration or the prompts do not allow this run.
    #[error("{0}")]
    Invalid(String),
    /// A step failed: what the tool was doing, with the failure as its source (the
    /// binary prints the whole chain).
    #[error("{what}")]
    Step {
        what: String,
        source: Box<dyn Error + Send + Sync>,
    },
    /// Something the run needs was not there.
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Caller(#[from] crate::caller::CallerError),
}

/// Refuses the run with a message (the options or the prompts do not allow it).
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::load::LoadError::Invalid(format!($($arg)*)))
    };
}
pub(crate) use bail;

/// Says what the tool was doing when a step failed or found nothing.
pub(crate) trait Context<T> {
    fn context(self, what: impl Display) -> Result<T, LoadError>;
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T, LoadError>;
}

impl<T, E: Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> Result<T, LoadError> {
        self.map_err(|e| LoadError::Step {
            what: what.to_string(),
            source: Box::new(e),
        })
    }
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T, LoadError> {
        self.map_err(|e| LoadError::Step {
            what: what().to_string(),
            source: Box::new(e),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T, LoadError> {
        self.ok_or_else(|| LoadError::Missing(what.to_string()))
    }
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T, LoadError> {
        self.ok_or_else(|| LoadError::Missing(what().to_string()))
    }
}
