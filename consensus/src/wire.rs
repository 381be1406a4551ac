//! Byte encodings for the network: frames `[len u32][crc32 u32][payload]`, protocol
//! [`Message`]s, and the small client protocol of `consensus-node`.
//!
//! Decoding never panics and never trusts a length: garbage gives an `Err` naming what
//! was wrong, and the caller drops the frame (or the connection, if framing is lost).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codec::{put_ballot, put_bytes, put_entries, put_snapshot, Reader};
use crate::types::{Ballot, Entry, Message, Snapshot};

/// Largest frame accepted (a batch of `max_batch` commands fits easily).
pub const MAX_FRAME: usize = 64 << 20;

/// Appends one frame holding `payload`.
pub fn put_frame(out: &mut BytesMut, payload: &[u8]) {
    out.put_u32(payload.len() as u32);
    out.put_u32(crc32fast::hash(payload));
    out.put_slice(payload);
}

/// What [`take_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole frame with a good checksum.
    Good(Bytes),
    /// A whole frame whose checksum does not match: drop it, the stream stays in step.
    Damaged,
    /// Not enough bytes yet.
    Incomplete,
}

/// Takes one frame off the front of `buf`. `Err`: the length is impossible, framing is
/// lost and the connection must close.
pub fn take_frame(buf: &mut BytesMut) -> Result<Frame, String> {
    if buf.len() < 8 {
        return Ok(Frame::Incomplete);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME {
        return Err(format!(
            "frame of {len} bytes is over the {MAX_FRAME} limit"
        ));
    }
    if buf.len() < 8 + len {
        buf.reserve(8 + len - buf.len());
        return Ok(Frame::Incomplete);
    }
    let crc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    buf.advance(8);
    let payload = buf.split_to(len).freeze();
    if crc32fast::hash(&payload) != crc {
        return Ok(Frame::Damaged);
    }
    Ok(Frame::Good(payload))
}

/// The fields both phase-2a messages carry.
fn read_accept(r: &mut Reader) -> Result<(Ballot, u64, Vec<Entry>, u64, u64), String> {
    Ok((r.ballot()?, r.u64()?, r.entries()?, r.u64()?, r.u64()?))
}

fn read_snapshot(r: &mut Reader) -> Result<Option<Snapshot>, String> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.snapshot()?)),
        f => Err(format!("bad snapshot flag {f}")),
    }
}

fn put_opt_snapshot(out: &mut BytesMut, s: Option<&Snapshot>) {
    match s {
        None => out.put_u8(0),
        Some(s) => {
            out.put_u8(1);
            put_snapshot(out, s);
        }
    }
}

fn put_accept(
    out: &mut BytesMut,
    tag: u8,
    ballot: Ballot,
    from: u64,
    entries: &[Entry],
    decided: u64,
    seq: u64,
) {
    out.put_u8(tag);
    put_ballot(out, ballot);
    out.put_u64(from);
    put_entries(out, entries);
    out.put_u64(decided);
    out.put_u64(seq);
}

