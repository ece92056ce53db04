//! A spool record on disk, `<seq>\t<json>\n`: encoding, decoding, and the
//! rules that decide which lines of a segment are records to deliver (see
//! "Damage found on open" in the module above). Pure functions over bytes; the files
//! are in `segment`.

use std::fmt;

/// The highest sequence number a record may have (so that `seq + 1` never
/// overflows anywhere).
pub const MAX_SEQ: u64 = u64::MAX / 2;

/// The longest line (a record and its header) the spool writes or reads;
/// a longer line on disk is skipped without being held in memory.
pub const MAX_LINE: usize = 64 << 20;

/// Why a line of a segment is not a record to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// No `<digits>\t` header, or a number of 0 or above [`MAX_SEQ`].
    BadSeq,
    NotUtf8,
    NotJsonObject,
    /// Longer than [`MAX_LINE`].
    TooLong,
    /// The segment ends inside the line (a record torn by a crash, when it is
    /// the last segment).
    NoNewline,
    /// Not above the record before it in the segment (or, first, below the
    /// segment's name).
    NotAfter {
        seq: u64,
        floor: u64,
    },
    /// Not below the next segment's name.
    NotBelowNext {
        seq: u64,
        next_segment: u64,
    },
    /// Not below the next line's sequence number, which is itself in order:
    /// this one is the odd one out.
    AboveNext {
        seq: u64,
        next: u64,
    },
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::BadSeq => f.write_str("no valid sequence number"),
            Defect::NotUtf8 => f.write_str("not UTF-8"),
            Defect::NotJsonObject => f.write_str("not a JSON object"),
            Defect::TooLong => write!(f, "longer than {} MiB", MAX_LINE >> 20),
            Defect::NoNewline => f.write_str("cut short (no newline)"),
            Defect::NotAfter { seq, floor } => {
                write!(f, "sequence number {seq} is not above {floor}")
            }
            Defect::NotBelowNext { seq, next_segment } => write!(
                f,
                "sequence number {seq} is not below the next segment's {next_segment}"
            ),
            Defect::AboveNext { seq, next } => {
                write!(
                    f,
                    "sequence number {seq} is not below the next record's {next}"
                )
            }
        }
    }
}

/// What a skipped line of a segment costs: the records in it that can be
/// told apart, or the bytes in which they cannot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Records lost, counted by their headers.
    pub records: u64,
    /// Bytes of a damaged stretch in which records cannot be told apart
    /// (the records in them are lost, and not counted in `records`).
    pub bytes: u64,
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, other: Cost) {
        self.records += other.records;
        self.bytes += other.bytes;
    }
}

/// What skipping a line costs (`line` without its newline, `len` its length
/// on disk with it; see [`decode`] for `newline` and `too_long`). Every
/// record has exactly one tab, after its number, and no other byte below
/// 0x20 (JSON escapes them), so: a line of text (valid UTF-8, no control
/// byte but tabs, with its newline) is whole records, one per tab and at
/// least one; any other line (a NUL or another control byte, not UTF-8,
/// cut short, too long to hold) is a damaged stretch: its bytes are
/// counted, and the records whose header is still in it.
pub fn cost(line: &[u8], len: u64, newline: bool, too_long: bool) -> Cost {
    let tabs = line.iter().filter(|&&b| b == b'\t').count() as u64;
    let text = newline
        && !too_long
        && !line.iter().any(|&b| b < 0x20 && b != b'\t')
        && std::str::from_utf8(line).is_ok();
    if text {
        Cost {
            records: tabs.max(1),
            bytes: 0,
        }
    } else {
        Cost {
            records: tabs,
            bytes: len,
        }
    }
}

/// The line of a record, with its newline.
pub fn encode(seq: u64, json: &str) -> String {
    let mut line = String::with_capacity(json.len() + 22);
    line.push_str(itoa(seq, &mut [0; 20]));
    line.push('\t');
    line.push_str(json);
    line.push('\n');
    line
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("digits")
}

/// What `append` checks of a record before writing it, in O(1) but for
/// the newline search: a JSON object's braces, no newline, not too long.
/// (The reader checks that it is a JSON object for real; a text that only
/// looks like one is skipped as corrupt when read.)
pub fn check_new(json: &str) -> Result<(), &'static str> {
    if !(json.starts_with('{') && json.ends_with('}')) {
        return Err("not a JSON object");
    }
    if json.len() + 22 > MAX_LINE {
        return Err("too long");
    }
    if memchr(b'\n', json.as_bytes()).is_some() {
        return Err("contains a newline");
    }
    Ok(())
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// A sequence number: 1 to 20 ASCII digits, from 1 to [`MAX_SEQ`].
pub fn parse_seq(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (1..=MAX_SEQ).contains(&n).then_some(n)
}

/// The sequence number in a line's header, whatever follows the tab.
pub fn seq_prefix(line: &[u8]) -> Option<u64> {
    let tab = line.iter().take(21).position(|&b| b == b'\t')?;
    parse_seq(&line[..tab])
}

