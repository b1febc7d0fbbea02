//! A lane: one receiver's deliveries from one partition, in offset order (so an incident's
//! messages reach each receiver in `seq` order), one message at a time. Each receiver has its
//! own lane per partition, so a receiver that fails or stalls holds back only its own lane;
//! the partition's offset is committed up to the slowest lane ([`super::group`]).
//!
//! Retries: a connection error, a timeout, a 5xx or a 429 is tried again after `retry_initial`,
//! doubled after each failure up to `retry_max` (a 429's `Retry-After` seconds, when given,
//! instead); any other answer outside 2xx (3xx included: no redirect is followed) is a refusal,
//! dead-lettered at once and logged with its status and the first 200 bytes of the answer. A
//! message still failing after `max_retries` retries, or whose next try would fall past
//! `give_up_after` from its first, is dead-lettered too.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use metrics::{Counter, Histogram};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::dead_letter::Failure;
use super::http::{Answer, Client, SendError};
use super::message::{select, Selection};
use super::pagerduty::Triggered;
use super::render::{render, Rendered};
use super::{Item, Shared};
use crate::config::ReceiverConfig;
use crate::metrics as m;

/// What to do after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again, after the server's wait when it gave one.
    Retry(Option<Duration>),
    /// Never try again.
    Refused,
}

/// The verdict on an attempt's answer (or its failure).
pub fn verdict(result: &Result<Answer, SendError>) -> Verdict {
    match result {
        Ok(a) if a.status.is_success() => Verdict::Delivered,
        Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS => Verdict::Retry(a.retry_after),
        Ok(a) if a.status.is_server_error() => Verdict::Retry(None),
        Ok(_) => Verdict::Refused,
        Err(SendError::NoRoots(_)) => Verdict::Refused,
        Err(_) => Verdict::Retry(None),
    }
}

/// The waits between attempts: `initial`, doubled each time up to `max`.
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { next: initial, max }
    }

    /// The next wait: the server's when it gave one, else the backoff's (which doubles either
    /// way).
    pub fn wait(&mut self, server: Option<Duration>) -> Duration {
        let own = self.next;
        self.next = (self.next * 2).min(self.max);
        server.unwrap_or(own)
    }
}

/// The per-receiver counters and histogram, looked up once.
#[derive(Clone)]
pub struct ReceiverMetrics {
    delivered: Counter,
    retried: Counter,
    dead_lettered: Counter,
    skipped_by_matchers: Counter,
    skipped_by_type: Counter,
    duration: Histogram,
}

impl ReceiverMetrics {
    /// `receiver` is the configured name: a fixed, operator-chosen set read at start.
    pub fn new(receiver: &ReceiverConfig) -> ReceiverMetrics {
        let name = receiver.name.clone();
        let kind = receiver.kind.as_str();
        let outcome = |o: &'static str| metrics::counter!(m::DELIVERIES, "receiver" => name.clone(), "kind" => kind, "outcome" => o);
        ReceiverMetrics {
            delivered: outcome("delivered"),
            retried: outcome("retried"),
            dead_lettered: outcome("dead_lettered"),
            skipped_by_matchers: outcome("skipped_by_matchers"),
            skipped_by_type: outcome("skipped_by_type"),
            duration: metrics::histogram!(m::DELIVERY_DURATION, "receiver" => name.clone(), "kind" => kind),
        }
    }
}

/// One lane's task state.
pub struct Lane {
    pub receiver: Arc<ReceiverConfig>,
    pub metrics: ReceiverMetrics,
    pub client: Client,
    pub shared: Arc<Shared>,
    /// The offset of the last message this lane handled (delivered, skipped or dead-lettered).
    pub done: Arc<AtomicI64>,
    pub triggered: Triggered,
}

/// How a selected message ended.
enum Outcome {
    Delivered,
    GaveUp { attempts: u32, error: String },
}

