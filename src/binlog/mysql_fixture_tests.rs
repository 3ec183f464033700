//! Binlog files written by real MySQL servers (5.7.23, 5.7.40, 8.0.22 to 8.0.40, 8.2.0, 9.0.1,
//! 9.6.0), run through the streamer's own event handling ([`super::stream::Replay`]: the format
//! description, table maps, rows events v2, GTIDs, transaction payloads, partial JSON updates) and
//! its row decoding, with no server. No MySQL server can run where wraith is tested; these files
//! are the only MySQL-written bytes it sees.
//!
//! Every binlog file of `fixtures/mysql/` is read here (the folders, their licences and where each
//! file comes from: `fixtures/mysql/SOURCES.md`). For each file, every rows event decodes, or
//! fails with the error wraith gives on purpose (compressed transactions, partial JSON, a row
//! image that is not full, a VECTOR column), whose message is checked. Every decoded value is
//! compared, exactly, with the independent decodings that exist:
//!
//! - the `mysqlbinlog -vvv` text of the same file: MySQL's own for kingbus and mysql-cdc-rs, and
//!   MariaDB 10.11's (`*.mariadb-mysqlbinlog.txt`, made for this project) for the files whose
//!   source has none and which it can read (no JSON, no compressed or tagged events);
//! - the SQL that wrote the rows, where the source has it (MySqlCdc, mysql-cdc-rs, the
//!   rows-query events of mysql-bin.000057) or tests for it (rust_mysql_common's own
//!   expectations for json-opaque and the tagged GTID);
//! - `mysql_common`'s row decoder, a separate implementation that wraith does not use, for every
//!   value of every file, within its documented losses.
//!
//! The column definitions wraith would read from `information_schema` are written in each
//! folder's `columns.tsv`, from the CREATE TABLE the file logs (or its table maps, where it logs
//! none); where a table map carries optional metadata, the definitions are checked against it.

use std::collections::HashMap;

use mysql_async::binlog::events::{Event, EventData, OptionalMetaExtractor, TableMapEvent};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;

use super::json::{JsonValue, Opaque};
use super::stream::Replay;
use super::test_files::{columns_tsv, payload_events, read_events};
use super::{
    BinlogPosition, Cell, ColumnInfo, DecodeError, RowEvent, RowKind, StreamConfig, StreamError,
    StreamItem, TableDecoder, WatchedTable,
};

/// One binlog file of `fixtures/mysql/<source>/`, with its `mysqlbinlog -vvv` text if it has one.
#[derive(Clone, Copy)]
struct Fixture {
    source: &'static str,
    name: &'static str,
    bytes: &'static [u8],
    text: Option<&'static [u8]>,
}

macro_rules! fixture {
    ($source:literal, $name:literal) => {
        Fixture {
            source: $source,
            name: $name,
            bytes: include_bytes!(concat!("fixtures/mysql/", $source, "/", $name)),
            text: None,
        }
    };
    ($source:literal, $name:literal, $text:literal) => {
        Fixture {
            text: Some(include_bytes!(concat!(
                "fixtures/mysql/",
                $source,
                "/",
                $text
            ))),
            ..fixture!($source, $name)
        }
    };
}

/// Every binlog file of `fixtures/mysql/`.
const ALL: [Fixture; 22] = [
    fixture!("kingbus", "mysql_bin.000011", "11.txt"),
    fixture!("kingbus", "mysql_bin.000012", "12.txt"),
    fixture!("kingbus", "mysql_bin.000013", "13.txt"),
    fixture!("mysql-cdc-rs", "8.0_02_query_binlog.000001"),
    fixture!(
        "mysql-cdc-rs",
        "8.0_02_query_bigger_binlog.000733",
        "8.0_02_query_bigger_binlog.000733.mariadb-mysqlbinlog.txt"
    ),
    fixture!(
        "mysql-cdc-rs",
        "8.0_19_30_Table_map_event_Write_rows_log_event_binlog.000018",
        "8.0_19_30_Table_map_event_Write_rows_log_event_dump.txt"
    ),
    fixture!(
        "mysql-cdc-rs",
        "8.0_31_update_rows_v2_binlog.000001",
        "8.0_31_update_rows_v2_dump.txt"
    ),
    fixture!(
        "mysql-cdc-rs",
        "8.0_32_delete_rows_v2_binlog.000001",
        "8.0_32_delete_rows_v2_dump.txt"
    ),
    fixture!("MySqlCdc", "mysql-bin.000001"),
    fixture!(
        "mysql-binlog-connector-rust",
        "mysql-bin.000080",
        "mysql-bin.000080.mariadb-mysqlbinlog.txt"
    ),
    fixture!("mysql-binlog-connector-rust", "mysql-bin.000057"),
    fixture!(
        "rust_mysql_common",
        "binlog-invisible-columns.000001",
        "binlog-invisible-columns.000001.mariadb-mysqlbinlog.txt"
    ),
    fixture!(
        "rust_mysql_common",
        "binlog_transaction_previous_GTID_no_tag.000001"
    ),
    fixture!(
        "rust_mysql_common",
        "binlog_transaction_with_GTID_TAG.000001"
    ),
    fixture!("rust_mysql_common", "json-opaque.binlog"),
    fixture!("rust_mysql_common", "json.binlog.000001"),
    fixture!("rust_mysql_common", "minimal_row_metadata.000001"),
    fixture!(
        "rust_mysql_common",
        "mysql-enum-string-set.000001",
        "mysql-enum-string-set.000001.mariadb-mysqlbinlog.txt"
    ),
    fixture!(
        "rust_mysql_common",
        "mysql_type_bit.000001",
        "mysql_type_bit.000001.mariadb-mysqlbinlog.txt"
    ),
    fixture!(
        "rust_mysql_common",
        "time_issue.000001",
        "time_issue.000001.mariadb-mysqlbinlog.txt"
    ),
    fixture!("rust_mysql_common", "transaction_compression.000001"),
    fixture!("rust_mysql_common", "vector.binlog"),
];

/// The file of `ALL` named `name`.
fn fixture(name: &str) -> Fixture {
    ALL.into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

/// A source folder's `columns.tsv`.
fn columns_text(source: &str) -> &'static str {
    match source {
        "kingbus" => include_str!("fixtures/mysql/kingbus/columns.tsv"),
        "mysql-cdc-rs" => include_str!("fixtures/mysql/mysql-cdc-rs/columns.tsv"),
        "MySqlCdc" => include_str!("fixtures/mysql/MySqlCdc/columns.tsv"),
        "mysql-binlog-connector-rust" => {
            include_str!("fixtures/mysql/mysql-binlog-connector-rust/columns.tsv")
        }
        "rust_mysql_common" => include_str!("fixtures/mysql/rust_mysql_common/columns.tsv"),
        other => panic!("no columns.tsv for {other}"),
    }
}

impl Fixture {
    /// The tables of this file and their columns (`columns.tsv` rows for this file or for `*`),
    /// keyed by `schema.table`.
    fn tables(&self) -> HashMap<String, Vec<ColumnInfo>> {
        let mut out = HashMap::new();
        for (key, columns) in columns_tsv(columns_text(self.source)) {
            let (file, table) = key.split_once('/').unwrap();
            if file == "*" || file == self.name {
                assert!(
                    out.insert(table.to_string(), columns).is_none(),
                    "{table} is defined twice for {}",
                    self.name
                );
            }
        }
        out
    }

    /// The file's events, read as the driver reads a stream.
    fn events(&self) -> Vec<Event> {
        read_events(self.bytes)
    }

