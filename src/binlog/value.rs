//! Row images of the binary log, decoded into exact values, and those values written back as SQL.
//!
//! In: a rows event (`mysql_async::binlog` types), the table map event that describes its table,
//! and the table's columns as `information_schema.COLUMNS` describes them ([`ColumnInfo`]): the
//! binlog alone does not say whether an integer is unsigned, what an ENUM's labels are, what
//! character set a string is in, or how long a BINARY(n) is.
//! Out: for each changed row, its before and/or after image as a `Vec<Cell>`, one [`Cell`] per
//! column; and [`Cell::sql_literal`], the one place in wraith that turns a binlog value into SQL.
//!
//! Invariant owned here: a decoded value written with `sql_literal` into a column of the same type
//! (by a session with `time_zone = '+00:00'` and a `sql_mode` that allows zero dates) stores the
//! very same bytes the source row holds. Nothing goes through floating point or text re-encoding:
//! DECIMAL is decoded from its binary form to exact text, FLOAT/DOUBLE keep their bits, strings stay
//! bytes and are written as hex with their character set's introducer, temporals keep every
//! fractional digit of their column's precision.
//!
//! The row-image layout and every type's storage format follow MySQL's `log_event.cc` /
//! `my_time.cc` / `decimal.c` (MariaDB uses the same formats for the types it shares). The
//! decoding is done here, not by `mysql_common`'s `BinlogValue`, because that one is lossy for
//! several types (unsigned integers without `binlog_row_metadata=FULL`, YEAR 0, BINARY padding,
//! TIMESTAMP precision, JSON through `serde_json`).

use std::fmt::Write as _;

use mysql_async::binlog::events::{RowsEventData, TableMapEvent};
use mysql_async::consts::ColumnType;
use thiserror::Error;

use super::json::{self, JsonValue};

/// A row image could not be decoded.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error(
        "table {table}: the binlog has {binlog} columns but wraith knows {known}; \
         the table definition changed since it was inspected (restart the migration)"
    )]
    ColumnCount {
        table: String,
        binlog: usize,
        known: usize,
    },
    #[error(
        "table {table}, column `{column}`: the binlog says type {binlog_type:?} but the table \
         definition says `{data_type}`; the table definition changed since it was inspected"
    )]
    ColumnType {
        table: String,
        column: String,
        binlog_type: ColumnType,
        data_type: String,
    },
    #[error("table {table}, column {column}: unsupported binlog column type {binlog_type}")]
    UnsupportedType {
        table: String,
        column: String,
        binlog_type: String,
    },
    #[error("table {table}: bad table map: {detail}")]
    BadTableMap { table: String, detail: String },
    #[error(
        "table {table}: the row image does not hold every column; wraith needs \
         binlog_row_image=FULL on the server whose binlog it reads"
    )]
    PartialImage { table: String },
    #[error(
        "table {table}: partial JSON update event; wraith needs \
         binlog_row_value_options='' (full JSON images)"
    )]
    PartialJson { table: String },
    #[error("table {table}, column `{column}`: row image is truncated or malformed: {detail}")]
    Malformed {
        table: String,
        column: String,
        detail: String,
    },
    #[error("table {table}, column `{column}`: bad JSON value: {source}")]
    Json {
        table: String,
        column: String,
        source: json::JsonbError,
    },
}

/// One column of the source table, as `information_schema.COLUMNS` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// `COLUMN_NAME`.
    pub name: String,
    /// `DATA_TYPE`, lower case: `int`, `varchar`, `enum`, `json`, `binary`, `longtext` ...
    pub data_type: String,
    /// `COLUMN_TYPE` contains `unsigned`.
    pub unsigned: bool,
    /// `CHARACTER_SET_NAME`; `None` for binary strings and non-string types.
    pub charset: Option<String>,
    /// ENUM or SET labels in definition order, parsed from `COLUMN_TYPE`.
    pub labels: Vec<String>,
    /// `CHARACTER_MAXIMUM_LENGTH`: for BINARY(n), n (the length the binlog's value is padded back
    /// to).
    pub max_length: Option<u64>,
    /// `DATETIME_PRECISION` (0 when absent).
    pub fsp: u8,
    /// A virtual or stored generated column (`EXTRA` says `VIRTUAL`/`STORED`/`PERSISTENT`).
    /// Its value is decoded like any other; the writer must never write it.
    pub generated: bool,
}