/// Encodes a protocol message.
pub fn encode_message(m: &Message, out: &mut BytesMut) {
    match m {
        Message::Prepare {
            ballot,
            decided,
            accepted_round,
            log_len,
        } => {
            out.put_u8(1);
            put_ballot(out, *ballot);
            out.put_u64(*decided);
            put_ballot(out, *accepted_round);
            out.put_u64(*log_len);
        }
        Message::Promise {
            ballot,
            accepted_round,
            decided,
            log_len,
            suffix_from,
            suffix,
            snapshot,
        } => {
            out.put_u8(2);
            put_ballot(out, *ballot);
            put_ballot(out, *accepted_round);
            out.put_u64(*decided);
            out.put_u64(*log_len);
            out.put_u64(*suffix_from);
            put_entries(out, suffix);
            put_opt_snapshot(out, snapshot.as_ref());
        }
        Message::AcceptSync {
            ballot,
            snapshot,
            from,
            entries,
            decided,
            seq,
        } => {
            put_accept(out, 3, *ballot, *from, entries, *decided, *seq);
            put_opt_snapshot(out, snapshot.as_ref());
        }
        Message::Accept {
            ballot,
            from,
            entries,
            decided,
            seq,
        } => put_accept(out, 4, *ballot, *from, entries, *decided, *seq),
        Message::Accepted {
            ballot,
            log_len,
            seq,
            gap,
        } => {
            out.put_u8(5);
            put_ballot(out, *ballot);
            out.put_u64(*log_len);
            out.put_u64(*seq);
            out.put_u8(u8::from(*gap));
        }
        Message::Nack { ballot, promised } => {
            out.put_u8(6);
            put_ballot(out, *ballot);
            put_ballot(out, *promised);
        }
        Message::NeedSync { ballot } => {
            out.put_u8(7);
            put_ballot(out, *ballot);
        }
        Message::TimeoutNow { ballot } => {
            out.put_u8(9);
            put_ballot(out, *ballot);
        }
        Message::Relinquish { ballot } => {
            out.put_u8(10);
            put_ballot(out, *ballot);
        }
        Message::Forward { commands } => {
            out.put_u8(8);
            out.put_u32(commands.len() as u32);
            for c in commands {
                put_bytes(out, c);
            }
        }
    }
}

/// Decodes a protocol message.
pub fn decode_message(b: Bytes) -> Result<Message, String> {
    let mut r = Reader::new(b);
    let m = match r.u8()? {
        1 => Message::Prepare {
            ballot: r.ballot()?,
            decided: r.u64()?,
            accepted_round: r.ballot()?,
            log_len: r.u64()?,
        },
        2 => Message::Promise {
            ballot: r.ballot()?,
            accepted_round: r.ballot()?,
            decided: r.u64()?,
            log_len: r.u64()?,
            suffix_from: r.u64()?,
            suffix: r.entries()?,
            snapshot: read_snapshot(&mut r)?,
        },
        3 => {
            let (ballot, from, entries, decided, seq) = read_accept(&mut r)?;
            Message::AcceptSync {
                ballot,
                snapshot: read_snapshot(&mut r)?,
                from,
                entries,
                decided,
                seq,
            }
        }
        4 => {
            let (ballot, from, entries, decided, seq) = read_accept(&mut r)?;
            Message::Accept {
                ballot,
                from,
                entries,
                decided,
                seq,
            }
        }
        5 => Message::Accepted {
            ballot: r.ballot()?,
            log_len: r.u64()?,
            seq: r.u64()?,
            gap: match r.u8()? {
                0 => false,
                1 => true,
                g => return Err(format!("bad flag {g}")),
            },
        },
        6 => Message::Nack {
            ballot: r.ballot()?,
            promised: r.ballot()?,
        },
        7 => Message::NeedSync {
            ballot: r.ballot()?,
        },
        8 => {
            let n = r.u32()? as usize;
            r.need(n.saturating_mul(4))?;
            let mut commands = Vec::with_capacity(n);
            for _ in 0..n {
                commands.push(r.bytes()?);
            }
            Message::Forward { commands }
        }
        9 => Message::TimeoutNow {
            ballot: r.ballot()?,
        },
        10 => Message::Relinquish {
            ballot: r.ballot()?,
        },
        t => return Err(format!("unknown message type {t}")),
    };
    r.done()?;
    Ok(m)
}