    /// Feeds every event to the streamer's event handling, following every table of
    /// `columns.tsv`.
    fn replay(&self) -> Replayed {
        let tables = self
            .tables()
            .into_iter()
            .map(|(name, columns)| {
                let (schema, table) = name.split_once('.').unwrap();
                WatchedTable {
                    schema: schema.into(),
                    table: table.into(),
                    columns,
                }
            })
            .collect();
        let opts = mysql_async::Opts::from_url("mysql://root@127.0.0.1:3306").unwrap();
        let mut config = StreamConfig::new(opts, 1, BinlogPosition::new(self.name, 4));
        config.progress_interval = std::time::Duration::from_secs(3600);
        let mut replay = Replay::new(config, tables);
        let events = self
            .events()
            .iter()
            .map(|event| Handled {
                at: u64::from(event.header().log_pos()) - u64::from(event.header().event_size()),
                type_code: event.header().event_type_raw(),
                result: replay.feed(event),
            })
            .collect();
        Replayed {
            file: self.name,
            events,
        }
    }
}

/// What the streamer made of one event.
struct Handled {
    /// The event's start offset in the file.
    at: u64,
    type_code: u8,
    result: Result<Vec<StreamItem>, StreamError>,
}

/// What the streamer made of a whole file, event by event. (A real stream stops at the first
/// error; here every event is fed, so a test sees each refusal.)
struct Replayed {
    file: &'static str,
    events: Vec<Handled>,
}

impl Replayed {
    /// The items handed out (by the events that did not fail).
    fn items(&self) -> Vec<&StreamItem> {
        self.events
            .iter()
            .filter_map(|h| h.result.as_ref().ok())
            .flatten()
            .collect()
    }