impl ColumnInfo {
    /// Builds a column from `information_schema.COLUMNS` (`COLUMN_NAME, DATA_TYPE, COLUMN_TYPE,
    /// CHARACTER_SET_NAME, CHARACTER_MAXIMUM_LENGTH, DATETIME_PRECISION, EXTRA`), as
    /// `inspect::schema::TableSchema::read` reads it.
    pub fn from_information_schema(
        column_name: &str,
        data_type: &str,
        column_type: &str,
        character_set_name: Option<&str>,
        character_maximum_length: Option<u64>,
        datetime_precision: Option<u64>,
        extra: &str,
    ) -> ColumnInfo {
        let data_type = data_type.to_ascii_lowercase();
        let lower_type = column_type.to_ascii_lowercase();
        let labels = if data_type == "enum" || data_type == "set" {
            parse_labels(column_type)
        } else {
            Vec::new()
        };
        let extra = extra.to_ascii_uppercase();
        ColumnInfo {
            name: column_name.to_string(),
            unsigned: lower_type.contains("unsigned"),
            charset: character_set_name
                .filter(|c| !c.eq_ignore_ascii_case("binary"))
                .map(str::to_string),
            labels,
            max_length: character_maximum_length,
            fsp: datetime_precision.unwrap_or(0).min(6) as u8,
            generated: extra.contains("VIRTUAL")
                || extra.contains("STORED")
                || extra.contains("PERSISTENT"),
            data_type,
        }
    }
}

/// Labels of `enum('a','b''c')` / `set(...)`: quoted, with a quote written as two.
fn parse_labels(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    let mut labels = Vec::new();
    let mut chars = column_type[open + 1..].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                Some('\'') | None => break,
                Some(c) => label.push(c),
            }
        }
        labels.push(label);
    }
    labels
}

/// One decoded column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    /// A signed integer of any size.
    Int(i64),
    /// An unsigned integer of any size.
    UInt(u64),
    Float(f32),
    Double(f64),
    /// Exact decimal text, with as many fractional digits as the column's scale.
    Decimal(String),
    /// A string or blob: its bytes as stored, in `charset` (`None`: a binary string).
    Bytes {
        bytes: Vec<u8>,
        charset: Option<String>,
    },
    /// A DATE; zero parts are kept (`0000-00-00`, `2020-00-00`).
    Date {
        year: u16,
        month: u8,
        day: u8,
    },
    /// A DATETIME with its column's precision `fsp` (0..=6) and the microseconds.
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micro: u32,
        fsp: u8,
    },
    /// A TIMESTAMP: seconds since the epoch (0 is the zero timestamp) plus microseconds.
    Timestamp {
        seconds: u32,
        micro: u32,
        fsp: u8,
    },
    /// A TIME, which may be negative and up to 838 hours.
    Time {
        negative: bool,
        hours: u16,
        minutes: u8,
        seconds: u8,
        micro: u32,
        fsp: u8,
    },
    /// A YEAR; 0 is the zero year `0000`.
    Year(u16),
    /// An ENUM: its 1-based index (0: the empty error value) and label (`None` when the index is
    /// not a known label).
    Enum {
        index: u16,
        label: Option<String>,
    },
    /// A SET: its bitmap and the labels of the bits that are set.
    Set {
        bits: u64,
        labels: Vec<String>,
    },
    /// A BIT(n) value, big-endian, (n + 7) / 8 bytes.
    Bit(Vec<u8>),
    /// A MySQL JSON value (MariaDB's JSON is LONGTEXT and decodes to [`Cell::Bytes`]).
    Json(JsonValue),
}

impl Cell {
    /// A SQL literal that the server parses back to this exact value when stored in a column of
    /// the same type (or a compatible altered one). Assumes the writing session has
    /// `time_zone = '+00:00'` and a `sql_mode` that allows zero dates.
    pub fn sql_literal(&self) -> String {
        let mut out = String::new();
        self.write_sql_literal(&mut out);
        out
    }

    /// Appends [`Cell::sql_literal`] to `out`: a string's bytes go straight into the statement
    /// being built, as hex, with no copy of their own.
    pub fn write_sql_literal(&self, out: &mut String) {
        match self {
            Cell::Bytes { bytes, charset } => write_string_literal(out, bytes, charset.as_deref()),
            Cell::Json(value) => out.push_str(&value.to_sql()),
            other => out.push_str(&other.scalar_literal()),
        }
    }

    /// About how many bytes of memory this value holds (its literal takes about twice as many
    /// for a string, written as hex): what batches and held events are measured in.
    pub fn size_hint(&self) -> usize {
        const CELL: usize = std::mem::size_of::<Cell>();
        CELL + match self {
            Cell::Bytes { bytes, .. } => bytes.len(),
            Cell::Decimal(text) => text.len(),
            Cell::Enum { label, .. } => label.as_ref().map_or(0, String::len),
            Cell::Set { labels, .. } => labels.iter().map(|l| l.len() + 24).sum(),
            Cell::Bit(bytes) => bytes.len(),
            Cell::Json(value) => value.size_hint(),
            _ => 0,
        }
    }

