//! MySQL's binary JSON (JSONB) as it appears in row images, decoded into a plain tree.
//!
//! In: the bytes of one MySQL `JSON` column value (MariaDB stores JSON as `LONGTEXT`, so its values
//! never come here). Out: a [`JsonValue`] that keeps everything the binary form distinguishes:
//! signed vs unsigned integers, doubles, and the "opaque" scalars MySQL embeds in JSON (DECIMAL with
//! its precision and scale, DATE, TIME, DATETIME, TIMESTAMP, and raw binary values).
//!
//! Invariant owned here: [`JsonValue::to_sql`] is an expression that MySQL turns back into the same
//! binary document. Plain documents are written as JSON text (`CAST(... AS JSON)`); a document
//! holding a value that JSON text cannot express (an opaque scalar, an unsigned integer that text
//! would re-parse as signed) is rebuilt with `JSON_OBJECT` / `JSON_ARRAY` and typed `CAST`s.
//!
//! The format is MySQL's `json_binary.h`: a type byte, then objects and arrays as
//! `count, size, key entries, value entries, keys, values` with 2-byte (small) or 4-byte (large)
//! offsets relative to the container, small scalars inlined in their value entry.

use std::fmt::Write as _;

use thiserror::Error;

/// A JSONB document could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JsonbError {
    #[error("truncated JSON binary value (needed {needed} bytes at offset {offset})")]
    Truncated { offset: usize, needed: usize },
    #[error("unknown JSON binary type 0x{0:02x}")]
    UnknownType(u8),
    #[error("unknown JSON literal 0x{0:02x}")]
    UnknownLiteral(u8),
    #[error("JSON string or key is not UTF-8")]
    NotUtf8,
    #[error("malformed opaque JSON value of MySQL type {0}")]
    BadOpaque(u8),
}

/// One decoded JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    String(String),
    Array(Vec<JsonValue>),
    /// Keys in the order the binary form stores them (MySQL's canonical order).
    Object(Vec<(String, JsonValue)>),
    Opaque(Opaque),
}

/// A MySQL scalar embedded in JSON that JSON text cannot express.
#[derive(Debug, Clone, PartialEq)]
pub enum Opaque {
    /// Exact decimal text with the precision and scale it was stored with.
    Decimal {
        text: String,
        precision: u8,
        scale: u8,
    },
    /// `YYYY-MM-DD`.
    Date(String),
    /// `[-]HH:MM:SS.ffffff`.
    Time(String),
    /// `YYYY-MM-DD HH:MM:SS.ffffff`.
    DateTime(String),
    /// `YYYY-MM-DD HH:MM:SS.ffffff`, stored from a TIMESTAMP value.
    Timestamp(String),
    /// Any other MySQL type (binary strings, BIT, YEAR, geometry): the type code and raw bytes.
    Other { type_code: u8, bytes: Vec<u8> },
}

const MYSQL_TYPE_TIMESTAMP: u8 = 7;
const MYSQL_TYPE_DATE: u8 = 10;
const MYSQL_TYPE_TIME: u8 = 11;
const MYSQL_TYPE_DATETIME: u8 = 12;
const MYSQL_TYPE_NEWDECIMAL: u8 = 246;

/// Decodes a whole JSONB document. An empty value is JSON `null` (MySQL writes that for a JSON
/// column that was set to an invalid value by a non-strict insert).
pub fn decode_jsonb(bytes: &[u8]) -> Result<JsonValue, JsonbError> {
    let Some((&type_byte, rest)) = bytes.split_first() else {
        return Ok(JsonValue::Null);
    };
    parse_typed(type_byte, rest, 1)
}

