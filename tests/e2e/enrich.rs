//! Enrichment through the real binary: an event rule's `enrich` adds the columns of a CSV
//! lookup table (keyed by the event's source) as labels, and the incident message carries
//! them; the table changed on disk is read again at `POST /-/reload`, and a table that no
//! longer reads keeps the running one and says why, naming the file.

use std::time::{Duration, Instant};

use serde_json::Value;
use sluice::send::HttpClient;

use crate::harness::{post, reload, Sluice, WAIT};

fn config(table: &str) -> String {
    format!(
        r#"
[[correlate.rules]]
group_by = ["source"]
group_wait = "0s"
pause_transient = "0s"

[[event_rules]]
name = "owners"
enrich = {{ file = "{table}", field = "source", key = "host" }}
"#
    )
}

/// The labels of the first alert of `source`'s open incident, once it is in the view.
async fn labels_of(url: &str, source: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut client = HttpClient::connect(url).await.unwrap();
    loop {
        let page = client
            .get("/api/v1/incidents?routing_key=shop")
            .await
            .unwrap()
            .json();
        for id in page["incidents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["incident_id"].as_str())
        {
            let one = client
                .get(&format!("/api/v1/incidents/{id}"))
                .await
                .unwrap()
                .json();
            let alert = &one["incident"]["alerts"][0];
            if alert["source"] == source {
                return alert["labels"].clone();
            }
        }
        assert!(Instant::now() < deadline, "no incident of {source}: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn trigger(url: &str, dedup: &str, source: &str) {
    let body = sluice::send::pd_event("shop", "trigger", dedup, source, "critical", "down");
    assert_eq!(post(url, "/v2/enqueue", &[], body).await.0, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrich_adds_a_lookup_tables_columns_and_reads_it_again_at_a_reload() {
    let dir = crate::harness::TempDir::new("enrich");
    let table = dir.0.join("hosts.csv");
    std::fs::write(
        &table,
        "host,team,runbook_url\ndb-1,dba,https://rb.example/db\nweb-1,web,\n",
    )
    .unwrap();
    let sluice = Sluice::start("enrich", "embedded", &config(table.to_str().unwrap()));
    trigger(&sluice.url, "a", "db-1").await;
    let labels = labels_of(&sluice.url, "db-1").await;
    assert_eq!(labels["team"], "dba", "{labels}");
    assert_eq!(labels["runbook_url"], "https://rb.example/db");
    trigger(&sluice.url, "b", "cache-9").await;
    let labels = labels_of(&sluice.url, "cache-9").await;
    assert!(labels.is_null(), "no row, no label: {labels}");

    // The table changes; a reload reads it again.
    std::fs::write(&table, "host,team\ndb-2,storage\n").unwrap();
    let mut client = HttpClient::connect(&sluice.url).await.unwrap();
    reload(&mut client).await;
    trigger(&sluice.url, "c", "db-2").await;
    assert_eq!(labels_of(&sluice.url, "db-2").await["team"], "storage");

    // A table that no longer reads: the reload is refused naming the file and the line.
    std::fs::write(&table, "host,team\ndb-3\n").unwrap();
    let reply = client.post("/-/reload", Vec::new()).await.unwrap();
    assert_eq!(reply.status, 400);
    let answer: Value = reply.json();
    let error = answer["errors"][0].as_str().unwrap();
    assert!(
        error.contains("event_rules[0].enrich.file") && error.contains("line 2"),
        "{answer}"
    );
    trigger(&sluice.url, "d", "db-2").await;
}
