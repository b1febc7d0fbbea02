//! The answer to an ingest request the pipeline refused: 503 with `Retry-After` when a queue
//! is full, the topic did not take the events or this instance runs no ingest; a rate limit's
//! answer as the integration's sender expects it (`integrations::throttled`); 413 for a batch
//! larger than a burst.

use http::{Response, StatusCode};

use crate::ingest::integrations;
use crate::ingest::response::{self, Body};
use crate::integration::Integration;
use crate::pipeline::Refused;

/// The answer to a `kind` request the pipeline refused.
pub(super) fn refusal(kind: Integration, refused: Refused) -> Response<Body> {
    match refused {
        Refused::Overloaded => {
            response::unavailable("sluice is at capacity; retry after the given seconds")
        }
        Refused::OverShare => response::unavailable(
            "this routing key holds more than its share of sluice's queue; retry after the \
             given seconds",
        ),
        Refused::RateLimited { retry_after_secs } => integrations::throttled(
            kind,
            retry_after_secs,
            "this routing key is over its rate limit (limits.per_routing_key); retry after the \
             given seconds",
        ),
        Refused::GlobalRateLimited { retry_after_secs } => integrations::throttled(
            kind,
            retry_after_secs,
            "sluice is over its rate limit (limits.global); retry after the given seconds",
        ),
        Refused::OverBurst { burst, global } => {
            let key = if global {
                "limits.global_burst"
            } else {
                "limits.burst"
            };
            response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too many events",
                "More events in one request than the rate limit lets through at once",
                &[format!(
                    "a request may carry at most {burst} events ({key}); split it"
                )],
            )
        }
        Refused::Unavailable => response::unavailable(
            "the events topic did not take the events; retry after the given seconds",
        ),
        Refused::NoIngest => {
            response::unavailable("this sluice instance does not run ingest; send to another")
        }
    }
}
