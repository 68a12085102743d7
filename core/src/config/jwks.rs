//! A JWKS URL as the configuration holds it, with the key set its clones share. The key set
//! is `auth`'s type: it is kept here type-erased so that `config` imports nothing above it
//! (read once when an engine is built, never per message).

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What was made for a CA file and refetch interval.
type Shared = (Option<PathBuf>, Duration, Arc<dyn Any + Send + Sync>);

/// A JWKS URL as the configuration holds it. Clones of one configuration share the key set
/// it loads, so the endpoints of one engine fetch once.
#[derive(Clone)]
pub struct JwksSource {
    url: String,
    /// The key set made for a CA file and refetch interval: a configuration changed after an
    /// engine was built gets a set of its own.
    shared: Arc<parking_lot::Mutex<Option<Shared>>>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jwks({})", self.url)
    }
}

impl JwksSource {
    /// The key set at `url` (checked when the engine is built).
    pub fn new(url: impl Into<String>) -> Self {
        JwksSource {
            url: url.into(),
            shared: Arc::default(),
        }
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The value shared for this CA file and interval: the one made before if both are the
    /// same (and of type `T`), else a new one from `make`, kept for the next call.
    pub(crate) fn shared<T, E>(
        &self,
        ca: &Option<PathBuf>,
        interval: Duration,
        make: impl FnOnce() -> Result<Arc<T>, E>,
    ) -> Result<Arc<T>, E>
    where
        T: Send + Sync + 'static,
    {
        let mut shared = self.shared.lock();
        if let Some((c, i, value)) = &*shared {
            if c == ca && *i == interval {
                if let Ok(value) = value.clone().downcast::<T>() {
                    return Ok(value);
                }
            }
        }
        let value = make()?;
        *shared = Some((ca.clone(), interval, value.clone()));
        Ok(value)
    }
}