fn slice(data: &[u8], offset: usize, len: usize, base: usize) -> Result<&[u8], JsonbError> {
    data.get(offset..offset.saturating_add(len))
        .ok_or(JsonbError::Truncated {
            offset: base + offset,
            needed: len,
        })
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Reads MySQL's variable-length length: 7 bits per byte, low group first, high bit = more.
fn read_varlen(data: &[u8], base: usize) -> Result<(usize, usize), JsonbError> {
    let mut len: u64 = 0;
    for i in 0..5 {
        let b = *data.get(i).ok_or(JsonbError::Truncated {
            offset: base + i,
            needed: 1,
        })?;
        len |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((len as usize, i + 1));
        }
    }
    Err(JsonbError::Truncated {
        offset: base,
        needed: 5,
    })
}

/// `data` starts right after the type byte; `base` is its offset in the document (for errors).
fn parse_typed(type_byte: u8, data: &[u8], base: usize) -> Result<JsonValue, JsonbError> {
    Ok(match type_byte {
        0x00 => parse_container(data, false, true, base)?,
        0x01 => parse_container(data, true, true, base)?,
        0x02 => parse_container(data, false, false, base)?,
        0x03 => parse_container(data, true, false, base)?,
        0x04 => literal(*slice(data, 0, 1, base)?.first().unwrap_or(&0xff))?,
        0x05 => JsonValue::Int(i64::from(le(slice(data, 0, 2, base)?) as u16 as i16)),
        0x06 => JsonValue::UInt(le(slice(data, 0, 2, base)?)),
        0x07 => JsonValue::Int(i64::from(le(slice(data, 0, 4, base)?) as u32 as i32)),
        0x08 => JsonValue::UInt(le(slice(data, 0, 4, base)?)),
        0x09 => JsonValue::Int(le(slice(data, 0, 8, base)?) as i64),
        0x0a => JsonValue::UInt(le(slice(data, 0, 8, base)?)),
        0x0b => JsonValue::Double(f64::from_bits(le(slice(data, 0, 8, base)?))),
        0x0c => {
            let (len, n) = read_varlen(data, base)?;
            let s = slice(data, n, len, base)?;
            JsonValue::String(String::from_utf8(s.to_vec()).map_err(|_| JsonbError::NotUtf8)?)
        }
        0x0f => {
            let type_code = *slice(data, 0, 1, base)?.first().unwrap_or(&0);
            let (len, n) = read_varlen(&data[1..], base + 1)?;
            let bytes = slice(data, 1 + n, len, base)?;
            JsonValue::Opaque(opaque(type_code, bytes)?)
        }
        t => return Err(JsonbError::UnknownType(t)),
    })
}

fn literal(b: u8) -> Result<JsonValue, JsonbError> {
    match b {
        0x00 => Ok(JsonValue::Null),
        0x01 => Ok(JsonValue::Bool(true)),
        0x02 => Ok(JsonValue::Bool(false)),
        x => Err(JsonbError::UnknownLiteral(x)),
    }
}

fn parse_container(
    data: &[u8],
    large: bool,
    object: bool,
    base: usize,
) -> Result<JsonValue, JsonbError> {
    let w = if large { 4 } else { 2 };
    let count = le(slice(data, 0, w, base)?) as usize;
    let _size = le(slice(data, w, w, base)?) as usize;
    let key_entries = 2 * w;
    let key_entry_len = w + 2;
    let value_entries = key_entries + if object { count * key_entry_len } else { 0 };
    let value_entry_len = 1 + w;
    let mut values = Vec::with_capacity(count);
    for i in 0..count {
        let entry = slice(
            data,
            value_entries + i * value_entry_len,
            value_entry_len,
            base,
        )?;
        let t = entry[0];
        let field = &entry[1..];
        let inlined = matches!(t, 0x04..=0x06) || (large && matches!(t, 0x07 | 0x08));
        let value = if inlined {
            match t {
                0x04 => literal(field[0])?,
                0x05 => JsonValue::Int(i64::from(le(&field[..2]) as u16 as i16)),
                0x06 => JsonValue::UInt(le(&field[..2])),
                0x07 => JsonValue::Int(i64::from(le(&field[..4]) as u32 as i32)),
                _ => JsonValue::UInt(le(&field[..4])),
            }
        } else {
            let offset = le(field) as usize;
            let inner = data.get(offset..).ok_or(JsonbError::Truncated {
                offset: base + offset,
                needed: 1,
            })?;
            parse_typed(t, inner, base + offset)?
        };
        values.push(value);
    }
    if !object {
        return Ok(JsonValue::Array(values));
    }
    let mut members = Vec::with_capacity(count);
    for (i, value) in values.into_iter().enumerate() {
        let entry = slice(data, key_entries + i * key_entry_len, key_entry_len, base)?;
        let offset = le(&entry[..w]) as usize;
        let len = le(&entry[w..]) as usize;
        let key = slice(data, offset, len, base)?;
        let key = String::from_utf8(key.to_vec()).map_err(|_| JsonbError::NotUtf8)?;
        members.push((key, value));
    }
    Ok(JsonValue::Object(members))
}

