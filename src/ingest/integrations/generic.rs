//! The generic mapper: any JSON webhook mapped to events in the config alone, without code.
//! Each named mapper is a table `[integrations.generic.<name>]` whose keys say where each event
//! field is, as JSON pointers (RFC 6901: `/alert/id`, `/tags/0`, `~1` for `/`, `~0` for `~`,
//! `""` for the whole body). Served at `POST /integrations/generic/<routing_key>`; the request
//! names its mapper with `?mapper=<name>` or an `X-Sluice-Mapper` header, which may be left
//! out when exactly one mapper is configured. One event per request, or per item of a batch
//! (`items`).
//!
//! ```toml
//! [integrations.generic.shop_monitor]
//! dedup_key = "/check/id"                # the sender's id, if it has one
//! dedup_key_template = "{/host}/{/check/name}"  # else (or when the id is absent): a template
//! summary = "/check/output"
//! source = "/host"
//! component = "/service"
//! group = "/cluster"
//! class = "/check/name"
//! severity = "/check/level"
//! severity_map = { P1 = "critical", P2 = "error", P3 = "warning" }
//! timestamp = "/check/changed_at"        # RFC 3339 / ISO 8601 or epoch seconds / ms
//! details = "/check"                     # any JSON; "" for the whole body
//! labels = { team = "/owner/team", env = "/env" }
//! action_pointer = "/check/state"
//! action_map = { failing = "trigger", acked = "acknowledge", passing = "resolve" }
//! resolve_when = { pointer = "/check/healthy", equals = ["true"] }
//! links = { Dashboard = "/check/dashboard_url", Runbook = "/check/runbook" }
//! # items = "/alerts"                   # a batch: every other pointer is read in each item
//! ```
//!
//! - Every key is optional except one of `dedup_key` / `dedup_key_template`; unknown keys are
//!   refused by name at config load, and every pointer and template is checked then.
//! - **Values**: every field but `items`, `details`, `timestamp` and `resolve_when` may also be
//!   a template (text that is not `""` nor `/`-led): `{/pointer}` placeholders, `{/a|/b}` for
//!   the first present, none for a constant; `action` is `action_pointer`'s newer name; `"*"` in
//!   `action_map` / `severity_map` is every other value; `default_severity`; `answer` (the
//!   success status the sender expects, default `202`); `body = "form"`
//!   (with `form_field`) or `"query"` (see `docs/integration-catalog.md`, whose definitions are
//!   these tables plus metadata; `definitions_dir = "<folder>"` loads a folder of them as
//!   mappers named by their files).
//! - **Dedup key**: the value at `dedup_key` (a string, number or boolean, as text); when it
//!   is absent or not configured, `dedup_key_template` with each `{/pointer}` replaced by its
//!   value (every placeholder must be present). A key over 255 characters becomes 32 hex digits
//!   of xxh3-128 over it.
//! - **Action**: `resolve` when the value at `resolve_when.pointer` is one of
//!   `resolve_when.equals` (compared as text: `1`, `true`, `"ok"`); else the value at
//!   `action_pointer` looked up in `action_map` (exactly, then ignoring case); a value the map
//!   does not have is refused, naming it; no `action_pointer`, or no value there, is a trigger.
//! - **Severity**: the value at `severity` looked up in `severity_map` (exactly, then ignoring
//!   case), else read as a sluice severity (`critical`, `error`, `warning`, `info`), else
//!   `default_severity`.
//! - **Fields**: `summary` (else the dedup key), `source`, `component`, `group`, `class` take
//!   text values; `labels` maps label names to pointers (absent values are skipped);
//!   `details` keeps any JSON; `timestamp` is read leniently. A value of the wrong type (an
//!   object where text is wanted) is refused naming the pointer and the field.
//! - **Links**: `links` maps each link's text to the pointer of its `href` (absent or blank
//!   values are skipped; the status page shows only http(s) links as links).
//! - **Batches**: with `items`, the value there must be an array; each item is one event,
//!   mapped by the other pointers relative to the item. An item that does not map is refused
//!   alone (`items[i]`, with its problems) and the others are taken; a request whose items are
//!   all refused is a `400`.
//! - Events say `integration: generic`; the mapper's name is not part of the dedup key, so
//!   give each mapper its own routing keys where their keys could collide.
//! - **Answer**: `202` and the generic body.

use crate::config::{Problems, Unknown};
use crate::integration::Integration;

use super::{Format, IngestRequest, IntegrationError, IntegrationSettings, Parsed};

mod apply;
mod mapper;
mod pointer;

pub use mapper::{build, BodyKind, Mapper, Mappers};
pub use pointer::{Pointer, Source, Template};

const KIND: Integration = Integration::Generic;
/// The query parameter and header that name a request's mapper.
pub const MAPPER_PARAM: &str = "mapper";
pub const MAPPER_HEADER: &str = "x-sluice-mapper";
/// `[integrations.generic] definitions_dir`: the folder of the user's definitions.
pub const DEFINITIONS_DIR: &str = "definitions_dir";

/// The generic mapper in the integrations registry.
pub struct Mapped;

/// The mapper a request names (`/integrations/generic/<name>/<key>`, `?mapper=`,
/// `X-Sluice-Mapper`), or the only one configured.
fn select<'m>(req: &IngestRequest<'_>, mappers: &'m Mappers) -> Result<&'m Mapper, String> {
    let from_path = (!req.path.is_empty()).then(|| req.path.to_string());
    let from_query = from_path.or_else(|| super::fields::query_param(req.query, MAPPER_PARAM));
    let named = from_query.or_else(|| {
        req.headers
            .get(MAPPER_HEADER)
            .map(|v| v.to_str().unwrap_or_default().trim().to_string())
    });
    match (named, mappers.0.as_slice()) {
        (_, []) => Err("no mapper is configured: add one as [integrations.generic.<name>]".into()),
        (Some(name), _) => mappers
            .get(&name)
            .ok_or_else(|| format!("no mapper {name:?} (mappers: {})", mappers.names())),
        (None, [only]) => Ok(only),
        (None, _) => Err(format!(
            "name the mapper with ?mapper=<name> or an X-Sluice-Mapper header (mappers: {})",
            mappers.names()
        )),
    }
}

impl Format for Mapped {
    /// Every table under `[integrations.generic]` is a mapper; its problems are reported under
    /// `integrations.generic.<name>.<key>`.
    fn own_settings(
        own: &mut Unknown,
        at: &str,
        settings: &mut IntegrationSettings,
        p: &mut Problems,
    ) {
        let names: Vec<String> = own
            .iter()
            .filter(|(_, v)| v.is_table())
            .map(|(k, _)| k.clone())
            .collect();
        let mut mappers = Vec::new();
        for name in names {
            let table = own.remove(&name).expect("listed above");
            match build(&name, table) {
                Ok(m) => mappers.push(m),
                Err(problems) => {
                    for (key, msg) in problems {
                        let key = if key.is_empty() {
                            format!("{at}.{name}")
                        } else {
                            format!("{at}.{name}.{key}")
                        };
                        p.add(&key, msg);
                    }
                }
            }
        }
        settings.mappers = Mappers(mappers);
    }

    fn parse(req: &IngestRequest<'_>, body: &mut [u8]) -> Result<Parsed, IntegrationError> {
        let mapper = select(req, &req.settings.mappers).map_err(|p| IntegrationError::Invalid {
            kind: KIND,
            problems: vec![p],
        })?;
        mapper.map(KIND, req, body)
    }
}

#[cfg(test)]
mod tests;