    /// The literal of a value that is not a string or JSON document (short).
    fn scalar_literal(&self) -> String {
        match self {
            Cell::Null => "NULL".into(),
            Cell::Int(i) => i.to_string(),
            Cell::UInt(u) => u.to_string(),
            // Exponent notation makes the server read a DOUBLE (not a DECIMAL, which has a
            // 65-digit limit); the shortest round-trip text of the f64 (exactly holding the f32)
            // parses back to the same bits.
            Cell::Float(f) => format!("{:e}", f64::from(*f)),
            Cell::Double(d) => format!("{d:e}"),
            Cell::Decimal(text) => text.clone(),
            Cell::Bytes { bytes, charset } => string_literal(bytes, charset.as_deref()),
            Cell::Date { year, month, day } => format!("'{year:04}-{month:02}-{day:02}'"),
            Cell::DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                micro,
                fsp,
            } => format!(
                "'{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}{}'",
                fraction(*micro, *fsp)
            ),
            Cell::Timestamp {
                seconds,
                micro,
                fsp,
            } => {
                if *seconds == 0 && *micro == 0 {
                    return format!("'0000-00-00 00:00:00{}'", fraction(0, *fsp));
                }
                let (y, mo, d, h, mi, s) = civil_from_unix(i64::from(*seconds));
                format!(
                    "'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}'",
                    fraction(*micro, *fsp)
                )
            }
            Cell::Time {
                negative,
                hours,
                minutes,
                seconds,
                micro,
                fsp,
            } => format!(
                "'{}{hours:02}:{minutes:02}:{seconds:02}{}'",
                if *negative { "-" } else { "" },
                fraction(*micro, *fsp)
            ),
            // A number: 0 stores the zero year, a string '0000' would too but '0' would not.
            Cell::Year(y) => y.to_string(),
            Cell::Enum { index, label } => match label {
                Some(label) => string_literal(label.as_bytes(), Some("utf8mb4")),
                // The empty error value (index 0) or an index past the known labels: write the
                // index, which the server maps to the same member.
                None => index.to_string(),
            },
            Cell::Set { labels, .. } => {
                string_literal(labels.join(",").as_bytes(), Some("utf8mb4"))
            }
            Cell::Bit(bytes) => {
                let mut bits = String::new();
                for b in bytes {
                    let _ = write!(bits, "{b:08b}");
                }
                let trimmed = bits.trim_start_matches('0');
                format!("b'{}'", if trimmed.is_empty() { "0" } else { trimmed })
            }
            Cell::Json(value) => value.to_sql(),
        }
    }
}

/// `_<charset> X'<hex>'`, or `_binary X'<hex>'` for a binary string.
fn string_literal(bytes: &[u8], charset: Option<&str>) -> String {
    let mut out = String::new();
    write_string_literal(&mut out, bytes, charset);
    out
}

/// Appends [`string_literal`] to `out`, reserving its exact length first.
fn write_string_literal(out: &mut String, bytes: &[u8], charset: Option<&str>) {
    let charset = charset.unwrap_or("binary");
    out.reserve(charset.len() + 4 + bytes.len() * 2 + 1);
    out.push('_');
    out.push_str(charset);
    out.push_str(" X'");
    json::push_hex(out, bytes);
    out.push('\'');
}

fn fraction(micro: u32, fsp: u8) -> String {
    if fsp == 0 {
        return String::new();
    }
    let digits = format!("{micro:06}");
    format!(".{}", &digits[..usize::from(fsp.min(6))])
}

/// Seconds since the epoch to a UTC calendar date and time (Howard Hinnant's civil_from_days).
fn civil_from_unix(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

/// What kind of row change an event holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Insert,
    Update,
    Delete,
}

/// One changed row: the before image (updates, deletes) and the after image (inserts, updates).
pub type RowImages = (Option<Vec<Cell>>, Option<Vec<Cell>>);

/// About how many bytes of memory the row images of one event hold ([`Cell::size_hint`]).
pub fn images_size_hint(rows: &[RowImages]) -> usize {
    rows.iter()
        .flat_map(|(before, after)| [before, after])
        .flatten()
        .map(|image| 24 + image.iter().map(Cell::size_hint).sum::<usize>())
        .sum()
}