fn opaque(type_code: u8, bytes: &[u8]) -> Result<Opaque, JsonbError> {
    let bad = || JsonbError::BadOpaque(type_code);
    Ok(match type_code {
        MYSQL_TYPE_NEWDECIMAL => {
            let (&precision, rest) = bytes.split_first().ok_or_else(bad)?;
            let (&scale, rest) = rest.split_first().ok_or_else(bad)?;
            let text = super::value::decode_decimal(rest, precision, scale)
                .map(|(text, _)| text)
                .map_err(|_| bad())?;
            Opaque::Decimal {
                text,
                precision,
                scale,
            }
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_DATETIME | MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIME => {
            let packed = le(bytes.get(..8).ok_or_else(bad)?) as i64;
            match type_code {
                MYSQL_TYPE_TIME => Opaque::Time(packed_time_text(packed)),
                MYSQL_TYPE_DATE => Opaque::Date(packed_datetime_text(packed)[..10].to_string()),
                MYSQL_TYPE_DATETIME => Opaque::DateTime(packed_datetime_text(packed)),
                _ => Opaque::Timestamp(packed_datetime_text(packed)),
            }
        }
        _ => Opaque::Other {
            type_code,
            bytes: bytes.to_vec(),
        },
    })
}

/// MySQL's in-memory packed TIME (`TIME_to_longlong_time_packed`) as `[-]HH:MM:SS.ffffff`.
fn packed_time_text(packed: i64) -> String {
    let negative = packed < 0;
    let p = packed.unsigned_abs();
    let frac = p % (1 << 24);
    let hms = p >> 24;
    format!(
        "{}{:02}:{:02}:{:02}.{:06}",
        if negative { "-" } else { "" },
        (hms >> 12) % (1 << 10),
        (hms >> 6) % (1 << 6),
        hms % (1 << 6),
        frac
    )
}

/// MySQL's in-memory packed DATETIME (`TIME_to_longlong_datetime_packed`).
fn packed_datetime_text(packed: i64) -> String {
    let p = packed.unsigned_abs();
    let frac = p % (1 << 24);
    let ymdhms = p >> 24;
    let ymd = ymdhms >> 17;
    let hms = ymdhms % (1 << 17);
    let ym = ymd >> 5;
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        ym / 13,
        ym % 13,
        ymd % (1 << 5),
        hms >> 12,
        (hms >> 6) % (1 << 6),
        hms % (1 << 6),
        frac
    )
}

impl JsonValue {
    /// About how many bytes of memory this document holds.
    pub fn size_hint(&self) -> usize {
        const NODE: usize = std::mem::size_of::<JsonValue>();
        NODE + match self {
            JsonValue::String(s) => s.len(),
            JsonValue::Array(items) => items.iter().map(JsonValue::size_hint).sum(),
            JsonValue::Object(members) => members
                .iter()
                .map(|(k, v)| k.len() + 24 + v.size_hint())
                .sum(),
            JsonValue::Opaque(Opaque::Other { bytes, .. }) => bytes.len(),
            JsonValue::Opaque(_) => 64,
            _ => 0,
        }
    }

