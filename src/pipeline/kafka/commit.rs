//! Committing: every `commit_interval`, what was produced is delivered (incident messages and
//! routed events), then the offsets of the records that produced it are committed, with at most
//! one partition's snapshot whose header offset goes in the same commit as the events offset it
//! covers. Undelivered work is never committed past: every partition is processed again from
//! its last commit instead.

use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::metrics as m;

use super::produce::DELIVERY_TIMEOUT;
use super::{state, Run};

impl Run {
    /// Delivers everything produced so far, then commits what produced it (as one transaction
    /// with it, in transactions mode).
    pub(super) async fn commit(&mut self) {
        self.commit_then(false).await;
    }

    /// [`Run::commit`], waiting for the offset commit when `wait` (the last one, before the
    /// process exits and takes an asynchronous commit with it).
    pub(super) async fn commit_then(&mut self, wait: bool) {
        if self.fence(&mut Vec::new()) || self.owned.is_empty() {
            return;
        }
        let sink = Arc::clone(&self.sink);
        let undelivered = tokio::task::spawn_blocking(move || sink.flush(DELIVERY_TIMEOUT))
            .await
            .unwrap_or(-1);
        let routed_delivered = self.forward.settle().await;
        let messages_delivered = match &self.txn {
            Some(txn) => txn.sink.settle().await,
            None => true,
        };
        // Waiting for deliveries (up to the delivery timeout when the broker is away) is no pause.
        self.fence.mark_alive();
        let failures = self.sink.failures();
        if failures > self.failures_seen || !routed_delivered || !messages_delivered {
            // Messages (or routed events) of records not yet committed were lost: make them
            // again by processing those records again, from the last commit (their other
            // messages repeat, identical; the routed events' partition skips their repeats).
            tracing::warn!(
                failed = failures - self.failures_seen,
                routed_delivered,
                messages_delivered,
                "messages not delivered: every partition is processed again from its last commit"
            );
            self.failures_seen = failures;
            self.abort_transaction("a message or routed event was not delivered");
            self.process_again();
            return;
        }
        if undelivered != 0 {
            tracing::warn!(undelivered, "not committing: messages still undelivered");
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, owned) in &self.owned {
            let _ = tpl.add_partition_offset(&self.topic, p, Offset::Offset(owned.next));
        }
        let snapshot = self.snapshot_one().await;
        self.fence.mark_alive();
        if let Some((p, _, at)) = &snapshot {
            // The snapshot's header offset goes in the same commit as the events offset it
            // covers.
            let _ = tpl.add_partition_offset(self.state.writer.topic(), *p, Offset::Offset(*at));
        }
        if self.fence(&mut Vec::new()) {
            return;
        }
        let committed = match (&self.txn, &snapshot) {
            (Some(txn), _) => match self.consumer.group_metadata() {
                Some(group) => tokio::task::block_in_place(|| txn.commit(&tpl, &group)),
                None => Err(rdkafka::error::KafkaError::NoMessageReceived),
            },
            // Without a snapshot a lost commit costs only repeats: not waited for, but at exit.
            (None, None) if !wait => self.consumer.commit(&tpl, CommitMode::Async),
            (None, None) => {
                tokio::task::block_in_place(|| self.consumer.commit(&tpl, CommitMode::Sync))
            }
            (None, Some(_)) => {
                tokio::task::block_in_place(|| self.consumer.commit(&tpl, CommitMode::Sync))
            }
        };
        if committed.is_ok() {
            // Everything re-routed from below these offsets was delivered before them.
            for e in tpl.elements_for_topic(&self.topic) {
                if let (Some(owned), Offset::Offset(at)) =
                    (self.owned.get_mut(&e.partition()), e.offset())
                {
                    owned.floor = at;
                }
            }
        }
        match (committed, snapshot) {
            (Ok(()), Some((p, header, at))) => {
                m::counter(m::SNAPSHOTS_WRITTEN).increment(1);
                m::counter(m::SNAPSHOT_BYTES).increment(header.bytes);
                if let Some(owned) = self.owned.get_mut(&p) {
                    if let Some((old, _)) = owned.snapshot.replace((header, at)) {
                        self.state.writer.forget(p, &old);
                    }
                }
            }
            (Ok(()), None) => {}
            (Err(e), snapshot) => {
                if snapshot.is_some() {
                    m::counter(m::SNAPSHOT_FAILURES).increment(1);
                }
                tracing::warn!(error = %e, snapshot = snapshot.is_some(), "offset commit failed");
                if self.txn.is_some() {
                    // The transaction was aborted: what it held is made again.
                    self.process_again();
                }
            }
        }
    }

    /// Drops every partition's state, to restore each from its last commit and process its
    /// records again from there.
    pub(super) fn process_again(&mut self) {
        self.owned.clear();
        m::gauge(m::PARTITIONS_OWNED).set(0.0);
        self.retry_restore_soon();
    }

    /// Transactions mode: aborts the open transaction (nothing it holds is ever seen by
    /// `read_committed` consumers). Blocking.
    pub(super) fn abort_transaction(&self, why: &str) {
        if let Some(txn) = &self.txn {
            tokio::task::block_in_place(|| txn.abort(why));
        }
    }

    /// Writes the snapshot of the partition waiting longest for one, if any is due: one that
    /// took records since its last snapshot, which is at least `snapshot_interval` old.
    /// Returns its partition, header and the header's offset in the state topic.
    async fn snapshot_one(&mut self) -> Option<(i32, state::Header, i64)> {
        let every = self.state.every;
        let (&p, owned) = self
            .owned
            .iter_mut()
            .filter(|(_, o)| o.since_snapshot > 0 && o.snapshot_tried.elapsed() >= every)
            .max_by_key(|(_, o)| o.snapshot_tried.elapsed())?;
        owned.snapshot_tried = Instant::now();
        let since = std::mem::take(&mut owned.since_snapshot);
        self.state.made += 1;
        let header = state::Header {
            v: state::VERSION,
            partition: p,
            snapshot: format!(
                "{}.{}.{}",
                owned.epoch, self.state.writer_id, self.state.made
            ),
            epoch: owned.epoch,
            events_offset: owned.next,
            time: owned.timed.time(),
            chunks: 0,
            first_chunk: 0,
            bytes: 0,
            rules: self.rules.to_string(),
        };
        let bytes = owned.timed.snapshot();
        match self.state.writer.write(p, header, &bytes).await {
            Ok((header, at)) => Some((p, header, at)),
            Err(e) => {
                if let Some(owned) = self.owned.get_mut(&p) {
                    owned.since_snapshot += since;
                }
                m::counter(m::SNAPSHOT_FAILURES).increment(1);
                tracing::warn!(error = %e, partition = p, "snapshot not written");
                None
            }
        }
    }
}