/// A request to `consensus-node`'s client port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequest {
    /// Propose `command` as request `(client, seq)` (retries reuse it; applied once).
    Propose {
        /// Client id (not 0).
        client: u64,
        /// Request number.
        seq: u64,
        /// The state machine's command.
        command: Bytes,
    },
    /// A linearizable read (at the leader).
    Read {
        /// The state machine's query.
        query: Bytes,
    },
    /// Add replica `id`, reached by its peers at `addr` (at the leader; answered once
    /// the change is decided).
    AddMember {
        /// The new replica.
        id: u64,
        /// Its peer address, `host:port`.
        addr: String,
    },
    /// Remove replica `id` (at the leader; answered once the change is decided).
    RemoveMember {
        /// The replica.
        id: u64,
    },
    /// This replica's view: role, leader, decided length and membership, as text.
    Status,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientResponse {
    /// Done; a read's value (empty for a put).
    Ok(Bytes),
    /// Not served here: try another replica (`leader`: the one this replica knows, 0 if
    /// none).
    Redirect {
        /// Node id of the leader, 0 if unknown.
        leader: u64,
    },
    /// Refused.
    Error(String),
}

/// Encodes a client request.
pub fn encode_request(r: &ClientRequest, out: &mut BytesMut) {
    match r {
        ClientRequest::Propose {
            client,
            seq,
            command,
        } => {
            out.put_u8(1);
            out.put_u64(*client);
            out.put_u64(*seq);
            put_bytes(out, command);
        }
        ClientRequest::Read { query } => {
            out.put_u8(2);
            put_bytes(out, query);
        }
        ClientRequest::AddMember { id, addr } => {
            out.put_u8(3);
            out.put_u64(*id);
            put_bytes(out, addr.as_bytes());
        }
        ClientRequest::RemoveMember { id } => {
            out.put_u8(4);
            out.put_u64(*id);
        }
        ClientRequest::Status => out.put_u8(5),
    }
}

/// Decodes a client request.
pub fn decode_request(b: Bytes) -> Result<ClientRequest, String> {
    let mut r = Reader::new(b);
    let req = match r.u8()? {
        1 => ClientRequest::Propose {
            client: r.u64()?,
            seq: r.u64()?,
            command: r.bytes()?,
        },
        2 => ClientRequest::Read { query: r.bytes()? },
        3 => ClientRequest::AddMember {
            id: r.u64()?,
            addr: String::from_utf8(r.bytes()?.to_vec())
                .map_err(|_| "the address is not UTF-8".to_string())?,
        },
        4 => ClientRequest::RemoveMember { id: r.u64()? },
        5 => ClientRequest::Status,
        t => return Err(format!("unknown request type {t}")),
    };
    r.done()?;
    Ok(req)
}

/// Encodes a client response.
pub fn encode_response(r: &ClientResponse, out: &mut BytesMut) {
    match r {
        ClientResponse::Ok(v) => {
            out.put_u8(1);
            put_bytes(out, v);
        }
        ClientResponse::Redirect { leader } => {
            out.put_u8(2);
            out.put_u64(*leader);
        }
        ClientResponse::Error(e) => {
            out.put_u8(3);
            put_bytes(out, e.as_bytes());
        }
    }
}