    /// JSON text, in MySQL's own layout (`{"a": 1, "b": [true, null]}`). Opaque values print as
    /// strings (as MySQL prints them), so text alone loses their type: use [`JsonValue::to_sql`]
    /// to write a value back.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) {
        match self {
            JsonValue::Null => out.push_str("null"),
            JsonValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            JsonValue::UInt(u) => {
                let _ = write!(out, "{u}");
            }
            JsonValue::Double(d) => {
                // `{:?}` is the shortest text that parses back to the same bits, and it always
                // has a '.' or an exponent, so MySQL re-parses it as a double.
                let _ = write!(out, "{d:?}");
            }
            JsonValue::String(s) => write_json_string(out, s),
            JsonValue::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_text(out);
                }
                out.push(']');
            }
            JsonValue::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_json_string(out, k);
                    out.push_str(": ");
                    v.write_text(out);
                }
                out.push('}');
            }
            JsonValue::Opaque(o) => match o {
                Opaque::Decimal { text, .. } => out.push_str(text),
                Opaque::Date(s) | Opaque::Time(s) | Opaque::DateTime(s) | Opaque::Timestamp(s) => {
                    write_json_string(out, s)
                }
                Opaque::Other { type_code, bytes } => {
                    write_json_string(out, &format!("base64:type{type_code}:{}", base64(bytes)))
                }
            },
        }
    }

    /// True if JSON text cannot carry this value's exact type.
    fn needs_expression(&self) -> bool {
        match self {
            JsonValue::Opaque(_) => true,
            // Text re-parses a small unsigned integer as a signed one.
            JsonValue::UInt(u) => *u <= i64::MAX as u64,
            JsonValue::Array(items) => items.iter().any(JsonValue::needs_expression),
            JsonValue::Object(members) => members.iter().any(|(_, v)| v.needs_expression()),
            _ => false,
        }
    }

    /// A MySQL expression of type JSON that evaluates to exactly this document.
    pub fn to_sql(&self) -> String {
        if !self.needs_expression() {
            return format!("CAST({} AS JSON)", utf8_literal(self.to_text().as_bytes()));
        }
        match self {
            JsonValue::Array(_) | JsonValue::Object(_) => self.to_sql_arg(),
            // A scalar: build it inside an array and take it out, which keeps its type.
            scalar => format!("JSON_EXTRACT(JSON_ARRAY({}), '$[0]')", scalar.to_sql_arg()),
        }
    }

    /// This value as an argument of `JSON_ARRAY` / `JSON_OBJECT`.
    fn to_sql_arg(&self) -> String {
        match self {
            JsonValue::Null => "CAST('null' AS JSON)".into(),
            JsonValue::Bool(b) => format!("CAST('{b}' AS JSON)"),
            JsonValue::Int(i) => i.to_string(),
            JsonValue::UInt(u) => format!("CAST({u} AS UNSIGNED)"),
            JsonValue::Double(d) => format!("{d:e}"),
            JsonValue::String(s) => utf8_literal(s.as_bytes()),
            JsonValue::Array(items) => {
                let args: Vec<String> = items.iter().map(JsonValue::to_sql_arg).collect();
                format!("JSON_ARRAY({})", args.join(", "))
            }
            JsonValue::Object(members) => {
                let args: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("{}, {}", utf8_literal(k.as_bytes()), v.to_sql_arg()))
                    .collect();
                format!("JSON_OBJECT({})", args.join(", "))
            }
            JsonValue::Opaque(o) => match o {
                Opaque::Decimal {
                    text,
                    precision,
                    scale,
                } => format!("CAST('{text}' AS DECIMAL({precision},{scale}))"),
                Opaque::Date(s) => format!("CAST('{s}' AS DATE)"),
                Opaque::Time(s) => format!("CAST('{s}' AS TIME(6))"),
                Opaque::DateTime(s) | Opaque::Timestamp(s) => {
                    format!("CAST('{s}' AS DATETIME(6))")
                }
                Opaque::Other { bytes, .. } => format!("_binary X'{}'", hex(bytes)),
            },
        }
    }
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn utf8_literal(bytes: &[u8]) -> String {
    format!("_utf8mb4 X'{}'", hex(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    push_hex(&mut s, bytes);
    s
}

/// Appends `bytes` to `out` as upper-case hex digits.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! The fixtures here are hand-built from MySQL's documented JSONB format
    //! (`sql/json_binary.h`), not captured from a server: the sandbox only runs MariaDB.
    use super::*;

    /// A small object `{"a": <value entry>, "bb": ...}` built by hand.
    fn small_object(members: &[(&str, u8, Vec<u8>)]) -> Vec<u8> {
        // header: count(2) size(2); key entries 4 bytes each; value entries 3 bytes each.
        let n = members.len();
        let header = 4 + n * 4 + n * 3;
        let mut keys = Vec::new();
        let mut key_entries = Vec::new();
        for (k, _, _) in members {
            key_entries.extend_from_slice(&((header + keys.len()) as u16).to_le_bytes());
            key_entries.extend_from_slice(&(k.len() as u16).to_le_bytes());
            keys.extend_from_slice(k.as_bytes());
        }
        let mut values = Vec::new();
        let mut value_entries = Vec::new();
        for (_, t, v) in members {
            value_entries.push(*t);
            if matches!(t, 0x04..=0x06) {
                let mut field = v.clone();
                field.resize(2, 0);
                value_entries.extend_from_slice(&field);
            } else {
                let off = header + keys.len() + values.len();
                value_entries.extend_from_slice(&(off as u16).to_le_bytes());
                values.extend_from_slice(v);
            }
        }
        let size = header + keys.len() + values.len();
        let mut out = vec![0x00];
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.extend_from_slice(&(size as u16).to_le_bytes());
        out.extend(key_entries);
        out.extend(value_entries);
        out.extend(keys);
        out.extend(values);
        out
    }

    #[test]
    fn scalars_decode_with_their_exact_types() {
        assert_eq!(decode_jsonb(&[0x04, 0x00]).unwrap(), JsonValue::Null);
        assert_eq!(decode_jsonb(&[0x04, 0x01]).unwrap(), JsonValue::Bool(true));
        assert_eq!(
            decode_jsonb(&[0x05, 0xff, 0xff]).unwrap(),
            JsonValue::Int(-1)
        );
        assert_eq!(
            decode_jsonb(&[0x06, 0xff, 0xff]).unwrap(),
            JsonValue::UInt(65535)
        );
        let mut big = vec![0x0a];
        big.extend_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(decode_jsonb(&big).unwrap(), JsonValue::UInt(u64::MAX));
        let mut d = vec![0x0b];
        d.extend_from_slice(&0.1f64.to_bits().to_le_bytes());
        assert_eq!(decode_jsonb(&d).unwrap().to_text(), "0.1");
        let mut s = vec![0x0c, 3];
        s.extend_from_slice("é\"".as_bytes());
        assert_eq!(decode_jsonb(&s).unwrap().to_text(), r#""é\"""#);
        assert_eq!(decode_jsonb(&[]).unwrap(), JsonValue::Null);
    }

    #[test]
    fn objects_with_inlined_and_offset_values_decode() {
        let mut string = vec![2];
        string.extend_from_slice(b"hi");
        let doc = small_object(&[
            ("a", 0x05, vec![0xfe, 0xff]),
            ("b", 0x04, vec![0x02]),
            ("cc", 0x0c, string),
        ]);
        let v = decode_jsonb(&doc).unwrap();
        assert_eq!(v.to_text(), r#"{"a": -2, "b": false, "cc": "hi"}"#);
        assert_eq!(
            v.to_sql(),
            format!("CAST(_utf8mb4 X'{}' AS JSON)", hex(v.to_text().as_bytes()))
        );
    }

    #[test]
    fn long_strings_use_multi_byte_lengths() {
        let text = "x".repeat(200);
        let mut doc = vec![0x0c, 0xc8, 0x01];
        doc.extend_from_slice(text.as_bytes());
        assert_eq!(decode_jsonb(&doc).unwrap(), JsonValue::String(text));
    }

    #[test]
    fn opaque_decimal_and_temporal_values_are_rebuilt_with_typed_casts() {
        // DECIMAL(5,2) -12.50: binary decimal of precision 5, scale 2.
        let dec = [0x7f, 0xf3, 0xcd]; // -12.50 as MySQL binary decimal(5,2)
        let mut opaque_dec = vec![246, 2 + dec.len() as u8, 5, 2];
        opaque_dec.extend_from_slice(&dec);
        // DATETIME 2021-03-04 05:06:07.000008 packed.
        let ymd: i64 = ((2021 * 13 + 3) << 5) | 4;
        let hms: i64 = (5 << 12) | (6 << 6) | 7;
        let packed = (((ymd << 17) | hms) << 24) + 8;
        let mut opaque_dt = vec![12, 8];
        opaque_dt.extend_from_slice(&packed.to_le_bytes());
        // TIME -01:02:03.5 packed (negative packed value).
        let t: i64 = -((((1 << 12) | (2 << 6) | 3) << 24) + 500_000);
        let mut opaque_t = vec![11, 8];
        opaque_t.extend_from_slice(&t.to_le_bytes());
        let doc = small_object(&[
            ("d", 0x0f, opaque_dec),
            ("t", 0x0f, opaque_t),
            ("w", 0x0f, opaque_dt),
        ]);
        let v = decode_jsonb(&doc).unwrap();
        assert_eq!(
            v.to_text(),
            r#"{"d": -12.50, "t": "-01:02:03.500000", "w": "2021-03-04 05:06:07.000008"}"#
        );
        assert_eq!(
            v.to_sql(),
            "JSON_OBJECT(_utf8mb4 X'64', CAST('-12.50' AS DECIMAL(5,2)), \
             _utf8mb4 X'74', CAST('-01:02:03.500000' AS TIME(6)), \
             _utf8mb4 X'77', CAST('2021-03-04 05:06:07.000008' AS DATETIME(6)))"
        );
    }

    #[test]
    fn small_unsigned_scalars_keep_their_type() {
        let v = decode_jsonb(&[0x06, 0x05, 0x00]).unwrap();
        assert_eq!(
            v.to_sql(),
            "JSON_EXTRACT(JSON_ARRAY(CAST(5 AS UNSIGNED)), '$[0]')"
        );
    }

    #[test]
    fn large_arrays_use_four_byte_offsets() {
        // [int32 inlined 70000, double 2.5] as a large array.
        let header = 8 + 2 * 5;
        let mut doc = vec![0x03];
        doc.extend_from_slice(&2u32.to_le_bytes());
        doc.extend_from_slice(&((header + 8) as u32).to_le_bytes());
        doc.push(0x07);
        doc.extend_from_slice(&70000i32.to_le_bytes());
        doc.push(0x0b);
        doc.extend_from_slice(&(header as u32).to_le_bytes());
        doc.extend_from_slice(&2.5f64.to_bits().to_le_bytes());
        assert_eq!(decode_jsonb(&doc).unwrap().to_text(), "[70000, 2.5]");
    }

    #[test]
    fn truncated_documents_are_errors_not_panics() {
        assert!(decode_jsonb(&[0x00, 0x05]).is_err());
        assert!(decode_jsonb(&[0x0c, 0x05, b'a']).is_err());
        assert!(decode_jsonb(&[0x42]).is_err());
    }
}