impl Lane {
    /// Handles each message sent to the lane, in order, until the channel closes.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Arc<Item>>) {
        while let Some(item) = rx.recv().await {
            self.handle(&item).await;
            self.done.store(item.offset, Ordering::Release);
        }
    }

    async fn handle(&mut self, item: &Item) {
        let Some(incident) = &item.incident else {
            return;
        };
        match select(&self.receiver, incident) {
            Selection::Deliver => {}
            Selection::SkipType => return self.metrics.skipped_by_type.increment(1),
            Selection::SkipMatchers => return self.metrics.skipped_by_matchers.increment(1),
        }
        let Some(request) = render(&self.receiver, incident, &item.payload, &self.triggered) else {
            return self.metrics.skipped_by_type.increment(1);
        };
        match self.deliver(&request, item).await {
            Outcome::Delivered => {
                self.metrics.delivered.increment(1);
                self.triggered.delivered(incident);
            }
            Outcome::GaveUp { attempts, error } => {
                let failure = Failure {
                    receiver: &self.receiver,
                    attempts,
                    error: &error,
                };
                self.shared.dead_letters.write(item, &failure).await;
                self.metrics.dead_lettered.increment(1);
                tracing::warn!(
                    receiver = self.receiver.name,
                    incident_id = incident.incident_id,
                    seq = incident.seq,
                    attempts,
                    error,
                    "message dead-lettered"
                );
            }
        }
    }

    async fn deliver(&mut self, request: &Rendered, item: &Item) -> Outcome {
        let r = Arc::clone(&self.receiver);
        let first = Instant::now();
        let mut backoff = Backoff::new(r.retry_initial, r.retry_max);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let started = Instant::now();
            let result = self
                .client
                .post(&request.headers, request.body.clone(), r.timeout)
                .await;
            self.metrics
                .duration
                .record(started.elapsed().as_secs_f64());
            let error = match &result {
                Ok(a) => format!("status {}: {}", a.status.as_u16(), a.start),
                Err(e) => e.to_string(),
            };
            let server_wait = match verdict(&result) {
                Verdict::Delivered => return Outcome::Delivered,
                Verdict::Refused => {
                    tracing::warn!(
                        receiver = r.name,
                        partition = item.partition,
                        offset = item.offset,
                        error,
                        "receiver refused the message; it is not tried again"
                    );
                    return Outcome::GaveUp { attempts, error };
                }
                Verdict::Retry(server_wait) => server_wait,
            };
            let wait = backoff.wait(server_wait);
            let out_of_retries = r.max_retries.is_some_and(|max| attempts > max);
            if out_of_retries || first.elapsed() + wait > r.give_up_after {
                return Outcome::GaveUp { attempts, error };
            }
            self.metrics.retried.increment(1);
            if attempts == 1 {
                tracing::warn!(
                    receiver = r.name,
                    partition = item.partition,
                    offset = item.offset,
                    error,
                    "delivery failed; retrying"
                );
            } else {
                tracing::debug!(
                    receiver = r.name,
                    attempts,
                    error,
                    "delivery failed again; retrying"
                );
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<u64>) -> Result<Answer, SendError> {
        Ok(Answer {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: retry_after.map(Duration::from_secs),
            start: String::new(),
        })
    }

    #[test]
    fn retry_on_5xx_429_and_transport_errors_refuse_other_answers() {
        assert_eq!(verdict(&answer(202, None)), Verdict::Delivered);
        assert_eq!(verdict(&answer(500, None)), Verdict::Retry(None));
        assert_eq!(verdict(&answer(503, Some(9))), Verdict::Retry(None));
        assert_eq!(
            verdict(&answer(429, Some(1))),
            Verdict::Retry(Some(Duration::from_secs(1)))
        );
        for refused in [400, 401, 403, 404, 410, 413, 301] {
            assert_eq!(
                verdict(&answer(refused, None)),
                Verdict::Refused,
                "{refused}"
            );
        }
        let timeout = Err(SendError::TimedOut(Duration::from_secs(1)));
        assert_eq!(verdict(&timeout), Verdict::Retry(None));
        let refused = Err(SendError::Connect(
            std::io::ErrorKind::ConnectionRefused.into(),
        ));
        assert_eq!(verdict(&refused), Verdict::Retry(None));
    }

    #[test]
    fn backoff_doubles_up_to_its_max_and_takes_the_servers_wait() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(1), s(5));
        let waits: Vec<Duration> = (0..5).map(|_| b.wait(None)).collect();
        assert_eq!(waits, [s(1), s(2), s(4), s(5), s(5)]);
        let mut b = Backoff::new(s(1), s(60));
        assert_eq!(b.wait(Some(s(30))), s(30));
        assert_eq!(b.wait(None), s(2), "the backoff went on doubling");
    }
}