/// Decodes a line read from a segment (`line` without its newline;
/// `newline`: whether it had one; `too_long`: it was longer than
/// [`MAX_LINE`] and `line` is empty).
pub fn decode(line: &[u8], newline: bool, too_long: bool) -> Result<(u64, &str), Defect> {
    if too_long {
        return Err(Defect::TooLong);
    }
    if !newline {
        return Err(Defect::NoNewline);
    }
    let seq = seq_prefix(line).ok_or(Defect::BadSeq)?;
    let tab = line
        .iter()
        .position(|&b| b == b'\t')
        .expect("seq_prefix found it");
    let json = std::str::from_utf8(&line[tab + 1..]).map_err(|_| Defect::NotUtf8)?;
    if !is_json_object(json) {
        return Err(Defect::NotJsonObject);
    }
    Ok((seq, json))
}

/// One JSON object and nothing else (no surrounding white space either).
/// Nested deeper than 128 levels counts as not JSON (serde_json's limit).
pub fn is_json_object(text: &str) -> bool {
    text.starts_with('{')
        && text.ends_with('}')
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// The order rule for a line that decoded to `seq`: above `floor` (the last
/// record kept in the segment, or the segment's name minus one), below
/// `next_segment` (the next segment's name, if any).
pub fn check_order(seq: u64, floor: u64, next_segment: Option<u64>) -> Result<(), Defect> {
    if seq <= floor {
        return Err(Defect::NotAfter { seq, floor });
    }
    if let Some(next_segment) = next_segment
        && seq >= next_segment
    {
        return Err(Defect::NotBelowNext { seq, next_segment });
    }
    Ok(())
}

/// The look-ahead rule: `next` is the sequence number in the header of the
/// next line of the segment (if it has a header and a newline). A record in
/// order whose successor is in order too but not above it is skipped: one
/// changed digit must not make every later record look out of order.
pub fn check_next(seq: u64, floor: u64, next: Option<u64>) -> Result<(), Defect> {
    match next {
        Some(next) if floor < next && next <= seq => Err(Defect::AboveNext { seq, next }),
        _ => Ok(()),
    }
}

/// The reference reader: what a spool made of these segment files (name,
/// content) and this acknowledged sequence number delivers, and what the
/// lines it skips cost, computed on whole files in memory by the rules
/// alone. The spool's streaming reader must agree with it (tests, fuzzing).
#[cfg(any(test, fuzzing))]
pub fn reference(segments: &[(u64, &[u8])], acked: u64) -> (Vec<(u64, String)>, Cost) {
    let mut out = Vec::new();
    let mut corrupt = Cost::default();
    let count = segments.len();
    for (k, &(name, bytes)) in segments.iter().enumerate() {
        let next_segment = segments.get(k + 1).map(|s| s.0);
        if next_segment.is_some_and(|n| n - 1 <= acked) {
            continue; // acknowledged whole: deleted unread
        }
        let mut lines: Vec<(&[u8], bool)> = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    lines.push((&rest[..i], true));
                    rest = &rest[i + 1..];
                }
                None => {
                    lines.push((rest, false));
                    rest = &[];
                }
            }
        }
        if k + 1 == count && lines.last().is_some_and(|l| !l.1) {
            lines.pop(); // torn tail: truncated, not counted
        }
        let mut floor = name.saturating_sub(1);
        for (i, &(line, newline)) in lines.iter().enumerate() {
            let too_long = line.len() + 1 > MAX_LINE;
            let len = line.len() as u64 + u64::from(newline);
            let verdict = decode(line, newline, too_long).and_then(|(seq, json)| {
                check_order(seq, floor, next_segment)?;
                let next = lines
                    .get(i + 1)
                    .filter(|l| l.1 && l.0.len() < MAX_LINE)
                    .and_then(|l| seq_prefix(l.0));
                check_next(seq, floor, next)?;
                Ok((seq, json))
            });
            match verdict {
                Ok((seq, json)) => {
                    floor = seq;
                    if seq > acked {
                        out.push((seq, json.to_string()));
                    }
                }
                Err(_) if too_long => corrupt += cost(&[], len, newline, true),
                Err(_) => corrupt += cost(line, len, newline, false),
            }
        }
    }
    (out, corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_decode() {
        let line = encode(42, "{\"a\":\"é\\t\"}");
        assert_eq!(line, "42\t{\"a\":\"é\\t\"}\n");
        let bytes = line.as_bytes();
        assert_eq!(
            decode(&bytes[..bytes.len() - 1], true, false),
            Ok((42, "{\"a\":\"é\\t\"}"))
        );
        assert_eq!(encode(MAX_SEQ, "{}"), format!("{MAX_SEQ}\t{{}}\n"));
        assert_eq!(encode(1, "{}"), "1\t{}\n");
    }

    #[test]
    fn what_decoding_refuses() {
        let cases: [(&[u8], Defect); 12] = [
            (b"", Defect::BadSeq),
            (b"\t{}", Defect::BadSeq),
            (b"x1\t{}", Defect::BadSeq),
            (b"0\t{}", Defect::BadSeq),
            (b"9223372036854775808\t{}", Defect::BadSeq),
            (b"123456789012345678901\t{}", Defect::BadSeq),
            (b"1{}", Defect::BadSeq),
            (b"1\t\"\xff\"", Defect::NotUtf8),
            (b"1\t[]", Defect::NotJsonObject),
            (b"1\t{} ", Defect::NotJsonObject),
            (b"1\t{\"a\":1}x{}", Defect::NotJsonObject),
            (b"1\t{\"a\":}", Defect::NotJsonObject),
        ];
        for (line, defect) in cases {
            assert_eq!(decode(line, true, false), Err(defect), "{line:?}");
        }
        assert_eq!(decode(b"1\t{}", false, false), Err(Defect::NoNewline));
        assert_eq!(decode(b"", true, true), Err(Defect::TooLong));
        assert_eq!(
            decode(b"00000000000000000007\t{}", true, false),
            Ok((7, "{}"))
        );
        assert_eq!(
            decode(b"9223372036854775807\t{}", true, false),
            Ok((MAX_SEQ, "{}"))
        );
    }

    #[test]
    fn new_records_are_checked_cheaply() {
        assert!(check_new("{}").is_ok());
        assert!(check_new("{\"a\":\"\\n\"}").is_ok());
        assert!(check_new("{\n}").is_err());
        assert!(check_new("[]").is_err());
        assert!(check_new("").is_err());
        assert!(check_new(" {}").is_err());
    }

    #[test]
    fn the_order_rules() {
        assert!(check_order(5, 4, None).is_ok());
        assert!(check_order(4, 4, None).is_err());
        assert!(check_order(5, 4, Some(6)).is_ok());
        assert!(check_order(6, 4, Some(6)).is_err());
        // A jump above an in-order successor is the odd one out...
        assert!(check_next(90, 4, Some(6)).is_err());
        // ... but not when the successor is itself out of order, or higher.
        assert!(check_next(90, 4, Some(3)).is_ok());
        assert!(check_next(90, 4, Some(91)).is_ok());
        assert!(
            check_next(90, 4, Some(90)).is_err(),
            "a duplicate: the first goes"
        );
        assert!(check_next(90, 4, None).is_ok());
    }

    #[test]
    fn the_reference_reader() {
        let seg1: &[u8] = b"1\t{}\n2\t{\"a\":1}\nbad\n4\t{}\n";
        let seg5: &[u8] = b"5\t{}\n70\t{}\n6\t{}\n7\t{}\n8\t{";
        let (records, corrupt) = reference(&[(1, seg1), (5, seg5)], 0);
        let seqs: Vec<u64> = records.iter().map(|r| r.0).collect();
        assert_eq!(seqs, vec![1, 2, 4, 5, 6, 7]);
        let two = Cost {
            records: 2,
            bytes: 0,
        };
        assert_eq!(corrupt, two, "`bad` and 70; the torn tail is not counted");
        // Acknowledged up to 2: still counted.
        assert_eq!(reference(&[(1, seg1), (5, seg5)], 2).1, two);
        // Acknowledged up to 4: the first segment is gone unread.
        let (records, corrupt) = reference(&[(1, seg1), (5, seg5)], 4);
        assert_eq!(records.len(), 3);
        assert_eq!(corrupt.records, 1);
    }

    #[test]
    fn what_a_skipped_line_costs() {
        let records = |records| Cost { records, bytes: 0 };
        // Lines of text: whole records, one per header, at least one.
        assert_eq!(cost(b"1\t{\"a\":}", 10, true, false), records(1));
        assert_eq!(cost(b"garbage", 8, true, false), records(1));
        // Two records whose newline was changed: two headers.
        assert_eq!(cost(b"5\t{}x6\t{}", 11, true, false), records(2));
        // 4 KiB zeroed inside records: the bytes, and the header left.
        let mut zeroed = b"7\t{\"pad\":\"".to_vec();
        zeroed.extend_from_slice(&[0; 4096]);
        zeroed.extend_from_slice(b"xx\"}");
        let len = zeroed.len() as u64 + 1;
        assert_eq!(
            cost(&zeroed, len, true, false),
            Cost {
                records: 1,
                bytes: len
            }
        );
        // Not UTF-8, cut short, too long: bytes.
        assert_eq!(cost(b"2\t{\"\xff\"}", 9, true, false).bytes, 9);
        assert_eq!(
            cost(b"3\t{\"a", 6, false, false),
            Cost {
                records: 1,
                bytes: 6
            }
        );
        assert_eq!(
            cost(b"", 99, true, true),
            Cost {
                records: 0,
                bytes: 99
            }
        );
    }
}