/// How to read one column's value out of a row image.
#[derive(Debug, Clone, PartialEq)]
enum Codec {
    Int {
        size: usize,
        unsigned: bool,
    },
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Bit {
        bytes: usize,
    },
    Enum {
        size: usize,
    },
    Set {
        size: usize,
    },
    /// CHAR/BINARY: a 1- or 2-byte length; BINARY(n) is padded back to `pad` bytes with 0x00.
    Char {
        wide: bool,
        pad: Option<usize>,
    },
    /// VARCHAR/VARBINARY: a 1- or 2-byte length.
    VarChar {
        wide: bool,
    },
    /// BLOB/TEXT/GEOMETRY (and MariaDB's JSON): a 1..4-byte length.
    Blob {
        len_bytes: usize,
    },
    /// MySQL JSON: a 1..4-byte length, then JSONB.
    Json {
        len_bytes: usize,
    },
    Date,
    /// The pre-5.6 TIME (3 bytes, HHMMSS as an integer).
    OldTime,
    Time2 {
        fsp: u8,
    },
    /// The pre-5.6 DATETIME (8 bytes, YYYYMMDDHHMMSS as an integer).
    OldDateTime,
    DateTime2 {
        fsp: u8,
    },
    /// The pre-5.6 TIMESTAMP (4 bytes of seconds).
    OldTimestamp,
    Timestamp2 {
        fsp: u8,
    },
    Year,
}

#[derive(Debug, Clone)]
struct ColumnDecoder {
    codec: Codec,
    info: ColumnInfo,
}

/// Decodes the rows events of one table; built once per table map, reused for each rows event.
#[derive(Debug, Clone)]
pub struct TableDecoder {
    /// `schema.table`, for messages.
    name: String,
    columns: Vec<ColumnDecoder>,
}

impl TableDecoder {
    /// Matches the table map's columns with `columns` (the table's definition) and prepares how to
    /// read each. Fails if they do not describe the same table.
    pub fn new(tme: &TableMapEvent<'_>, columns: &[ColumnInfo]) -> Result<Self, DecodeError> {
        let name = format!("{}.{}", tme.database_name(), tme.table_name());
        let count = tme.columns_count() as usize;
        if count != columns.len() {
            return Err(DecodeError::ColumnCount {
                table: name,
                binlog: count,
                known: columns.len(),
            });
        }
        let mut decoders = Vec::with_capacity(count);
        for (i, info) in columns.iter().enumerate() {
            let raw_type = tme
                .get_raw_column_type(i)
                .map_err(|e| DecodeError::UnsupportedType {
                    table: name.clone(),
                    column: info.name.clone(),
                    binlog_type: e.to_string(),
                })?
                .ok_or_else(|| DecodeError::BadTableMap {
                    table: name.clone(),
                    detail: format!("no type for column {i}"),
                })?;
            // (Quadratic in the column count, but a decoder is built once per table map.)
            let meta = tme
                .get_column_metadata(i)
                .ok_or_else(|| DecodeError::BadTableMap {
                    table: name.clone(),
                    detail: format!("metadata of column {i} is truncated"),
                })?;
            let codec = codec_for(raw_type, meta, info).map_err(|no_codec| match no_codec {
                NoCodec::Contradicts(binlog_type) => DecodeError::ColumnType {
                    table: name.clone(),
                    column: info.name.clone(),
                    binlog_type,
                    data_type: info.data_type.clone(),
                },
                NoCodec::Unsupported(binlog_type) => DecodeError::UnsupportedType {
                    table: name.clone(),
                    column: info.name.clone(),
                    binlog_type: format!("{binlog_type:?}"),
                },
            })?;
            decoders.push(ColumnDecoder {
                codec,
                info: info.clone(),
            });
        }
        Ok(TableDecoder {
            name,
            columns: decoders,
        })
    }

    /// The table's columns, as given to [`TableDecoder::new`].
    pub fn columns(&self) -> impl Iterator<Item = &ColumnInfo> {
        self.columns.iter().map(|c| &c.info)
    }

