//! Lookup tables for the event rules' `enrich` action: a CSV or JSON file read when the
//! configuration is loaded (and again at every reload), keyed by one of its columns.
//!
//! - **CSV** (any name but `*.json`): the first row names the columns; fields may be quoted
//!   (`"a, b"`, `""` for a quote); blank lines are skipped; every row has as many fields as
//!   the header.
//! - **JSON** (`*.json`): an array of objects (each has the key column), or an object whose
//!   members are the keys and whose values are objects. Values are strings, numbers or
//!   booleans (written as text); `null` leaves the column out of that row.
//!
//! A key found twice is refused, naming both rows; at most [`MAX_BYTES`] of file.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

/// The largest table file read.
pub const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Rows by key, each the other columns' non-empty values in column order.
#[derive(Clone, PartialEq, Eq)]
pub struct LookupTable {
    pub file: String,
    rows: HashMap<String, Vec<(String, String)>>,
    /// xxh3 of the file's bytes: a reload tells a changed file from the same one.
    digest: u64,
}

/// Shows the file, its size and digest, not its rows.
impl std::fmt::Debug for LookupTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LookupTable({:?}, {} rows, {:016x})",
            self.file,
            self.rows.len(),
            self.digest
        )
    }
}

impl LookupTable {
    /// The row of `key`: its other columns' values.
    pub fn get(&self, key: &str) -> Option<&[(String, String)]> {
        self.rows.get(key).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Reads `file`, keyed by column `key` (default: the first CSV column; JSON objects keyed
    /// by member name need none).
    pub fn load(file: &str, key: Option<&str>) -> Result<LookupTable, String> {
        let path = Path::new(file);
        let text = super::read_small_file(path, MAX_BYTES)?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let rows = match json {
            true => from_json(&text, key),
            false => from_csv(&text, key),
        }
        .map_err(|e| format!("{file:?}: {e}"))?;
        Ok(LookupTable {
            file: file.to_string(),
            rows,
            digest: xxhash_rust::xxh3::xxh3_64(text.as_bytes()),
        })
    }
}

type Rows = HashMap<String, Vec<(String, String)>>;

fn insert(
    rows: &mut Rows,
    key: String,
    row: Vec<(String, String)>,
    at: &str,
) -> Result<(), String> {
    if key.is_empty() {
        return Err(format!("{at}: the key is empty"));
    }
    if rows.insert(key.clone(), row).is_some() {
        return Err(format!("{at}: key {key:?} appears twice"));
    }
    Ok(())
}

fn from_csv(text: &str, key: Option<&str>) -> Result<Rows, String> {
    let mut lines = records(text)?
        .into_iter()
        .filter(|(_, r)| r.iter().any(|f| !f.is_empty()));
    let (_, header) = lines.next().ok_or("no header row")?;
    let key_at = match key {
        None => 0,
        Some(k) => header
            .iter()
            .position(|h| h == k)
            .ok_or_else(|| format!("no column {k:?} (columns: {})", header.join(", ")))?,
    };
    let mut rows = Rows::new();
    for (line, record) in lines {
        if record.len() != header.len() {
            return Err(format!(
                "line {line}: {} fields, the header has {}",
                record.len(),
                header.len()
            ));
        }
        let row = header
            .iter()
            .zip(&record)
            .enumerate()
            .filter(|(i, (_, v))| *i != key_at && !v.is_empty())
            .map(|(_, (h, v))| (h.clone(), v.clone()))
            .collect();
        insert(
            &mut rows,
            record[key_at].clone(),
            row,
            &format!("line {line}"),
        )?;
    }
    Ok(rows)
}

/// CSV records with the line each starts on (RFC 4180: quoted fields may hold commas, quotes
/// written twice and line breaks).
fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut out = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut line, mut start) = (false, 1, 1);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                line += usize::from(c == '\n');
                field.push(c);
            }
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                out.push((start, std::mem::take(&mut record)));
                line += 1;
                start = line;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {start}: a quoted field is not closed"));
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        out.push((start, record));
    }
    Ok(out)
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn from_json(text: &str, key: Option<&str>) -> Result<Rows, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let row_of = |obj: &serde_json::Map<String, Value>, skip: Option<&str>, at: &str| {
        obj.iter()
            .filter(|(k, v)| Some(k.as_str()) != skip && !v.is_null())
            .map(|(k, v)| match text_of(v) {
                Some(t) => Ok((k.clone(), t)),
                None => Err(format!("{at}.{k}: must be a string, number or boolean")),
            })
            .collect::<Result<Vec<_>, String>>()
    };
    let mut rows = Rows::new();
    match value {
        Value::Array(items) => {
            let key = key.ok_or("an array of rows needs `key`: the member that holds the key")?;
            for (i, item) in items.iter().enumerate() {
                let at = format!("[{i}]");
                let obj = item
                    .as_object()
                    .ok_or_else(|| format!("{at}: must be an object"))?;
                let k = obj
                    .get(key)
                    .and_then(text_of)
                    .ok_or_else(|| format!("{at}: no {key:?}"))?;
                insert(&mut rows, k, row_of(obj, Some(key), &at)?, &at)?;
            }
        }
        Value::Object(members) => {
            for (k, v) in &members {
                let at = format!("{k:?}");
                let obj = v
                    .as_object()
                    .ok_or_else(|| format!("{at}: must be an object"))?;
                insert(&mut rows, k.clone(), row_of(obj, None, &at)?, &at)?;
            }
        }
        _ => return Err("must be an array of objects or an object of objects".into()),
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("sluice-lookup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn csv_and_json_tables_read_the_same_rows() {
        let csv = write(
            "services.csv",
            "service,team,tier,runbook\r\ncheckout,payments,1,\"https://rb/checkout?a=1,b=2\"\n\nsearch,\"disco \"\"very\"\" ry\",2,\n",
        );
        let t = LookupTable::load(&csv, Some("service")).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.get("checkout").unwrap(),
            [
                ("team".to_string(), "payments".to_string()),
                ("tier".into(), "1".into()),
                ("runbook".into(), "https://rb/checkout?a=1,b=2".into())
            ]
        );
        assert_eq!(
            t.get("search").unwrap(),
            [
                ("team".to_string(), "disco \"very\" ry".to_string()),
                ("tier".into(), "2".into())
            ],
            "an empty field is left out"
        );
        let json = write(
            "services.json",
            r#"[{"service":"checkout","team":"payments","tier":1,"gone":null}]"#,
        );
        let t = LookupTable::load(&json, Some("service")).unwrap();
        assert_eq!(
            t.get("checkout").unwrap(),
            [
                ("team".to_string(), "payments".to_string()),
                ("tier".into(), "1".into())
            ]
        );
        let by_key = write("by-key.json", r#"{"checkout":{"team":"payments"}}"#);
        assert_eq!(LookupTable::load(&by_key, None).unwrap().len(), 1);
    }

    #[test]
    fn bad_tables_are_refused_naming_the_place() {
        let cases = [
            (
                "a.csv",
                "service,team\ncheckout\n",
                Some("service"),
                "line 2: 1 fields, the header has 2",
            ),
            (
                "b.csv",
                "service,team\nx,1\nx,2\n",
                None,
                "line 3: key \"x\" appears twice",
            ),
            (
                "c.csv",
                "service,team\n\"x,1\n",
                None,
                "line 2: a quoted field is not closed",
            ),
            (
                "d.csv",
                "service,team\n",
                Some("owner"),
                "no column \"owner\" (columns: service, team)",
            ),
            (
                "e.json",
                "[{\"team\":\"x\"}]",
                Some("service"),
                "[0]: no \"service\"",
            ),
            (
                "f.json",
                "{\"x\":{\"team\":[1]}}",
                None,
                "\"x\".team: must be a string",
            ),
            ("g.json", "[1]", None, "needs `key`"),
        ];
        for (name, text, key, want) in cases {
            let err = LookupTable::load(&write(name, text), key).unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
        let err = LookupTable::load("/nonexistent/t.csv", None).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        let err = LookupTable::load("/dev/zero", None).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
