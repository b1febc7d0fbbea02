//! Requests for the formats' unit tests: [`Request`] builds everything a request carries
//! besides its body (routing key, settings, headers, query, path, clock), and [`parse`] sends
//! a body with the defaults.

use http::header::IntoHeaderName;
use http::{HeaderMap, HeaderValue};

use crate::ingest::integrations::settings::IntegrationSettings;
use crate::integration::Integration;
use crate::time::UnixMillis;

use super::{IngestRequest, IntegrationError, Parsed};

/// 2024-05-02T09:15:00Z: every test request's arrival, unless set.
pub const NOW: UnixMillis = UnixMillis(1_714_641_300_000);

/// A test request without its body; routing key `rk`, default settings, [`NOW`].
#[derive(Clone, Debug)]
pub struct Request {
    routing_key: String,
    settings: IntegrationSettings,
    headers: HeaderMap,
    query: Option<String>,
    path: String,
    now: UnixMillis,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            routing_key: "rk".into(),
            settings: IntegrationSettings::default(),
            headers: HeaderMap::new(),
            query: None,
            path: String::new(),
            now: NOW,
        }
    }
}

impl Request {
    pub fn routing_key(mut self, key: &str) -> Self {
        self.routing_key = key.into();
        self
    }

    pub fn settings(mut self, settings: &IntegrationSettings) -> Self {
        self.settings = settings.clone();
        self
    }

    pub fn header(mut self, name: impl IntoHeaderName, value: &str) -> Self {
        self.headers.insert(
            name,
            HeaderValue::from_str(value).expect("a valid header value"),
        );
        self
    }

    pub fn headers(mut self, headers: &HeaderMap) -> Self {
        self.headers = headers.clone();
        self
    }

    pub fn query(mut self, query: Option<&str>) -> Self {
        self.query = query.map(str::to_string);
        self
    }

    pub fn path(mut self, path: &str) -> Self {
        self.path = path.into();
        self
    }

    /// The request as a parser gets it.
    pub fn get(&self) -> IngestRequest<'_> {
        IngestRequest {
            routing_key: &self.routing_key,
            headers: &self.headers,
            query: self.query.as_deref(),
            path: &self.path,
            now: self.now,
            settings: &self.settings,
        }
    }

    /// Parses `body` as `kind` the way the gateway does (format, then common settings).
    pub fn parse(
        &self,
        kind: Integration,
        body: impl AsRef<[u8]>,
    ) -> Result<Parsed, IntegrationError> {
        super::parse(kind, &self.get(), &mut body.as_ref().to_vec())
    }
}

/// Parses `body` as `kind` with the default [`Request`].
pub fn parse(kind: Integration, body: impl AsRef<[u8]>) -> Result<Parsed, IntegrationError> {
    Request::default().parse(kind, body)
}