    /// Decodes every row of a rows event of this table.
    pub fn decode(
        &self,
        rows: &RowsEventData<'_>,
    ) -> Result<(RowKind, Vec<RowImages>), DecodeError> {
        let kind = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                RowKind::Insert
            }
            RowsEventData::UpdateRowsEventV1(_) | RowsEventData::UpdateRowsEvent(_) => {
                RowKind::Update
            }
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                RowKind::Delete
            }
            RowsEventData::PartialUpdateRowsEvent(_) => {
                return Err(DecodeError::PartialJson {
                    table: self.name.clone(),
                })
            }
        };
        let n = self.columns.len();
        if rows.num_columns() as usize != n {
            return Err(DecodeError::ColumnCount {
                table: self.name.clone(),
                binlog: rows.num_columns() as usize,
                known: n,
            });
        }
        // The column bitmaps are already cut to the column count.
        let before = rows.columns_before_image().map(|b| b.count_ones() == n);
        let after = rows.columns_after_image().map(|b| b.count_ones() == n);
        if before == Some(false) || after == Some(false) {
            return Err(DecodeError::PartialImage {
                table: self.name.clone(),
            });
        }
        let data = rows.rows_data();
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < data.len() {
            let b = if before.is_some() {
                Some(self.decode_image(data, &mut pos)?)
            } else {
                None
            };
            let a = if after.is_some() {
                Some(self.decode_image(data, &mut pos)?)
            } else {
                None
            };
            out.push((b, a));
        }
        Ok((kind, out))
    }

    /// One image: a null bitmap over all columns, then each non-null value.
    fn decode_image(&self, data: &[u8], pos: &mut usize) -> Result<Vec<Cell>, DecodeError> {
        let n = self.columns.len();
        let bitmap_len = n.div_ceil(8);
        let bitmap = data
            .get(*pos..*pos + bitmap_len)
            .ok_or_else(|| DecodeError::Malformed {
                table: self.name.clone(),
                column: "(null bitmap)".into(),
                detail: "row image ends in its null bitmap".into(),
            })?;
        *pos += bitmap_len;
        let mut cells = Vec::with_capacity(n);
        for (i, col) in self.columns.iter().enumerate() {
            if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                cells.push(Cell::Null);
                continue;
            }
            let mut reader = Reader { data, pos: *pos };
            let cell = decode_value(&col.codec, &col.info, &mut reader).map_err(|e| match e {
                ValueError::Truncated => DecodeError::Malformed {
                    table: self.name.clone(),
                    column: col.info.name.clone(),
                    detail: format!("value ends past the row image (offset {})", *pos),
                },
                ValueError::Bad(detail) => DecodeError::Malformed {
                    table: self.name.clone(),
                    column: col.info.name.clone(),
                    detail,
                },
                ValueError::Json(source) => DecodeError::Json {
                    table: self.name.clone(),
                    column: col.info.name.clone(),
                    source,
                },
            })?;
            *pos = reader.pos;
            cells.push(cell);
        }
        Ok(cells)
    }
}

/// Decodes all rows of `rows` (a rows event of the table `tme` maps) with the table's `columns`.
/// The streamer builds a [`TableDecoder`] once per table map instead.
pub fn decode_rows(
    rows: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
    columns: &[ColumnInfo],
) -> Result<(RowKind, Vec<RowImages>), DecodeError> {
    TableDecoder::new(tme, columns)?.decode(rows)
}

/// Why a column has no codec.
enum NoCodec {
    /// The binlog's type contradicts the table definition.
    Contradicts(ColumnType),
    /// A type wraith does not decode (MySQL 9's VECTOR, or types no row image holds).
    Unsupported(ColumnType),
}