    fn rows(&self) -> Vec<&RowEvent> {
        self.items()
            .into_iter()
            .filter_map(|i| match i {
                StreamItem::Rows(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The errors, as `(offset of the event, message)`.
    fn errors(&self) -> Vec<(u64, String)> {
        self.events
            .iter()
            .filter_map(|h| h.result.as_ref().err().map(|e| (h.at, e.to_string())))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// `mysqlbinlog -vvv` text: the `### INSERT INTO`, `### UPDATE`, `### DELETE FROM` blocks.
// ---------------------------------------------------------------------------------------------

/// One value line: `###   @<column>=<value> /* <type> meta=<m> nullable=<n> is_null=<i> */`.
#[derive(Debug)]
struct TextValue {
    column: usize,
    value: Vec<u8>,
    comment: String,
}

/// One row of the text: its kind, table and images.
#[derive(Debug)]
struct TextRow {
    kind: RowKind,
    table: String,
    before: Option<Vec<TextValue>>,
    after: Option<Vec<TextValue>>,
}

/// The rows of a `mysqlbinlog -vvv` text, in order. The text is bytes: string values are the
/// column's bytes as stored (mysqlbinlog escapes only bytes below 0x20, `'` and `\`).
fn parse_mysqlbinlog(text: &[u8]) -> Vec<TextRow> {
    let mut rows: Vec<TextRow> = Vec::new();
    let mut in_after = false;
    for line in text.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(rest) = line.strip_prefix(b"### ") else {
            continue;
        };
        let head = |prefix: &str| {
            rest.strip_prefix(prefix.as_bytes())
                .map(|t| String::from_utf8_lossy(t).replace('`', ""))
        };
        if let Some(table) = head("INSERT INTO ") {
            rows.push(TextRow {
                kind: RowKind::Insert,
                table,
                before: None,
                after: None,
            });
        } else if let Some(table) = head("UPDATE ") {
            rows.push(TextRow {
                kind: RowKind::Update,
                table,
                before: None,
                after: None,
            });
        } else if let Some(table) = head("DELETE FROM ") {
            rows.push(TextRow {
                kind: RowKind::Delete,
                table,
                before: None,
                after: None,
            });
        } else if rest == b"WHERE" {
            in_after = false;
            rows.last_mut().unwrap().before = Some(Vec::new());
        } else if rest == b"SET" {
            in_after = true;
            rows.last_mut().unwrap().after = Some(Vec::new());
        } else if let Some(value) = rest.strip_prefix(b"  @") {
            let eq = value.iter().position(|b| *b == b'=').unwrap();
            let column: usize = std::str::from_utf8(&value[..eq]).unwrap().parse().unwrap();
            let value = &value[eq + 1..];
            let cut = value
                .windows(4)
                .rposition(|w| w == b" /* ")
                .unwrap_or_else(|| panic!("no type comment: {}", String::from_utf8_lossy(line)));
            let row = rows.last_mut().unwrap();
            let image = if in_after {
                row.after.as_mut()
            } else {
                row.before.as_mut()
            };
            image.unwrap().push(TextValue {
                column,
                value: value[..cut].to_vec(),
                comment: String::from_utf8_lossy(&value[cut + 4..]).into_owned(),
            });
        } else {
            panic!("unexpected line: {}", String::from_utf8_lossy(line));
        }
    }
    rows
}

/// A quoted string of the text (`'...'` with `\xNN` escapes) as bytes.
fn unquote(value: &[u8]) -> Option<Vec<u8>> {
    let inner = value.strip_prefix(b"'")?.strip_suffix(b"'")?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' && inner.get(i + 1) == Some(&b'x') {
            let hex = std::str::from_utf8(inner.get(i + 2..i + 4)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(inner[i]);
            i += 1;
        }
    }
    Some(out)
}

/// `b'0101'` as its bits, most significant first.
fn bits_text(value: &str) -> Option<u128> {
    let bits = value.strip_prefix("b'")?.strip_suffix('\'')?;
    u128::from_str_radix(bits, 2).ok()
}

/// Whether a decoded cell is the value mysqlbinlog printed, exactly, in mysqlbinlog's own forms
/// (`log_event.cc`, `log_event_print_value`): integers signed, then unsigned in parentheses when
/// they differ; DECIMAL as exact text; strings quoted; DATE as `'YYYY:MM:DD'`; TIME quoted;
/// ENUM as its index; SET and BIT as bits.
fn check_value(cell: &Cell, column: &ColumnInfo, text: &TextValue) -> Result<(), String> {
    let value = String::from_utf8_lossy(&text.value);
    let null_comment = text.comment.contains("is_null=1");
    if matches!(cell, Cell::Null) || null_comment {
        return if matches!(cell, Cell::Null) && null_comment && value == "NULL" {
            Ok(())
        } else {
            Err(format!("{cell:?} against {value}"))
        };
    }
    let ok = match cell {
        Cell::Int(i) => value.split(' ').next() == Some(i.to_string().as_str()),
        Cell::UInt(u) => {
            // `-3 (4294967293)`, or the value alone when it reads the same signed.
            let unsigned = match value.split_once(" (") {
                Some((_, u)) => u.trim_end_matches(')').to_string(),
                None => value.to_string(),
            };
            unsigned == u.to_string()
        }
        Cell::Decimal(d) => value == d.as_str(),
        Cell::Bytes { bytes, .. } => match unquote(&text.value) {
            Some(mut expected) => {
                // BINARY(n) is padded back to n bytes; the binlog (and mysqlbinlog) has them
                // stripped.
                if column.data_type == "binary" {
                    expected.resize(column.max_length.unwrap() as usize, 0);
                }
                *bytes == expected
            }
            None => false,
        },
        Cell::Date { year, month, day } => value == format!("'{year:04}:{month:02}:{day:02}'"),
        // TIME prints as wraith writes its literal: `'-838:59:59.000'`.
        Cell::Time { .. } => value == cell.sql_literal(),
        Cell::Year(y) => value == y.to_string(),
        Cell::Enum { index, .. } => value == index.to_string(),
        Cell::Set { bits, .. } => bits_text(&value) == Some(u128::from(*bits)),
        Cell::Bit(bytes) => {
            bits_text(&value) == Some(bytes.iter().fold(0u128, |a, b| a << 8 | u128::from(*b)))
        }
        other => {
            return Err(format!(
                "no text comparison written for {other:?} ({value})"
            ))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{cell:?} against {value} /* {}", text.comment))
    }
}

/// Compares every value of every row the streamer handed out with the text's, in order; returns
/// how many values were compared.
fn compare_with_mysqlbinlog(
    replayed: &Replayed,
    tables: &HashMap<String, Vec<ColumnInfo>>,
    text: &[u8],
) -> usize {
    let expected = parse_mysqlbinlog(text);
    let decoded: Vec<(&RowEvent, &super::RowImages)> = replayed
        .rows()
        .into_iter()
        .flat_map(|event| event.rows.iter().map(move |row| (event, row)))
        .collect();
    assert_eq!(
        decoded.len(),
        expected.len(),
        "{}: rows decoded against rows in the text",
        replayed.file
    );
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for (n, ((event, (before, after)), row)) in decoded.iter().zip(&expected).enumerate() {
        let table = format!("{}.{}", event.schema, event.table);
        assert_eq!(
            (event.kind, &table),
            (row.kind, &row.table),
            "{}: row {n}",
            replayed.file
        );
        let columns = &tables[&table];
        for (image, text_image, which) in [
            (before, &row.before, "before"),
            (after, &row.after, "after"),
        ] {
            assert_eq!(
                image.is_some(),
                text_image.is_some(),
                "{}: row {n}: {which} image",
                replayed.file
            );
            let (Some(image), Some(text_image)) = (image, text_image) else {
                continue;
            };
            assert_eq!(image.len(), text_image.len(), "{}: row {n}", replayed.file);
            for (i, ((cell, column), text)) in image.iter().zip(columns).zip(text_image).enumerate()
            {
                assert_eq!(text.column, i + 1);
                compared += 1;
                if let Err(e) = check_value(cell, column, text) {
                    mismatches.push(format!("row {n} ({which}) @{}: {e}", i + 1));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}: values that differ from mysqlbinlog's:\n{}",
        replayed.file,
        mismatches.join("\n")
    );
    compared
}

// ---------------------------------------------------------------------------------------------
// `mysql_common`'s row decoder: a second, separate decoding of the same rows events.
// ---------------------------------------------------------------------------------------------

/// The rows of every rows event of the file as `mysql_common` decodes them (its
/// `RowsEventData::rows`, which wraith does not use), by the event's end position.
fn mysql_common_rows(fixture: Fixture) -> HashMap<u64, Vec<TheirImages>> {
    let mut maps: HashMap<u64, TableMapEvent<'static>> = HashMap::new();
    let mut out = HashMap::new();
    for event in fixture.events() {
        match event.read_data() {
            Ok(Some(EventData::TableMapEvent(tme))) => {
                maps.insert(tme.table_id(), tme.into_owned());
            }
            Ok(Some(EventData::RowsEvent(rows))) => {
                let tme = &maps[&rows.table_id()];
                let images = rows
                    .rows(tme)
                    .map(|row| {
                        let (before, after) = row.unwrap();
                        (before.map(|r| r.unwrap()), after.map(|r| r.unwrap()))
                    })
                    .collect();
                out.insert(u64::from(event.header().log_pos()), images);
            }
            _ => {}
        }
    }
    out
}

type TheirImages = (
    Option<Vec<BinlogValue<'static>>>,
    Option<Vec<BinlogValue<'static>>>,
);

/// `v`, with `bytes` bytes, sign-extended.
fn sign_extend(v: u64, bytes: u32) -> i64 {
    let shift = 64 - 8 * bytes;
    ((v << shift) as i64) >> shift
}

/// Whether wraith's cell and `mysql_common`'s value are the same value. `mysql_common` is lossy
/// in documented ways, which this follows and nothing else: integers are signed unless the table
/// map says unsigned (MySQL 5.7 never does), MEDIUMINT is always signed-typed, YEAR is
/// `1900 + byte` (so YEAR 0 reads 1900), TIMESTAMP is `seconds[.micro]` text, DECIMAL is text,
/// BINARY(n) is not padded back, SET is its bitmap's bytes, TIME's hours are split into days.
fn same_as_mysql_common(cell: &Cell, column: &ColumnInfo, theirs: &BinlogValue<'_>) -> bool {
    use mysql_async::Value as V;
    let theirs = match theirs {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(doc) => {
            let Cell::Json(ours) = cell else { return false };
            let dom = doc.clone().parse().unwrap();
            return json_as_mysql_common(ours) == serde_json::Value::from(dom);
        }
        BinlogValue::JsonDiff(_) => return false,
    };
    match (cell, theirs) {
        (Cell::Null, V::NULL) => true,
        (Cell::Int(a), V::Int(b)) => a == b,
        (Cell::UInt(a), V::UInt(b)) => a == b,
        // An unsigned column read as signed: the same bits at one of the integer widths.
        (Cell::UInt(a), V::Int(b)) => {
            u64::try_from(*b) == Ok(*a)
                || [1, 2, 3, 4, 8]
                    .iter()
                    .any(|w| (*w == 8 || *a < 1u64 << (8 * w)) && sign_extend(*a, *w) == *b)
        }
        (Cell::Float(a), V::Float(b)) => a.to_bits() == b.to_bits(),
        (Cell::Double(a), V::Double(b)) => a.to_bits() == b.to_bits(),
        (Cell::Decimal(a), V::Bytes(b)) => a.as_bytes() == b,
        (Cell::Bytes { bytes, .. }, V::Bytes(b)) => {
            let mut b = b.clone();
            if column.data_type == "binary" {
                b.resize(column.max_length.unwrap() as usize, 0);
            }
            *bytes == b
        }
        (Cell::Date { year, month, day }, V::Date(y, m, d, 0, 0, 0, 0)) => {
            (year, month, day) == (y, m, d)
        }
        // The date and time as wraith's literal starts, and the same microseconds.
        (Cell::DateTime { micro, .. }, V::Date(y, mo, d, h, mi, s, us)) => {
            micro == us
                && cell
                    .sql_literal()
                    .starts_with(&format!("'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"))
        }
        (Cell::Timestamp { seconds, micro, .. }, V::Bytes(b)) => {
            let text = if *micro == 0 {
                seconds.to_string()
            } else {
                format!("{seconds}.{micro:06}")
            };
            text.as_bytes() == b
        }
        // Likewise; `mysql_common` splits the hours into days and hours.
        (Cell::Time { micro, .. }, V::Time(neg, days, h, m, s, us)) => {
            let hours = days * 24 + u32::from(*h);
            let sign = if *neg { "-" } else { "" };
            micro == us
                && cell
                    .sql_literal()
                    .starts_with(&format!("'{sign}{hours:02}:{m:02}:{s:02}"))
        }
        (Cell::Year(y), V::Bytes(b)) => {
            let byte = if *y == 0 { 0 } else { y - 1900 };
            (1900 + byte).to_string().as_bytes() == b
        }
        (Cell::Enum { index, .. }, V::Int(i)) => i64::from(*index) == *i,
        (Cell::Set { bits, .. }, V::Bytes(b)) => {
            *bits == b.iter().rev().fold(0u64, |a, x| a << 8 | u64::from(*x))
        }
        (Cell::Bit(a), V::Bytes(b)) => a == b,
        _ => false,
    }
}

/// A decoded JSON document as `mysql_common` turns one into `serde_json` (opaque DECIMAL and
/// temporal values as strings, other opaque values as `base64:type<N>:<data>`).
fn json_as_mysql_common(value: &JsonValue) -> serde_json::Value {
    use serde_json::Value as S;
    match value {
        JsonValue::Null => S::Null,
        JsonValue::Bool(b) => S::Bool(*b),
        JsonValue::Int(i) => S::from(*i),
        JsonValue::UInt(u) => S::from(*u),
        JsonValue::Double(d) => S::from(*d),
        JsonValue::String(s) => S::String(s.clone()),
        JsonValue::Array(items) => S::Array(items.iter().map(json_as_mysql_common).collect()),
        JsonValue::Object(members) => S::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), json_as_mysql_common(v)))
                .collect(),
        ),
        JsonValue::Opaque(o) => match o {
            Opaque::Decimal { text, .. } => S::String(text.clone()),
            Opaque::Date(t) | Opaque::Time(t) | Opaque::DateTime(t) | Opaque::Timestamp(t) => {
                S::String(t.clone())
            }
            // `to_text` writes these as MySQL prints them, the same form.
            Opaque::Other { .. } => serde_json::from_str(&value.to_text()).unwrap(),
        },
    }
}

/// Compares every value the streamer handed out with `mysql_common`'s decoding of the same
/// event; returns how many values were compared.
fn compare_with_mysql_common(fixture: Fixture, replayed: &Replayed) -> usize {
    let theirs = mysql_common_rows(fixture);
    let tables = fixture.tables();
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for event in replayed.rows() {
        let columns = &tables[&format!("{}.{}", event.schema, event.table)];
        let their_rows = &theirs[&event.position.pos];
        assert_eq!(event.rows.len(), their_rows.len(), "{}", event.position);
        for (n, ((before, after), (their_before, their_after))) in
            event.rows.iter().zip(their_rows).enumerate()
        {
            for (ours, theirs) in [(before, their_before), (after, their_after)] {
                assert_eq!(ours.is_some(), theirs.is_some(), "{}", event.position);
                let (Some(ours), Some(theirs)) = (ours, theirs) else {
                    continue;
                };
                assert_eq!(ours.len(), theirs.len(), "{}", event.position);
                for ((cell, column), their) in ours.iter().zip(columns).zip(theirs) {
                    compared += 1;
                    if !same_as_mysql_common(cell, column, their) {
                        mismatches.push(format!(
                            "{} row {n} `{}`: {cell:?} against {their:?}",
                            event.position, column.name
                        ));
                    }
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "values that differ from mysql_common's:\n{}",
        mismatches.join("\n")
    );
    compared
}

// ---------------------------------------------------------------------------------------------
// The table maps' own optional metadata against `columns.tsv`.
// ---------------------------------------------------------------------------------------------

/// The character set of a collation id, for the collations these files use.
fn charset_of(collation: u16) -> Option<&'static str> {
    match collation {
        8 => Some("latin1"),
        33 | 83 => Some("utf8mb3"),
        45 | 46 | 224 | 255 => Some("utf8mb4"),
        63 => None,
        other => panic!("collation {other}: add it here"),
    }
}

/// What the table map's optional metadata says that `columns` does not: names, signedness,
/// character sets, ENUM and SET labels. Empty when it agrees (or carries none).
fn disagreements_with_table_map(tme: &TableMapEvent<'_>, columns: &[ColumnInfo]) -> Vec<String> {
    let mut out = Vec::new();
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta()).unwrap();
    let names: Vec<String> = meta
        .iter_column_name()
        .map(|n| n.unwrap().name().into_owned())
        .collect();
    if !names.is_empty() {
        let ours: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        if names != ours {
            out.push(format!("names {names:?}, columns.tsv {ours:?}"));
        }
    }
    let mut signedness = meta.iter_signedness().peekable();
    let has_signedness = signedness.peek().is_some();
    let mut charsets = meta.iter_charset();
    let mut enum_labels = Vec::new();
    let mut set_labels = Vec::new();
    // The labels of each ENUM (or SET) column, in order.
    macro_rules! labels {
        ($values:expr) => {
            $values.iter_values().map(|l| {
                l.unwrap()
                    .values()
                    .iter()
                    .map(|s| s.value().into_owned())
                    .collect::<Vec<_>>()
            })
        };
    }
    for field in tme.iter_optional_meta() {
        use mysql_async::binlog::events::OptionalMetadataField as F;
        match field.unwrap() {
            F::EnumStrValue(v) => enum_labels.extend(labels!(v)),
            F::SetStrValue(v) => set_labels.extend(labels!(v)),
            _ => {}
        }
    }
    let (mut enums, mut sets) = (enum_labels.into_iter(), set_labels.into_iter());
    for (i, column) in columns.iter().enumerate() {
        let t = tme.get_column_type(i).unwrap().unwrap();
        if t.is_numeric_type() && has_signedness {
            let unsigned = signedness.next().unwrap();
            if unsigned != column.unsigned {
                out.push(format!("`{}`: unsigned is {unsigned}", column.name));
            }
        }
        // MySQL 9 counts VECTOR columns among the character columns of the charset metadata
        // (`mysql_common` does not): one is consumed for them, and not compared.
        if t == ColumnType::MYSQL_TYPE_VECTOR {
            charsets.next();
        } else if t.is_character_type() {
            if let Some(collation) = charsets.next() {
                let charset = charset_of(collation.unwrap());
                // MySQL 5.7 names utf8mb3 `utf8`.
                let ours = column.charset.as_deref().map(|c| match c {
                    "utf8" => "utf8mb3",
                    c => c,
                });
                if charset != ours {
                    out.push(format!("`{}`: character set {charset:?}", column.name));
                }
            }
        }
        let labels = match t {
            ColumnType::MYSQL_TYPE_ENUM => enums.next(),
            ColumnType::MYSQL_TYPE_SET => sets.next(),
            _ => None,
        };
        if let Some(labels) = labels {
            if labels != column.labels {
                out.push(format!("`{}`: labels {labels:?}", column.name));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

#[test]
fn every_mysql_fixture_file_is_tested() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/binlog/fixtures/mysql");
    let mut on_disk = Vec::new();
    for source in std::fs::read_dir(&dir).unwrap() {
        let source = source.unwrap();
        if !source.file_type().unwrap().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(source.path()).unwrap() {
            let path = file.unwrap().path();
            if std::fs::read(&path).unwrap().starts_with(b"\xfebin") {
                on_disk.push(format!(
                    "{}/{}",
                    source.file_name().to_string_lossy(),
                    path.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = ALL
        .iter()
        .map(|f| format!("{}/{}", f.source, f.name))
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

/// MySQL 5.7.23 (kingbus): GTIDs, WRITE/UPDATE/DELETE rows v2, a table map without optional
/// metadata, against MySQL's own `mysqlbinlog -vvv` (`11.txt`-`13.txt`).
#[test]
fn kingbus_5_7_rows_match_mysqlbinlog() {
    for name in ["mysql_bin.000011", "mysql_bin.000012", "mysql_bin.000013"] {
        // 10 transactions of 2 inserts, an update (2 images) and a delete, 3 columns each.
        let replayed = replay_matching_text(name, 10 * 5 * 3);
        // Each transaction's GTID is carried by its rows.
        assert!(replayed.rows().iter().all(|r| r
            .gtid
            .as_deref()
            .is_some_and(|g| g.starts_with("214eb71f-96ec-11e8-ab4f-fa163e72d4ae:"))));
    }
    let first = fixture("mysql_bin.000011").replay();
    assert_eq!(
        first.rows()[0].gtid.as_deref(),
        Some("214eb71f-96ec-11e8-ab4f-fa163e72d4ae:11791")
    );
}

/// Replays the file named `name` and compares every row with its `mysqlbinlog -vvv` text: no
/// event may fail, and `values` values must have been compared.
fn replay_matching_text(name: &str, values: usize) -> Replayed {
    let fixture = fixture(name);
    let replayed = fixture.replay();
    assert_eq!(replayed.errors(), [], "{name}");
    let text = fixture.text.expect("a mysqlbinlog text");
    let compared = compare_with_mysqlbinlog(&replayed, &fixture.tables(), text);
    assert_eq!(compared, values, "{name}: values compared");
    replayed
}

/// The after image of the first row handed out.
fn first_after_image(replayed: &Replayed) -> Vec<Cell> {
    replayed.rows()[0].rows[0].1.clone().unwrap()
}

/// mysql-cdc-rs (MySQL 8.2.0): INSERT, UPDATE and DELETE rows v2 of every integer size, with
/// SIGNEDNESS metadata, against MySQL 8.2's own `mysqlbinlog -vvv` (`*_dump.txt`).
#[test]
fn mysql_cdc_rs_8_2_rows_match_mysqlbinlog() {
    replay_matching_text(
        "8.0_19_30_Table_map_event_Write_rows_log_event_binlog.000018",
        6,
    );
    replay_matching_text("8.0_31_update_rows_v2_binlog.000001", 6 + 12);
    replay_matching_text("8.0_32_delete_rows_v2_binlog.000001", 6 + 12 + 6);
}

/// mysql-cdc-rs 8.0_02_query_bigger (MySQL 8.0.31): BIGINT, INT, DECIMAL of four precisions
/// and scales, VARCHAR in utf8mb3 (one value a long Chinese text), DATE, NULLs; multi-row
/// inserts, an update, deletes, in two tables. Against MariaDB 10.11's `mysqlbinlog -vvv` (the
/// source's own dump of this file is empty) and the SQL that wrote it.
#[test]
fn mysql_cdc_rs_8_0_31_lineitem_rows_match_mysqlbinlog_and_the_sql() {
    // 1 + 5 inserted rows, 1 update (2 images), 2 deleted rows of LINEITEM, 5 rows of Demo; 16
    // columns each.
    let replayed = replay_matching_text(
        "8.0_02_query_bigger_binlog.000733",
        (1 + 5 + 2 + 2 + 5) * 16,
    );
    // The statements of the SQL file, for the values the text prints in its own forms.
    let sql = include_str!("fixtures/mysql/mysql-cdc-rs/8.0_02_query_bigger_sql.sql");
    let rows = replayed.rows();
    let comment = sql
        .lines()
        .find(|l| l.contains("'test', '使用"))
        .and_then(|l| l.split("'test', '").nth(1))
        .and_then(|l| l.split("'),").next())
        .unwrap();
    let inserted = rows[1].rows[2].1.as_ref().unwrap();
    assert_eq!(
        inserted[15],
        Cell::Bytes {
            bytes: comment.as_bytes().to_vec(),
            charset: Some("utf8mb3".into())
        }
    );
    assert_eq!(inserted[0], Cell::Int(12345678909878));
    assert_eq!(inserted[4], Cell::Decimal("99.999".into()));
    assert_eq!(
        inserted[10],
        Cell::Date {
            year: 1990,
            month: 8,
            day: 1
        }
    );
    // update LINEITEM set L_QUANTITY = 88.880, L_RETURNFLAG = 'update L_RETURNFLAG ' ...
    assert_eq!(rows[2].kind, RowKind::Update);
    let after = rows[2].rows[0].1.as_ref().unwrap();
    assert_eq!(after[4], Cell::Decimal("88.880".into()));
    assert_eq!(
        after[8],
        Cell::Bytes {
            bytes: b"update L_RETURNFLAG ".to_vec(),
            charset: Some("utf8mb3".into())
        },
        "VARCHAR keeps its trailing space"
    );
    // Demo's rows with a NULL L_LINESTATUS and no L_COMMENT.
    let demo = rows[5].rows[0].1.as_ref().unwrap();
    assert_eq!(
        (demo[9].clone(), demo[15].clone()),
        (Cell::Null, Cell::Null)
    );
}

/// mysql-cdc-rs 8.0_02_query (MySQL 8.2.0): a file with no rows, only a DDL statement.
#[test]
fn mysql_cdc_rs_8_2_a_file_without_rows_hands_out_its_statement() {
    let replayed = fixture("8.0_02_query_binlog.000001").replay();
    let items = replayed.items();
    assert_eq!(items.len(), 2, "{items:?}");
    let StreamItem::Statement {
        query,
        position,
        gtid,
        ..
    } = items[0]
    else {
        panic!("{items:?}")
    };
    assert_eq!(
        query,
        "DROP TABLE IF EXISTS `boxercrab` /* generated by server */"
    );
    assert_eq!(position.to_string(), "8.0_02_query_binlog.000001:369");
    assert_eq!(*gtid, None, "an anonymous GTID");
    assert!(matches!(items[1], StreamItem::Commit(b) if b.position.pos == 369));
}

/// MySqlCdc's sample (MySQL 5.7.23): one table with nearly every column type, three inserts.
/// The third row is the statement of `Scripts.sql`, compared here value by value; the first two
/// were written from edited copies of it (other numbers and strings) and are compared with
/// `mysql_common` only (`every_handed_out_value_matches_mysql_common`).
#[test]
fn mysqlcdc_5_7_every_column_type_matches_the_statement_that_wrote_it() {
    let replayed = fixture("mysql-bin.000001").replay();
    let rows = replayed.rows();
    assert_eq!(rows.len(), 3);
    let row = rows[2].rows[0].1.as_ref().unwrap();
    let text = |s: &str| Cell::Bytes {
        bytes: s.as_bytes().to_vec(),
        charset: Some("utf8mb4".into()),
    };
    let binary = |b: &[u8]| Cell::Bytes {
        bytes: b.to_vec(),
        charset: None,
    };
    let expected = vec![
        Cell::Int(13),
        Cell::Int(123),
        Cell::Int(12345),
        Cell::Int(1234567),
        Cell::Int(123456789),
        Cell::Int(1234567890987654321),
        // The server reads the literal as a double and stores it as a float.
        Cell::Float("12345.6789".parse::<f64>().unwrap() as f32),
        Cell::Double("123456789.0987654321".parse().unwrap()),
        Cell::Decimal("1234567890112233445566778899001112223334445556667778889.9900011112".into()),
        text("Asd234234 234234 zdfsfsdfsdf"),
        text("Hello world!"),
        binary(&[0x12, 0x34, 0x56, 0x45, 0x34, 0x45, 0x45, 0x34]),
        Cell::Json(JsonValue::Object(vec![
            ("id".into(), JsonValue::Int(1)),
            ("name".into(), JsonValue::String("John".into())),
        ])),
        binary(&[0x15, 0x23, 0x54]),
        // b'0111101101010101011110000111', BIT(28) in 4 bytes.
        Cell::Bit(0x07b5_5787u32.to_be_bytes().to_vec()),
        Cell::Enum {
            index: 2,
            label: Some("Medium".into()),
        },
        Cell::Set {
            bits: 4,
            labels: vec!["Red".into()],
        },
        Cell::Year(1989),
        Cell::Date {
            year: 1985,
            month: 10,
            day: 23,
        },
        Cell::DateTime {
            year: 1988,
            month: 11,
            day: 27,
            hour: 14,
            minute: 12,
            second: 13,
            micro: 345_000,
            fsp: 3,
        },
        Cell::Time {
            negative: false,
            hours: 15,
            minutes: 22,
            seconds: 33,
            micro: 670_000,
            fsp: 2,
        },
        // '1985-10-13 13:22:23.567' in the session's time zone (SYSTEM, the binlog says): the
        // server's clock was 3 hours ahead of UTC, so 10:22:23.567 UTC. The one expected value
        // that rests on an inference.
        Cell::Timestamp {
            seconds: 498_046_943,
            micro: 567_000,
            fsp: 3,
        },
    ];
    assert_eq!(*row, expected);
    assert_eq!(
        Cell::Timestamp {
            seconds: 498_046_943,
            micro: 567_000,
            fsp: 3
        }
        .sql_literal(),
        "'1985-10-13 10:22:23.567'"
    );
    // What the applier would write for it.
    let literals: Vec<String> = row.iter().map(Cell::sql_literal).collect();
    assert_eq!(
        literals[6..17],
        [
            "1.23456787109375e4",
            "1.2345678909876543e8",
            "1234567890112233445566778899001112223334445556667778889.9900011112",
            "_utf8mb4 X'41736432333432333420323334323334207A64667366736466736466'",
            "_utf8mb4 X'48656C6C6F20776F726C6421'",
            "_binary X'1234564534454534'",
            "CAST(_utf8mb4 X'7B226964223A20312C20226E616D65223A20224A6F686E227D' AS JSON)",
            "_binary X'152354'",
            "b'111101101010101011110000111'",
            "_utf8mb4 X'4D656469756D'",
            "_utf8mb4 X'526564'",
        ]
    );
    assert_eq!(
        literals[17..],
        [
            "1989",
            "'1985-10-23'",
            "'1988-11-27 14:12:13.345'",
            "'15:22:33.67'",
            "'1985-10-13 10:22:23.567'",
        ]
    );
}

/// mysql-binlog-connector-rust's mysql-bin.000080 (MySQL 5.7.40): GTIDs, deletes and inserts of
/// an INT, an empty utf8mb4 VARCHAR(255) (2-byte length), DDL between them; against MariaDB
/// 10.11's `mysqlbinlog -vvv`.
#[test]
fn connector_rust_5_7_40_rows_match_mysqlbinlog() {
    let replayed = replay_matching_text("mysql-bin.000080", 4 + 2 + 2);
    assert!(replayed.rows().iter().all(|r| r.gtid.is_some()));
    let statements = replayed
        .items()
        .into_iter()
        .filter(|i| matches!(i, StreamItem::Statement { .. }))
        .count();
    assert_eq!(
        statements, 5,
        "two CREATE, two DROP, one CREATE TABLE emoji"
    );
}

/// Compressed transaction payloads (MySQL 8.0.31 and 8.0.32, zstd): the streamer stops on the
/// first with the message that names the setting, and hands out nothing of them.
#[test]
fn compressed_transactions_are_refused_with_the_designed_message() {
    for (fixture, ends) in [
        (fixture("mysql-bin.000057"), &[651u64, 1283][..]),
        (fixture("transaction_compression.000001"), &[431]),
    ] {
        let replayed = fixture.replay();
        let errors = replayed.errors();
        assert_eq!(errors.len(), ends.len(), "{errors:?}");
        for ((_, message), end) in errors.iter().zip(ends) {
            assert_eq!(
                *message,
                format!(
                    "compressed transaction payload at {}:{end}: binlog_transaction_compression \
                     is on (on the server, or in the session that wrote it); wraith does not \
                     read compressed transactions. Run `SET GLOBAL \
                     binlog_transaction_compression=OFF` and start the migration again",
                    fixture.name
                )
            );
        }
        let rows: usize = replayed
            .events
            .iter()
            .filter_map(|h| h.result.as_ref().ok())
            .flatten()
            .filter(|i| matches!(i, StreamItem::Rows(_)))
            .count();
        assert_eq!(rows, 0, "{}", fixture.name);
    }
}

/// The rows inside the compressed payloads, decompressed here as the driver would and decoded
/// with wraith's decoder (the streamer refuses them, so this is the decoder's coverage only):
/// a 20-column table with DATE, TEXT, TIMESTAMP, ENUM, SET, CHAR and JSON columns, against the
/// statements the rows-query events log and against `mysql_common`.
#[test]
fn rows_inside_compressed_payloads_decode_as_their_statements_say() {
    let mut decoded = Vec::new();
    for fixture in [
        fixture("mysql-bin.000057"),
        fixture("transaction_compression.000001"),
    ] {
        let tables = fixture.tables();
        for event in fixture.events() {
            if event.header().event_type_raw() != 40 {
                continue;
            }
            let mut maps: HashMap<u64, TableMapEvent<'static>> = HashMap::new();
            for inner in payload_events(&event) {
                match inner.read_data().unwrap() {
                    Some(EventData::TableMapEvent(tme)) => {
                        let tme = tme.into_owned();
                        let name = format!("{}.{}", tme.database_name(), tme.table_name());
                        let problems = disagreements_with_table_map(&tme, &tables[&name]);
                        assert!(problems.is_empty(), "{name}: {problems:?}");
                        maps.insert(tme.table_id(), tme);
                    }
                    Some(EventData::RowsEvent(rows)) => {
                        let tme = &maps[&rows.table_id()];
                        let name = format!("{}.{}", tme.database_name(), tme.table_name());
                        let columns = &tables[&name];
                        let (kind, images) = TableDecoder::new(tme, columns)
                            .unwrap()
                            .decode(&rows)
                            .unwrap();
                        for ((before, after), theirs) in images.iter().zip(rows.rows(tme)) {
                            let (their_before, their_after) = theirs.unwrap();
                            for (ours, theirs) in [(before, their_before), (after, their_after)] {
                                let (Some(ours), Some(theirs)) = (ours, theirs) else {
                                    continue;
                                };
                                for ((cell, column), their) in
                                    ours.iter().zip(columns).zip(theirs.unwrap())
                                {
                                    assert!(
                                        same_as_mysql_common(cell, column, &their),
                                        "{name} `{}`: {cell:?} against {their:?}",
                                        column.name
                                    );
                                }
                            }
                        }
                        decoded.push((name, kind, images, event.header().timestamp()));
                    }
                    _ => {}
                }
            }
        }
    }
    let names: Vec<(&str, RowKind)> = decoded.iter().map(|d| (d.0.as_str(), d.1)).collect();
    assert_eq!(
        names,
        [
            ("a.b", RowKind::Insert),
            ("a.test_table_3", RowKind::Update),
            ("a.test_table_3", RowKind::Insert),
            ("test.tb1", RowKind::Insert),
        ]
    );
    // insert into b values(1)
    assert_eq!(decoded[0].2, vec![(None, Some(vec![Cell::Int(1)]))]);
    // update test_table_3 set enum_field='large', set_field='c',
    // product_item_2='product_3_value' where product_id=55555
    let (before, after) = &decoded[1].2[0];
    let (before, after) = (before.as_ref().unwrap(), after.as_ref().unwrap());
    assert_eq!(after[0], Cell::Int(55555));
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        if ![6, 7, 10].contains(&i) {
            assert_eq!(b, a, "column {i} is not set by the update");
        }
    }
    assert_eq!(
        after[10],
        Cell::Bytes {
            bytes: b"product_3_value".to_vec(),
            charset: Some("utf8mb3".into())
        }
    );
    // The SET's labels are not in the file: 'c' and 'd' are its third and fourth bits.
    assert!(matches!(after[7], Cell::Set { bits: 4, .. }));
    // insert into test_table_3 values(6666, 'product_item_value_2', now(), 111,
    // 'description_1', now(), 'large', 'd', 'b3', '{"c": 1}', 'product_item_2_value', now(),
    // now(), 2222, 'description_3_value', now(), now(), 222, 'description_4_value', now())
    let (_, after) = &decoded[2].2[0];
    let row = after.as_ref().unwrap();
    let text = |s: &str| Cell::Bytes {
        bytes: s.as_bytes().to_vec(),
        charset: Some("utf8mb3".into()),
    };
    assert_eq!(row[0], Cell::Int(6666));
    assert_eq!(row[1], text("product_item_value_2"));
    assert_eq!(row[3], Cell::Int(111));
    assert_eq!(row[4], text("description_1"));
    assert_eq!(
        row[6],
        after_of(&decoded[1])[6],
        "'large', as the update set it"
    );
    assert!(matches!(row[7], Cell::Set { bits: 8, .. }));
    assert_eq!(
        row[8],
        Cell::Bytes {
            bytes: b"b3\0".to_vec(),
            charset: None
        },
        "BINARY(3) padded back"
    );
    assert_eq!(
        row[9],
        Cell::Json(JsonValue::Object(vec![("c".into(), JsonValue::Int(1))]))
    );
    assert_eq!(row[10], text("product_item_2_value"));
    assert_eq!(
        (&row[13], &row[14], &row[17], &row[18]),
        (
            &Cell::Int(2222),
            &text("description_3_value"),
            &Cell::Int(222),
            &text("description_4_value")
        )
    );
    // now(): every TIMESTAMP within a minute of the transaction's commit, every DATE its day.
    let commit = decoded[2].3;
    for i in [5, 15, 19] {
        let Cell::Timestamp { seconds, .. } = row[i] else {
            panic!("{:?}", row[i])
        };
        assert!(seconds.abs_diff(commit) < 60, "{seconds} against {commit}");
    }
    for i in [2, 11, 12, 16] {
        assert!(
            matches!(
                row[i],
                Cell::Date {
                    year: 2022 | 2023,
                    ..
                }
            ),
            "{:?}",
            row[i]
        );
    }
    assert_eq!(decoded[3].2, vec![(None, Some(vec![Cell::Int(1)]))]);
}

fn after_of(decoded: &(String, RowKind, Vec<super::RowImages>, u32)) -> &Vec<Cell> {
    decoded.2[0].1.as_ref().unwrap()
}

/// rust_mysql_common's mysql-enum-string-set (MySQL 8.0.28, `binlog_row_metadata=FULL`): CHAR(128)
/// and VARCHAR(300) in utf8mb4 (2-byte lengths, the long-CHAR metadata), ENUM, SET, TEXT;
/// insert, update, delete; against MariaDB 10.11's `mysqlbinlog -vvv`.
#[test]
fn enum_set_char_varchar_text_8_0_28_match_mysqlbinlog() {
    let after = first_after_image(&replay_matching_text("mysql-enum-string-set.000001", 4 * 5));
    assert_eq!(
        (&after[2], &after[3]),
        (
            &Cell::Enum {
                index: 1,
                label: Some("var1".into())
            },
            &Cell::Set {
                bits: 5,
                labels: vec!["one".into(), "three".into()]
            }
        )
    );
}

/// rust_mysql_common's mysql_type_bit (MySQL 8.0.26): BIT(3) and BIT(8) around a TEXT.
#[test]
fn bit_8_0_26_matches_mysqlbinlog() {
    let row = first_after_image(&replay_matching_text("mysql_type_bit.000001", 3));
    assert_eq!(row[0].sql_literal(), "b'100'");
    assert_eq!(row[2].sql_literal(), "b'100000'");
}

/// rust_mysql_common's time_issue (MySQL 8.0.40): a negative TIME(0), -507:48:27, in a table map
/// without optional metadata.
#[test]
fn negative_time_8_0_40_matches_mysqlbinlog() {
    let row = first_after_image(&replay_matching_text("time_issue.000001", 1));
    assert_eq!(row[0].sql_literal(), "'-507:48:27'");
}

/// rust_mysql_common's binlog-invisible-columns (MySQL 8.0.26): INVISIBLE columns are in the
/// row images like any other (unsigned INT and BIGINT, NULLs), with COLUMN_VISIBILITY metadata.
#[test]
fn invisible_columns_8_0_26_are_in_the_row_images_and_match_mysqlbinlog() {
    let first = first_after_image(&replay_matching_text(
        "binlog-invisible-columns.000001",
        4 * 6,
    ));
    assert_eq!(
        (&first[0], &first[2], &first[5]),
        (&Cell::UInt(1), &Cell::Int(-3), &Cell::UInt(6_000_000_000))
    );
}

/// rust_mysql_common's minimal_row_metadata (MySQL 8.0.40, `binlog_row_image=MINIMAL`): an
/// insert whose image holds three of five columns is refused, naming the setting.
#[test]
fn a_minimal_row_image_8_0_40_is_refused_with_the_designed_message() {
    let errors = fixture("minimal_row_metadata.000001").replay().errors();
    assert_eq!(
        errors,
        [(
            374,
            "decoding the rows event that ends at minimal_row_metadata.000001:420: table \
             noria.t1: the row image does not hold every column; wraith needs \
             binlog_row_image=FULL on the server whose binlog it reads"
                .to_string()
        )]
    );
}

/// rust_mysql_common's json.binlog (MySQL 8.0.22): JSON documents with two VIRTUAL generated
/// columns computed from them, inserts and a six-row update, then a PARTIAL_UPDATE_ROWS event
/// (`binlog_row_value_options=PARTIAL_JSON`), which is refused with its message.
#[test]
fn json_8_0_22_documents_and_generated_columns_decode_and_the_partial_update_is_refused() {
    let replayed = fixture("json.binlog.000001").replay();
    assert_eq!(
        replayed.errors(),
        [(
            3750,
            "decoding the rows event that ends at json.binlog.000001:3980: table mysql.t: \
             partial JSON update event; wraith needs binlog_row_value_options='' (full JSON \
             images)"
                .to_string()
        )]
    );
    let columns = &fixture("json.binlog.000001").tables()["mysql.t"];
    let generated: Vec<bool> = columns.iter().map(|c| c.generated).collect();
    assert_eq!(generated, [false, false, true, true]);
    let rows = replayed.rows();
    let kinds: Vec<(RowKind, usize)> = rows.iter().map(|r| (r.kind, r.rows.len())).collect();
    assert_eq!(
        kinds,
        [
            (RowKind::Insert, 1),
            (RowKind::Insert, 1),
            (RowKind::Insert, 1),
            (RowKind::Insert, 3),
            (RowKind::Update, 6)
        ]
    );
    let first = rows[0].rows[0].1.as_ref().unwrap();
    let Cell::Json(doc) = &first[1] else {
        panic!("{first:?}")
    };
    assert_eq!(
        doc.to_text(),
        r#"{"age": 24, "data": "xxxxxxxxxx", "name": "Joe"}"#
    );
    // The server computed the generated columns from the document: name = json_col->>'$.name'
    // and age = json_col->'$.age', in every image of every row.
    let mut images = 0;
    for event in &rows {
        for image in event.rows.iter().flat_map(|(b, a)| [b, a]).flatten() {
            let Cell::Json(JsonValue::Object(members)) = &image[1] else {
                panic!("{image:?}")
            };
            let member = |k: &str| members.iter().find(|(key, _)| key == k).unwrap().1.clone();
            let JsonValue::String(name) = member("name") else {
                panic!()
            };
            let JsonValue::Int(age) = member("age") else {
                panic!()
            };
            assert_eq!(
                (&image[2], &image[3]),
                (
                    &Cell::Bytes {
                        bytes: name.into_bytes(),
                        charset: Some("utf8mb4".into())
                    },
                    &Cell::Int(age)
                )
            );
            images += 1;
        }
    }
    assert_eq!(images, 6 + 2 * 6);
    // The update added one to every age.
    let update = &rows[4].rows;
    assert!(update.iter().all(|(b, a)| {
        let (b, a) = (b.as_ref().unwrap(), a.as_ref().unwrap());
        matches!((&b[3], &a[3]), (Cell::Int(x), Cell::Int(y)) if y - x == 1)
    }));
}

/// rust_mysql_common's json-opaque (MySQL 9.0.1, `binlog_row_metadata=FULL`): JSON documents
/// holding opaque values (a binary string, DATE, DATETIME, TIME, two DECIMALs), an array and a
/// null. The values are rust_mysql_common's own test expectations for this file; wraith keeps
/// each opaque value's MySQL type and writes it back with a typed CAST.
#[test]
fn json_opaque_9_0_1_values_keep_their_mysql_types() {
    let replayed = fixture("json-opaque.binlog").replay();
    assert_eq!(replayed.errors(), []);
    let docs: Vec<(String, String)> = replayed
        .rows()
        .iter()
        .map(|r| {
            let cell = &r.rows[0].1.as_ref().unwrap()[0];
            let Cell::Json(doc) = cell else {
                panic!("{cell:?}")
            };
            (doc.to_text(), cell.sql_literal())
        })
        .collect();
    let expected = [
        (
            r#"{"a": "base64:type15:VQ=="}"#,
            "JSON_OBJECT(_utf8mb4 X'61', _binary X'55')",
        ),
        (
            r#"{"b": "2012-03-18"}"#,
            "JSON_OBJECT(_utf8mb4 X'62', CAST('2012-03-18' AS DATE))",
        ),
        (
            r#"{"c": "2012-03-18 11:30:45.000000"}"#,
            "JSON_OBJECT(_utf8mb4 X'63', CAST('2012-03-18 11:30:45.000000' AS DATETIME(6)))",
        ),
        (
            r#"{"c": "87:31:46.654321"}"#,
            "JSON_OBJECT(_utf8mb4 X'63', CAST('87:31:46.654321' AS TIME(6)))",
        ),
        (
            r#"{"d": 123.456}"#,
            "JSON_OBJECT(_utf8mb4 X'64', CAST('123.456' AS DECIMAL(6,3)))",
        ),
        (
            r#"{"e": 9.00}"#,
            "JSON_OBJECT(_utf8mb4 X'65', CAST('9.00' AS DECIMAL(11,2)))",
        ),
        (
            r#"{"e": [0, 1, true, false]}"#,
            "CAST(_utf8mb4 X'7B2265223A205B302C20312C20747275652C2066616C73655D7D' AS JSON)",
        ),
        (
            r#"{"e": null}"#,
            "CAST(_utf8mb4 X'7B2265223A206E756C6C7D' AS JSON)",
        ),
    ];
    let docs: Vec<(&str, &str)> = docs.iter().map(|(t, s)| (t.as_str(), s.as_str())).collect();
    assert_eq!(docs, expected);
}

/// rust_mysql_common's vector.binlog (MySQL 9.0.1): VECTOR columns, a MySQL 9 type wraith does
/// not decode (wraith supports MySQL 5.7, 8.0 and 8.4), are refused as unsupported, naming the
/// column, in each of the six rows events.
#[test]
fn vector_columns_9_0_1_are_refused_as_unsupported() {
    let errors = fixture("vector.binlog").replay().errors();
    assert_eq!(errors.len(), 6, "{errors:?}");
    for (_, message) in &errors {
        assert!(
            message
                .contains("column vector_column: unsupported binlog column type MYSQL_TYPE_VECTOR"),
            "{message}"
        );
    }
}

/// rust_mysql_common's binlog_transaction_with_GTID_TAG (MySQL 9.6.0): a transaction under a
/// tagged GTID (GTID_TAGGED_LOG_EVENT, type 42, as MySQL 8.4 writes for `gtid_next =
/// 'AUTOMATIC:<tag>'` too) is handed out with its GTID, `uuid:tag:gno`.
#[test]
fn a_tagged_gtid_9_6_0_names_its_transaction() {
    let replayed = fixture("binlog_transaction_with_GTID_TAG.000001").replay();
    assert_eq!(replayed.errors(), []);
    let gtid = "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3";
    let rows = replayed.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].gtid.as_deref(), Some(gtid));
    assert_eq!(
        rows[0].rows,
        vec![(
            None,
            Some(vec![
                Cell::Int(3),
                Cell::Int(100),
                Cell::Decimal("250.00".into())
            ])
        )]
    );
    let commits: Vec<Option<&str>> = replayed
        .items()
        .into_iter()
        .filter_map(|i| match i {
            StreamItem::Commit(b) => Some(b.gtid.as_deref()),
            _ => None,
        })
        .collect();
    assert_eq!(commits, [Some(gtid)]);
}

/// rust_mysql_common's binlog_transaction_previous_GTID_no_tag (MySQL 8.0.40): a format
/// description, a PREVIOUS_GTIDS event and a rotate: nothing to hand out, nothing refused.
#[test]
fn previous_gtids_8_0_40_without_transactions_hand_out_nothing() {
    let replayed = fixture("binlog_transaction_previous_GTID_no_tag.000001").replay();
    assert_eq!(replayed.errors(), []);
    assert!(replayed.items().is_empty());
    let types: Vec<u8> = replayed.events.iter().map(|h| h.type_code).collect();
    assert_eq!(types, [15, 35, 4]);
}

/// Every value the streamer hands out, from every file, is the value `mysql_common`'s separate
/// decoder reads from the same bytes (within its documented losses).
#[test]
fn every_handed_out_value_matches_mysql_common() {
    let mut compared = 0;
    for fixture in ALL {
        compared += compare_with_mysql_common(fixture, &fixture.replay());
    }
    assert_eq!(compared, 943);
}

/// The column definitions of `columns.tsv` agree with each table map's own optional metadata
/// (names, signedness, character sets, ENUM and SET labels) wherever the file carries it, and
/// with the table map's column count and types (a decoder is built for each).
#[test]
fn every_table_map_agrees_with_the_columns_written_for_it() {
    let mut checked = 0;
    for fixture in ALL {
        let tables = fixture.tables();
        for event in fixture.events() {
            let Ok(Some(EventData::TableMapEvent(tme))) = event.read_data() else {
                continue;
            };
            let name = format!("{}.{}", tme.database_name(), tme.table_name());
            let columns = tables
                .get(&name)
                .unwrap_or_else(|| panic!("{}: no columns for {name}", fixture.name));
            let problems = disagreements_with_table_map(&tme, columns);
            assert!(problems.is_empty(), "{} {name}: {problems:?}", fixture.name);
            let decoder = TableDecoder::new(&tme, columns);
            if fixture.name == "vector.binlog" {
                assert!(matches!(decoder, Err(DecodeError::UnsupportedType { .. })));
            } else {
                decoder.unwrap();
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}
