//! The embedded broker (`brokers = "embedded"`): librdkafka's in-process mock cluster on a
//! loopback port, so a newcomer can try sluice in minutes with the real producer path, keys and
//! headers, and `sluice tail` can attach from another process. It keeps everything in memory:
//! not durable, not for production, and said so loudly at start-up.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

use crate::config::KafkaConfig;

/// The running mock cluster; it lives on its own thread until this handle is dropped.
pub struct EmbeddedBroker {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a one-broker mock cluster and creates sluice's topics on it, and `more` topics
    /// (name, partitions): the events and state topics of Kafka mode.
    pub fn start(config: &KafkaConfig, more: &[(&str, i32)]) -> Result<Self, String> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let mut topics = vec![
            (config.topic.clone(), config.partitions),
            (config.changes_topic.clone(), config.partitions),
        ];
        topics.extend(config.commands_topic.iter().map(|t| (t.clone(), 1)));
        topics.extend(more.iter().map(|&(t, n)| (t.to_string(), n)));
        let thread = std::thread::Builder::new()
            .name("sluice-embedded-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ =
                            ready_tx.send(Err(format!("cannot start the embedded broker: {e}")));
                        return;
                    }
                };
                for (t, partitions) in &topics {
                    if let Err(e) = cluster.create_topic(t, *partitions, 1) {
                        let _ = ready_tx.send(Err(format!(
                            "cannot create topic {t} on the embedded broker: {e}"
                        )));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Serve until the handle is dropped.
                let _ = stop_rx.recv();
            })
            .map_err(|e| format!("cannot start the embedded broker thread: {e}"))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| "the embedded broker thread exited early".to_string())??;
        Ok(EmbeddedBroker {
            bootstrap,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:<port>`, for producers and for `sluice tail --brokers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
