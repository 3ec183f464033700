//! XA transactions in the binlog: which events open, prepare, commit and roll back one, and the
//! XA transaction id (xid) that ties the prepare to its commit or rollback.
//!
//! In: a QUERY event's text, an XA_PREPARE event's payload, a MariaDB GTID event's flags. Out:
//! [`XaQuery`] and [`Xid`]. Both servers log an XA transaction in two event groups: at
//! `XA PREPARE`, its changes, ending in an XA_PREPARE event (type 38) that carries the xid; later,
//! alone, a QUERY `XA COMMIT <xid>` or `XA ROLLBACK <xid>`, the xid written as
//! `X'<gtrid hex>',X'<bqual hex>',<formatID>`. They open the first group differently: MySQL with a
//! QUERY `XA START <xid>`, MariaDB (10.5 and later) with a GTID event flagged `FL_PREPARED_XA`.
//! MySQL logs `XA COMMIT ... ONE PHASE` as an XA_PREPARE event flagged one-phase (the changes
//! are committed there); MariaDB logs it as an ordinary transaction.
//!
//! Invariant owned by the streamer with these: the changes of an XA transaction are handed out at
//! its commit, never at its prepare, and never after a rollback.

/// An XA transaction id: format id, global transaction id and branch qualifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xid {
    pub format_id: i64,
    pub gtrid: Vec<u8>,
    pub bqual: Vec<u8>,
}

impl std::fmt::Display for Xid {
    /// As the servers write it: `X'6131',X'',1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "X'{}',X'{}',{}",
            super::json::hex(&self.gtrid),
            super::json::hex(&self.bqual),
            self.format_id
        )
    }
}

/// MariaDB's GTID event flag (byte 12 of its payload): the group is an XA transaction's prepare.
pub const MARIADB_FL_PREPARED_XA: u8 = 0x40;

/// An XA_PREPARE event's payload: one-phase flag (1 byte), format id (4), gtrid length (4), bqual
/// length (4), then gtrid and bqual. Returns (one phase, xid).
pub fn read_prepare(data: &[u8]) -> Result<(bool, Xid), String> {
    let word = |at: usize| -> Result<u32, String> {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
            .ok_or_else(|| format!("{} bytes", data.len()))
    };
    let one_phase = *data.first().ok_or("no payload")? != 0;
    let format_id = i64::from(word(1)? as i32);
    let (gtrid_len, bqual_len) = (word(5)? as usize, word(9)? as usize);
    if gtrid_len > 64 || bqual_len > 64 {
        return Err(format!("xid lengths {gtrid_len} and {bqual_len}"));
    }
    let ids = data.get(13..13 + gtrid_len + bqual_len).ok_or_else(|| {
        format!(
            "{} bytes for an xid of {}",
            data.len(),
            gtrid_len + bqual_len
        )
    })?;
    Ok((
        one_phase,
        Xid {
            format_id,
            gtrid: ids[..gtrid_len].to_vec(),
            bqual: ids[gtrid_len..].to_vec(),
        },
    ))
}

/// An XA statement as the binlog holds it in a QUERY event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XaQuery {
    /// `XA START` (MySQL only): the changes that follow belong to an XA transaction.
    Start,
    /// `XA END`: the XA transaction's changes are over; its XA_PREPARE event follows.
    End,
    /// `XA PREPARE` as a QUERY (the servers read here write an XA_PREPARE event instead).
    Prepare(Xid),
    Commit(Xid),
    Rollback(Xid),
}

impl XaQuery {
    /// Reads a QUERY event's text; `None` if it is not an XA statement. `Err` for an XA
    /// COMMIT or ROLLBACK whose xid cannot be read (the changes could not be matched).
    pub fn read(query: &str) -> Option<Result<XaQuery, String>> {
        let text = query.trim_start();
        let mut words = text.splitn(3, |c: char| c.is_ascii_whitespace());
        if !words.next()?.eq_ignore_ascii_case("XA") {
            return None;
        }
        let verb = words.next()?.to_ascii_uppercase();
        let rest = words.next().unwrap_or("");
        let xid = || read_xid(rest).ok_or_else(|| format!("cannot read the xid of {query:?}"));
        Some(match verb.as_str() {
            "START" | "BEGIN" => Ok(XaQuery::Start),
            "END" => Ok(XaQuery::End),
            "PREPARE" => xid().map(XaQuery::Prepare),
            "COMMIT" => xid().map(XaQuery::Commit),
            "ROLLBACK" => xid().map(XaQuery::Rollback),
            _ => return None,
        })
    }
}

