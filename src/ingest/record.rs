//! `sluice serve --record FILE.jsonl`: writes every ingest request (and silences API call) in
//! the recording format (`crate::recording`) that `sluice replay` reads, so operators can tune
//! rules on their own traffic. Lines go through a bounded queue to a writer thread; when it is
//! full a line is dropped and counted, never blocking ingest.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;

use http::HeaderMap;
use metrics::Counter;

use crate::clock::Clock;
use crate::metrics as m;
use crate::recording::Recorded;

/// Lines queued for the writer before new ones are dropped.
const QUEUE: usize = 16_384;

pub struct Recorder {
    /// Held while the time is read and the line queued, so lines are in arrival order.
    tx: Mutex<SyncSender<String>>,
    clock: Clock,
    dropped: Counter,
}

impl Recorder {
    /// Opens (appends to) `path` and starts the writer thread.
    pub fn open(path: &Path, clock: Clock) -> std::io::Result<Recorder> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("sluice-recorder".into())
            .spawn(move || write_lines(rx, std::io::BufWriter::new(file)))?;
        Ok(Recorder {
            tx: Mutex::new(tx),
            clock,
            dropped: m::counter(m::RECORD_DROPPED),
        })
    }

    pub fn record(&self, path: &str, headers: &HeaderMap, body: &[u8]) {
        let tx = self.tx.lock().expect("recorder lock");
        let line = Recorded::new(self.clock.now().to_string(), path, headers, body).to_line();
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(line) {
            self.dropped.increment(1);
        }
    }
}

fn write_lines(rx: Receiver<String>, mut out: impl Write) {
    while let Ok(line) = rx.recv() {
        let mut ok = writeln!(out, "{line}").is_ok();
        while let Ok(more) = rx.try_recv() {
            ok &= writeln!(out, "{more}").is_ok();
        }
        ok &= out.flush().is_ok();
        if !ok {
            tracing::error!("cannot write the request recording; recording stops");
            return;
        }
    }
}