/// Picks the codec for a column.
fn codec_for(raw_type: ColumnType, meta: &[u8], info: &ColumnInfo) -> Result<Codec, NoCodec> {
    use ColumnType::*;
    let dt = info.data_type.as_str();
    let fits = |allowed: &[&str]| allowed.contains(&dt);
    let m0 = meta.first().copied().unwrap_or(0);
    let m1 = meta.get(1).copied().unwrap_or(0);
    let (codec, ok) = match raw_type {
        MYSQL_TYPE_TINY => (
            Codec::Int {
                size: 1,
                unsigned: info.unsigned,
            },
            fits(&["tinyint", "bool", "boolean"]),
        ),
        MYSQL_TYPE_SHORT => (
            Codec::Int {
                size: 2,
                unsigned: info.unsigned,
            },
            fits(&["smallint"]),
        ),
        MYSQL_TYPE_INT24 => (
            Codec::Int {
                size: 3,
                unsigned: info.unsigned,
            },
            fits(&["mediumint"]),
        ),
        MYSQL_TYPE_LONG => (
            Codec::Int {
                size: 4,
                unsigned: info.unsigned,
            },
            fits(&["int", "integer"]),
        ),
        MYSQL_TYPE_LONGLONG => (
            Codec::Int {
                size: 8,
                unsigned: info.unsigned,
            },
            fits(&["bigint"]),
        ),
        MYSQL_TYPE_FLOAT => (Codec::Float, fits(&["float"])),
        MYSQL_TYPE_DOUBLE => (Codec::Double, fits(&["double", "real", "double precision"])),
        MYSQL_TYPE_NEWDECIMAL => (
            Codec::Decimal {
                precision: m0,
                scale: m1,
            },
            fits(&["decimal", "numeric"]),
        ),
        MYSQL_TYPE_BIT => (
            Codec::Bit {
                bytes: (usize::from(m1) * 8 + usize::from(m0)).div_ceil(8),
            },
            fits(&["bit"]),
        ),
        MYSQL_TYPE_STRING | MYSQL_TYPE_ENUM | MYSQL_TYPE_SET => {
            // The real type hides in the metadata; for CHAR longer than 255 bytes, two bits of
            // the length are folded into the real-type byte (MySQL bug #37426).
            let (real, max_len) = if m0 != 0 && (m0 & 0x30) != 0x30 {
                (
                    m0 | 0x30,
                    usize::from(m1) | ((usize::from(m0 & 0x30) ^ 0x30) << 4),
                )
            } else if m0 != 0 {
                (m0, usize::from(m1))
            } else {
                (raw_type as u8, usize::from(m1))
            };
            match real {
                0xf7 => (
                    Codec::Enum {
                        size: usize::from(m1),
                    },
                    fits(&["enum"]),
                ),
                0xf8 => (
                    Codec::Set {
                        size: usize::from(m1),
                    },
                    fits(&["set"]),
                ),
                _ => {
                    let pad = (dt == "binary")
                        .then(|| info.max_length.map(|n| n as usize))
                        .flatten();
                    (
                        Codec::Char {
                            wide: max_len > 255,
                            pad,
                        },
                        // MariaDB's INET6/UUID/INET4 are fixed binary strings underneath.
                        !fits(&["enum", "set"]) && !is_numeric_or_temporal(dt),
                    )
                }
            }
        }
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
            let max_len = usize::from(m0) | (usize::from(m1) << 8);
            (
                Codec::VarChar {
                    wide: max_len > 255,
                },
                fits(&[
                    "varchar",
                    "varbinary",
                    "char",
                    "binary",
                    "inet4",
                    "inet6",
                    "uuid",
                ]),
            )
        }
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => (
            Codec::Blob {
                len_bytes: usize::from(m0),
            },
            dt.ends_with("text") || dt.ends_with("blob") || dt == "json" || dt == "long",
        ),
        MYSQL_TYPE_GEOMETRY => (
            Codec::Blob {
                len_bytes: usize::from(m0),
            },
            !is_numeric_or_temporal(dt),
        ),
        MYSQL_TYPE_JSON => (
            Codec::Json {
                len_bytes: usize::from(m0),
            },
            fits(&["json"]),
        ),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => (Codec::Date, fits(&["date"])),
        MYSQL_TYPE_TIME => (Codec::OldTime, fits(&["time"])),
        MYSQL_TYPE_TIME2 => (Codec::Time2 { fsp: m0.min(6) }, fits(&["time"])),
        MYSQL_TYPE_DATETIME => (Codec::OldDateTime, fits(&["datetime"])),
        MYSQL_TYPE_DATETIME2 => (Codec::DateTime2 { fsp: m0.min(6) }, fits(&["datetime"])),
        MYSQL_TYPE_TIMESTAMP => (Codec::OldTimestamp, fits(&["timestamp"])),
        MYSQL_TYPE_TIMESTAMP2 => (Codec::Timestamp2 { fsp: m0.min(6) }, fits(&["timestamp"])),
        MYSQL_TYPE_YEAR => (Codec::Year, fits(&["year"])),
        other => return Err(NoCodec::Unsupported(other)),
    };
    if ok {
        Ok(codec)
    } else {
        Err(NoCodec::Contradicts(raw_type))
    }
}

fn is_numeric_or_temporal(dt: &str) -> bool {
    matches!(
        dt,
        "tinyint"
            | "smallint"
            | "mediumint"
            | "int"
            | "integer"
            | "bigint"
            | "float"
            | "double"
            | "decimal"
            | "numeric"
            | "bit"
            | "date"
            | "time"
            | "datetime"
            | "timestamp"
            | "year"
    )
}

