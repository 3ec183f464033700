//! Reading captured binlog files in unit tests: their events, the inner events of a compressed
//! transaction payload, and the column definitions (`information_schema.COLUMNS` rows) kept beside
//! them. Used by `value_tests.rs` (the MariaDB fixture) and `mysql_fixture_tests.rs` (the files
//! written by real MySQL servers).

use std::collections::HashMap;
use std::io::Read;

use mysql_async::binlog::events::{
    BinlogEventFooter, Event, FormatDescriptionEvent, TransactionPayloadEvent,
};
use mysql_async::binlog::{BinlogChecksumAlg, BinlogVersion};

use super::ColumnInfo;

/// The format description event's type code.
const FORMAT_DESCRIPTION: u8 = 15;

/// Reads a binlog file's events (after the 4-byte magic) the way the driver reads a stream: each
/// event with the format description in force, the format description replaced when one arrives.
/// Every event's CRC32 (the decoder does not check it) is checked here, so a damaged fixture
/// fails loudly instead of decoding to something else.
pub(crate) fn read_events(file: &[u8]) -> Vec<Event> {
    assert_eq!(&file[..4], b"\xfebin", "not a binlog file");
    let mut fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    let mut pos = 4;
    let mut events = Vec::new();
    while pos < file.len() {
        let size = u32::from_le_bytes(file[pos + 9..pos + 13].try_into().unwrap()) as usize;
        let event = Event::read(&fde, &file[pos..pos + size])
            .unwrap_or_else(|e| panic!("event at {pos}: {e}"));
        if event.header().event_type_raw() == FORMAT_DESCRIPTION {
            fde = event
                .read_event::<FormatDescriptionEvent<'_>>()
                .unwrap()
                .into_owned()
                .with_footer(event.footer());
        }
        if let (Ok(Some(alg)), Some(stored)) = (event.footer().get_checksum_alg(), event.checksum())
        {
            if alg == BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32 {
                assert_eq!(
                    event.calc_checksum(alg),
                    u32::from_le_bytes(stored),
                    "checksum of the event at {pos}"
                );
            }
        }
        events.push(event);
        pos += size;
    }
    events
}

/// The events inside a MySQL transaction payload (type 40), decompressed and read as the driver
/// reads them (`EventStreamReader::read_decompressed`: the format description of the file, with
/// checksums off, as inner events carry none).
pub(crate) fn payload_events(payload: &Event) -> Vec<Event> {
    let tpe: TransactionPayloadEvent<'_> = payload.read_event().unwrap();
    let mut bytes = Vec::new();
    tpe.decompressed().unwrap().read_to_end(&mut bytes).unwrap();
    let mut footer: BinlogEventFooter = payload.fde().footer();
    footer.set_checksum_enabled(false);
    let fde = payload.fde().clone().with_footer(footer);
    let mut pos = 0;
    let mut events = Vec::new();
    while pos < bytes.len() {
        let size = u32::from_le_bytes(bytes[pos + 9..pos + 13].try_into().unwrap()) as usize;
        events.push(Event::read(&fde, &bytes[pos..pos + size]).unwrap());
        pos += size;
    }
    events
}

/// Column definitions, one `information_schema.COLUMNS` row per line, tab-separated; `#` starts a
/// comment line. The last seven fields are `COLUMN_NAME, DATA_TYPE, COLUMN_TYPE,
/// CHARACTER_SET_NAME, CHARACTER_MAXIMUM_LENGTH, DATETIME_PRECISION, EXTRA` (`\N` for NULL); the
/// fields before them name the table, and are the key (joined with `/`) of its columns, which
/// follow in ordinal order.
pub(crate) fn columns_tsv(text: &str) -> HashMap<String, Vec<ColumnInfo>> {
    let mut out: HashMap<String, Vec<ColumnInfo>> = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert!(f.len() > 7, "too few fields: {line:?}");
        let (key, c) = f.split_at(f.len() - 7);
        let opt = |s: &str| (s != "\\N").then(|| s.to_string());
        let num = |s: &str| opt(s).map(|n| n.parse::<u64>().unwrap());
        out.entry(key.join("/"))
            .or_default()
            .push(ColumnInfo::from_information_schema(
                c[0],
                c[1],
                c[2],
                opt(c[3]).as_deref(),
                num(c[4]),
                num(c[5]),
                c[6],
            ));
    }
    out
}