/// Decodes a client response.
pub fn decode_response(b: Bytes) -> Result<ClientResponse, String> {
    let mut r = Reader::new(b);
    let resp = match r.u8()? {
        1 => ClientResponse::Ok(r.bytes()?),
        2 => ClientResponse::Redirect { leader: r.u64()? },
        3 => ClientResponse::Error(String::from_utf8_lossy(&r.bytes()?).into_owned()),
        t => return Err(format!("unknown response type {t}")),
    };
    r.done()?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn samples() -> Vec<Message> {
        let b = Ballot::new(3, 2);
        let e = vec![
            Entry::Noop,
            Entry::Command(Bytes::from_static(b"cmd")),
            Entry::Config(crate::types::Membership::of([1, 2]).with(4, "127.0.0.1:7004")),
        ];
        vec![
            Message::Prepare {
                ballot: b,
                decided: 4,
                accepted_round: Ballot::new(1, 1),
                log_len: 9,
            },
            Message::Promise {
                ballot: b,
                accepted_round: b,
                decided: 1,
                log_len: 2,
                suffix_from: 0,
                suffix: e.clone(),
                snapshot: None,
            },
            Message::AcceptSync {
                ballot: b,
                snapshot: Some(Snapshot {
                    upto: 7,
                    data: Bytes::from_static(b"state"),
                    members: crate::types::Membership::of([1, 2, 3]),
                }),
                from: 0,
                entries: e.clone(),
                decided: 1,
                seq: 5,
            },
            Message::Accept {
                ballot: b,
                from: 2,
                entries: e,
                decided: 2,
                seq: 6,
            },
            Message::Accepted {
                ballot: b,
                log_len: 4,
                seq: 6,
                gap: true,
            },
            Message::Nack {
                ballot: b,
                promised: Ballot::new(9, 1),
            },
            Message::NeedSync { ballot: b },
            Message::TimeoutNow { ballot: b },
            Message::Relinquish { ballot: b },
            Message::Forward {
                commands: vec![Bytes::from_static(b"x"), Bytes::new()],
            },
        ]
    }

    #[test]
    fn messages_round_trip() {
        for m in samples() {
            let mut out = BytesMut::new();
            encode_message(&m, &mut out);
            assert_eq!(decode_message(out.freeze()).unwrap(), m);
        }
        for r in [
            ClientRequest::Propose {
                client: 1,
                seq: 2,
                command: Bytes::from_static(b"c"),
            },
            ClientRequest::Read {
                query: Bytes::from_static(b"q"),
            },
            ClientRequest::AddMember {
                id: 4,
                addr: "127.0.0.1:7004".into(),
            },
            ClientRequest::RemoveMember { id: 2 },
            ClientRequest::Status,
        ] {
            let mut out = BytesMut::new();
            encode_request(&r, &mut out);
            assert_eq!(decode_request(out.freeze()).unwrap(), r);
        }
        for r in [
            ClientResponse::Ok(Bytes::from_static(b"v")),
            ClientResponse::Redirect { leader: 3 },
            ClientResponse::Error("no".into()),
        ] {
            let mut out = BytesMut::new();
            encode_response(&r, &mut out);
            assert_eq!(decode_response(out.freeze()).unwrap(), r);
        }
    }

    /// Fuzz: random bytes, and valid messages with bytes flipped or cut, never panic.
    #[test]
    fn garbage_never_panics() {
        let seed = std::env::var("SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        let mut rng = Rng::new(seed);
        let valid: Vec<Bytes> = samples()
            .iter()
            .map(|m| {
                let mut out = BytesMut::new();
                encode_message(m, &mut out);
                out.freeze()
            })
            .collect();
        for _ in 0..20_000 {
            let mut data = if rng.chance(0.5) {
                let n = rng.range(0, 64) as usize;
                (0..n).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>()
            } else {
                valid[rng.range(0, valid.len() as u64) as usize].to_vec()
            };
            if !data.is_empty() {
                let i = rng.range(0, data.len() as u64) as usize;
                data[i] = rng.next_u64() as u8;
                if rng.chance(0.3) {
                    data.truncate(i);
                }
            }
            let b = Bytes::from(data);
            let _ = decode_message(b.clone());
            let _ = decode_request(b.clone());
            let _ = decode_response(b.clone());
            let mut framed = BytesMut::from(&b[..]);
            while let Ok(Frame::Good(_) | Frame::Damaged) = take_frame(&mut framed) {}
        }
    }

    #[test]
    fn frames_detect_damage_and_impossible_lengths() {
        let mut buf = BytesMut::new();
        put_frame(&mut buf, b"hello");
        put_frame(&mut buf, b"world");
        buf[9] ^= 1; // inside the first payload
        assert_eq!(take_frame(&mut buf).unwrap(), Frame::Damaged);
        assert_eq!(
            take_frame(&mut buf).unwrap(),
            Frame::Good(Bytes::from_static(b"world"))
        );
        assert_eq!(take_frame(&mut buf).unwrap(), Frame::Incomplete);
        let mut bad = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..]);
        assert!(take_frame(&mut bad).is_err());
    }
}
