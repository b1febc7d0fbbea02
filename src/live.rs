//! A value read for every request that a reload (SIGHUP) replaces while it runs (auth, the
//! integrations' settings, the rate limits):
//! readers take the current one (an `Arc`, cheap to clone under a read lock) and keep it for
//! their request, so a request sees one configuration from start to end.

use std::sync::{Arc, RwLock};

pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: Arc<T>) -> Live<T> {
        Live(RwLock::new(value))
    }

    /// The value in force.
    pub fn get(&self) -> Arc<T> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces it for every request that starts from now on.
    pub fn set(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

impl<T: Default> Default for Live<T> {
    fn default() -> Self {
        Live::new(Arc::new(T::default()))
    }
}