/// Reads `gtrid [, bqual [, formatID]]` as the servers write it (`X'hex'`), or as a user may
/// (`'text'`, `0xhex`), followed by nothing but an optional `ONE PHASE` / `SUSPEND`.
fn read_xid(text: &str) -> Option<Xid> {
    let mut rest = text.trim();
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut format_id = 1;
    for i in 0..3 {
        if i > 0 {
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None => break,
            }
        }
        if i == 2 {
            let end = rest
                .find(|c: char| !c.is_ascii_digit() && c != '-')
                .unwrap_or(rest.len());
            format_id = rest[..end].parse().ok()?;
            rest = rest[end..].trim_start();
            break;
        }
        let (bytes, after) = read_string(rest)?;
        parts.push(bytes);
        rest = after.trim_start();
    }
    let tail = rest.to_ascii_uppercase();
    if !(tail.is_empty() || tail == "ONE PHASE" || tail == "SUSPEND") {
        return None;
    }
    let mut parts = parts.into_iter();
    Some(Xid {
        format_id,
        gtrid: parts.next()?,
        bqual: parts.next().unwrap_or_default(),
    })
}

/// One xid part: `X'hex'`, `0xhex` or `'text'` (quotes doubled); returns its bytes and the text
/// after it.
fn read_string(text: &str) -> Option<(Vec<u8>, &str)> {
    let hex = |digits: &str| -> Option<Vec<u8>> {
        if !digits.len().is_multiple_of(2) {
            return None;
        }
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
            .collect()
    };
    if let Some(r) = text
        .strip_prefix(['X', 'x'])
        .and_then(|r| r.strip_prefix('\''))
    {
        let end = r.find('\'')?;
        return Some((hex(&r[..end])?, &r[end + 1..]));
    }
    if let Some(r) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        let end = r.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(r.len());
        return Some((hex(&r[..end])?, &r[end..]));
    }
    let r = text.strip_prefix('\'')?;
    let mut out = Vec::new();
    let mut chars = r.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
            } else {
                return Some((out, &r[i + 1..]));
            }
        }
        let mut buf = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn xid(gtrid: &[u8], bqual: &[u8], format_id: i64) -> Xid {
        Xid {
            format_id,
            gtrid: gtrid.to_vec(),
            bqual: bqual.to_vec(),
        }
    }

    /// An XA_PREPARE payload as both servers write it.
    pub fn prepare_payload(one_phase: bool, x: &Xid) -> Vec<u8> {
        let mut b = vec![u8::from(one_phase)];
        b.extend_from_slice(&(x.format_id as i32).to_le_bytes());
        b.extend_from_slice(&(x.gtrid.len() as u32).to_le_bytes());
        b.extend_from_slice(&(x.bqual.len() as u32).to_le_bytes());
        b.extend_from_slice(&x.gtrid);
        b.extend_from_slice(&x.bqual);
        b
    }

    #[test]
    fn the_xid_of_a_prepare_event_is_read_with_its_one_phase_flag() {
        let x = xid(b"x2", b"b2", 7);
        assert_eq!(
            read_prepare(&prepare_payload(false, &x)),
            Ok((false, x.clone()))
        );
        assert_eq!(
            read_prepare(&prepare_payload(true, &x)),
            Ok((true, x.clone()))
        );
        let cut = prepare_payload(false, &x);
        assert!(read_prepare(&cut[..cut.len() - 1]).is_err());
        assert!(read_prepare(&[]).is_err());
    }

    #[test]
    fn xa_statements_are_read_as_the_servers_log_them() {
        let x = xid(b"x2", b"b2", 7);
        assert_eq!(x.to_string(), "X'7832',X'6232',7");
        assert_eq!(
            XaQuery::read("XA COMMIT X'7832',X'6232',7"),
            Some(Ok(XaQuery::Commit(x.clone())))
        );
        assert_eq!(
            XaQuery::read("xa rollback X'7831',X'',1"),
            Some(Ok(XaQuery::Rollback(xid(b"x1", b"", 1))))
        );
        // MySQL opens the transaction with a QUERY; both close it with XA END.
        assert_eq!(
            XaQuery::read("XA START X'7831',X'',1"),
            Some(Ok(XaQuery::Start))
        );
        assert_eq!(
            XaQuery::read("XA END X'7831',X'',1"),
            Some(Ok(XaQuery::End))
        );
        // As a user may write it.
        assert_eq!(
            XaQuery::read("XA COMMIT 'it''s', 0x00ff, 3"),
            Some(Ok(XaQuery::Commit(xid(b"it's", &[0, 0xff], 3))))
        );
        assert_eq!(
            XaQuery::read("XA COMMIT 'a' ONE PHASE"),
            Some(Ok(XaQuery::Commit(xid(b"a", b"", 1))))
        );
        assert_eq!(
            XaQuery::read("XA PREPARE X'7831',X'',1"),
            Some(Ok(XaQuery::Prepare(xid(b"x1", b"", 1))))
        );
        assert!(matches!(XaQuery::read("XA COMMIT X'7"), Some(Err(_))));
        assert_eq!(XaQuery::read("COMMIT"), None);
        assert_eq!(XaQuery::read("XACT"), None);
        assert_eq!(XaQuery::read("XA RECOVER"), None);
    }
}