enum ValueError {
    Truncated,
    Bad(String),
    Json(json::JsonbError),
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        let s = self
            .data
            .get(self.pos..self.pos.checked_add(n).ok_or(ValueError::Truncated)?)
            .ok_or(ValueError::Truncated)?;
        self.pos += n;
        Ok(s)
    }

    fn le(&mut self, n: usize) -> Result<u64, ValueError> {
        Ok(self
            .take(n)?
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn be(&mut self, n: usize) -> Result<u64, ValueError> {
        Ok(be(self.take(n)?))
    }
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

fn decode_value(codec: &Codec, info: &ColumnInfo, r: &mut Reader<'_>) -> Result<Cell, ValueError> {
    Ok(match *codec {
        Codec::Int { size, unsigned } => {
            let raw = r.le(size)?;
            if unsigned {
                Cell::UInt(raw)
            } else {
                // Sign-extend from `size` bytes (3 for MEDIUMINT).
                let shift = 64 - 8 * size as u32;
                Cell::Int(((raw << shift) as i64) >> shift)
            }
        }
        Codec::Float => Cell::Float(f32::from_bits(r.le(4)? as u32)),
        Codec::Double => Cell::Double(f64::from_bits(r.le(8)?)),
        Codec::Decimal { precision, scale } => {
            let rest = &r.data[r.pos..];
            let (text, used) = decode_decimal(rest, precision, scale).map_err(ValueError::Bad)?;
            r.pos += used;
            Cell::Decimal(text)
        }
        Codec::Bit { bytes } => Cell::Bit(r.take(bytes)?.to_vec()),
        Codec::Enum { size } => {
            let index = r.le(size)? as u16;
            let label = usize::from(index)
                .checked_sub(1)
                .and_then(|i| info.labels.get(i))
                .cloned();
            Cell::Enum { index, label }
        }
        Codec::Set { size } => {
            let bits = r.le(size)?;
            let labels = info
                .labels
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 64 && bits & (1 << i) != 0)
                .map(|(_, l)| l.clone())
                .collect();
            Cell::Set { bits, labels }
        }
        Codec::Char { wide, pad } => {
            let len = r.le(if wide { 2 } else { 1 })? as usize;
            let mut bytes = r.take(len)?.to_vec();
            if let Some(n) = pad {
                if bytes.len() < n {
                    bytes.resize(n, 0);
                }
            }
            Cell::Bytes {
                bytes,
                charset: info.charset.clone(),
            }
        }
        Codec::VarChar { wide } => {
            let len = r.le(if wide { 2 } else { 1 })? as usize;
            Cell::Bytes {
                bytes: r.take(len)?.to_vec(),
                charset: info.charset.clone(),
            }
        }
        Codec::Blob { len_bytes } => {
            if !(1..=4).contains(&len_bytes) {
                return Err(ValueError::Bad(format!("blob length size {len_bytes}")));
            }
            let len = r.le(len_bytes)? as usize;
            Cell::Bytes {
                bytes: r.take(len)?.to_vec(),
                charset: info.charset.clone(),
            }
        }
        Codec::Json { len_bytes } => {
            if !(1..=4).contains(&len_bytes) {
                return Err(ValueError::Bad(format!("JSON length size {len_bytes}")));
            }
            let len = r.le(len_bytes)? as usize;
            Cell::Json(json::decode_jsonb(r.take(len)?).map_err(ValueError::Json)?)
        }
        Codec::Date => {
            let v = r.le(3)?;
            Cell::Date {
                year: (v >> 9) as u16,
                month: ((v >> 5) & 15) as u8,
                day: (v & 31) as u8,
            }
        }
        Codec::OldTime => {
            let raw = r.le(3)?;
            let v = ((raw << 40) as i64) >> 40;
            let a = v.unsigned_abs();
            Cell::Time {
                negative: v < 0,
                hours: (a / 10000) as u16,
                minutes: ((a / 100) % 100) as u8,
                seconds: (a % 100) as u8,
                micro: 0,
                fsp: 0,
            }
        }
        Codec::Time2 { fsp } => {
            let packed = time2_packed(r, fsp)?;
            let negative = packed < 0;
            let p = packed.unsigned_abs();
            let hms = p >> 24;
            Cell::Time {
                negative,
                hours: ((hms >> 12) % (1 << 10)) as u16,
                minutes: ((hms >> 6) % (1 << 6)) as u8,
                seconds: (hms % (1 << 6)) as u8,
                micro: (p % (1 << 24)) as u32,
                fsp,
            }
        }
        Codec::OldDateTime => {
            let v = r.le(8)?;
            let (d, t) = (v / 1_000_000, v % 1_000_000);
            Cell::DateTime {
                year: (d / 10000) as u16,
                month: ((d / 100) % 100) as u8,
                day: (d % 100) as u8,
                hour: (t / 10000) as u8,
                minute: ((t / 100) % 100) as u8,
                second: (t % 100) as u8,
                micro: 0,
                fsp: 0,
            }
        }
        Codec::DateTime2 { fsp } => {
            let int_part = r.be(5)? as i64 - 0x80_0000_0000;
            let micro = read_fraction(r, fsp)?;
            let ymdhms = int_part.unsigned_abs();
            let ymd = ymdhms >> 17;
            let hms = ymdhms % (1 << 17);
            let ym = ymd >> 5;
            Cell::DateTime {
                year: (ym / 13) as u16,
                month: (ym % 13) as u8,
                day: (ymd % 32) as u8,
                hour: (hms >> 12) as u8,
                minute: ((hms >> 6) % 64) as u8,
                second: (hms % 64) as u8,
                micro,
                fsp,
            }
        }
        Codec::OldTimestamp => Cell::Timestamp {
            seconds: r.le(4)? as u32,
            micro: 0,
            fsp: 0,
        },
        Codec::Timestamp2 { fsp } => Cell::Timestamp {
            seconds: r.be(4)? as u32,
            micro: read_fraction(r, fsp)?,
            fsp,
        },
        Codec::Year => {
            let y = r.le(1)? as u16;
            Cell::Year(if y == 0 { 0 } else { 1900 + y })
        }
    })
}

/// The fractional part of DATETIME2/TIMESTAMP2, in microseconds (big-endian, (fsp+1)/2 bytes).
fn read_fraction(r: &mut Reader<'_>, fsp: u8) -> Result<u32, ValueError> {
    Ok(match fsp {
        0 => 0,
        1 | 2 => r.be(1)? as u32 * 10_000,
        3 | 4 => r.be(2)? as u32 * 100,
        _ => r.be(3)? as u32,
    })
}

/// TIME2 as MySQL's packed in-memory integer (`my_time_packed_from_binary`).
fn time2_packed(r: &mut Reader<'_>, fsp: u8) -> Result<i64, ValueError> {
    const INT_OFS: i64 = 0x80_0000;
    Ok(match fsp {
        0 => (r.be(3)? as i64 - INT_OFS) << 24,
        1 | 2 => {
            let mut int_part = r.be(3)? as i64 - INT_OFS;
            let mut frac = r.be(1)? as i64;
            if int_part < 0 && frac != 0 {
                int_part += 1;
                frac -= 0x100;
            }
            (int_part << 24) + frac * 10_000
        }
        3 | 4 => {
            let mut int_part = r.be(3)? as i64 - INT_OFS;
            let mut frac = r.be(2)? as i64;
            if int_part < 0 && frac != 0 {
                int_part += 1;
                frac -= 0x10000;
            }
            (int_part << 24) + frac * 100
        }
        _ => r.be(6)? as i64 - 0x8000_0000_0000,
    })
}

/// Decodes MySQL's binary DECIMAL(precision, scale) at the start of `data`: exact text and the
/// number of bytes it took.
pub(crate) fn decode_decimal(
    data: &[u8],
    precision: u8,
    scale: u8,
) -> Result<(String, usize), String> {
    const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    if scale > precision || precision == 0 || precision > 65 {
        return Err(format!("bad DECIMAL({precision},{scale}) metadata"));
    }
    let intg = usize::from(precision - scale);
    let frac = usize::from(scale);
    let (intg0, intg0x) = (intg / 9, intg % 9);
    let (frac0, frac0x) = (frac / 9, frac % 9);
    let size = intg0 * 4 + DIG2BYTES[intg0x] + frac0 * 4 + DIG2BYTES[frac0x];
    let raw = data
        .get(..size)
        .ok_or_else(|| format!("DECIMAL needs {size} bytes, {} left", data.len()))?;
    let mut bytes = raw.to_vec();
    let negative = bytes[0] & 0x80 == 0;
    bytes[0] ^= 0x80;
    if negative {
        for b in &mut bytes {
            *b = !*b;
        }
    }
    let mut pos = 0;
    let mut group = |n: usize| {
        let v = be(&bytes[pos..pos + n]);
        pos += n;
        v
    };
    let mut int_digits = String::new();
    if intg0x > 0 {
        let _ = write!(int_digits, "{}", group(DIG2BYTES[intg0x]));
    }
    for _ in 0..intg0 {
        let _ = write!(int_digits, "{:09}", group(4));
    }
    let int_digits = int_digits.trim_start_matches('0');
    let mut frac_digits = String::new();
    for _ in 0..frac0 {
        let _ = write!(frac_digits, "{:09}", group(4));
    }
    if frac0x > 0 {
        let _ = write!(
            frac_digits,
            "{:0width$}",
            group(DIG2BYTES[frac0x]),
            width = frac0x
        );
    }
    let is_zero = int_digits.is_empty() && frac_digits.bytes().all(|b| b == b'0');
    let mut text = String::new();
    if negative && !is_zero {
        text.push('-');
    }
    text.push_str(if int_digits.is_empty() {
        "0"
    } else {
        int_digits
    });
    if frac > 0 {
        text.push('.');
        text.push_str(&frac_digits);
    }
    Ok((text, size))
}

#[cfg(test)]
#[path = "value_tests.rs"]
mod tests;
