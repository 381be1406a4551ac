//! Wire-protocol habits of real drivers, checked byte by byte (CLIENTS.md, issue 2):
//! Describe followed by Flush (no Sync) must be answered at once, and pipelined
//! statements without Sync between them run in order.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tests::Server;

fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

struct Conn(TcpStream);

impl Conn {
    fn open(server: &Server) -> Conn {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut body = 196_608i32.to_be_bytes().to_vec();
        for p in ["user", "tester", "database", "mdbc"] {
            body.extend(cstr(p));
        }
        body.push(0);
        let mut startup = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        startup.extend(body);
        s.write_all(&startup).unwrap();
        let mut c = Conn(s);
        while c.next().0 != b'Z' {}
        c
    }

    /// Reads one backend message (type, body); panics on timeout.
    fn next(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0u8; 5];
        self.0
            .read_exact(&mut head)
            .expect("a message before the timeout");
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        self.0.read_exact(&mut body).unwrap();
        (head[0], body)
    }

    /// Message types up to and including ReadyForQuery, and the transaction status it gives.
    fn until_ready(&mut self) -> (Vec<u8>, u8) {
        let mut kinds = Vec::new();
        loop {
            let (t, body) = self.next();
            kinds.push(t);
            if t == b'Z' {
                return (kinds, body[0]);
            }
        }
    }
}

#[test]
fn describe_then_flush_is_answered_before_any_sync() {
    let server = Server::start().unwrap();
    let mut c = Conn::open(&server);
    let mut parse = cstr("s1");
    parse.extend(cstr("select $1::int4 + 1 as n"));
    parse.extend_from_slice(&0i16.to_be_bytes());
    let mut describe = vec![b'S'];
    describe.extend(cstr("s1"));
    let mut out = msg(b'P', &parse);
    out.extend(msg(b'D', &describe));
    out.extend(msg(b'H', &[]));
    c.0.write_all(&out).unwrap();
    assert_eq!(c.next().0, b'1', "ParseComplete");
    let (t, body) = c.next();
    assert_eq!(t, b't', "ParameterDescription");
    assert_eq!(&body[..2], &1i16.to_be_bytes());
    assert_eq!(&body[2..6], &23u32.to_be_bytes(), "int4 from the cast");
    let (t, body) = c.next();
    assert_eq!(t, b'T', "RowDescription");
    assert!(body.windows(2).any(|w| w == b"n\0"));

    // Then Bind (binary int4 parameter, binary result), Execute, Sync.
    let mut bind = cstr("");
    bind.extend(cstr("s1"));
    bind.extend_from_slice(&1i16.to_be_bytes());
    bind.extend_from_slice(&1i16.to_be_bytes());
    bind.extend_from_slice(&1i16.to_be_bytes());
    bind.extend_from_slice(&4i32.to_be_bytes());
    bind.extend_from_slice(&41i32.to_be_bytes());
    bind.extend_from_slice(&1i16.to_be_bytes());
    bind.extend_from_slice(&1i16.to_be_bytes());
    let mut exec = cstr("");
    exec.extend_from_slice(&0i32.to_be_bytes());
    let mut out = msg(b'B', &bind);
    out.extend(msg(b'E', &exec));
    out.extend(msg(b'S', &[]));
    c.0.write_all(&out).unwrap();
    assert_eq!(c.next().0, b'2', "BindComplete");
    let (t, body) = c.next();
    assert_eq!(t, b'D');
    assert_eq!(&body[2..6], &4i32.to_be_bytes());
    assert_eq!(&body[6..10], &42i32.to_be_bytes());
    let (t, body) = c.next();
    assert_eq!((t, body.as_slice()), (b'C', b"SELECT 1\0".as_slice()));
    assert_eq!(c.next(), (b'Z', vec![b'I']));
}

#[test]
fn pipelined_begin_without_sync_and_error_skips_to_sync() {
    let server = Server::start().unwrap();
    let mut c = Conn::open(&server);
    let unnamed = |sql: &str| {
        let mut p = cstr("");
        p.extend(cstr(sql));
        p.extend_from_slice(&0i16.to_be_bytes());
        let mut b = cstr("");
        b.extend(cstr(""));
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let mut e = cstr("");
        e.extend_from_slice(&0i32.to_be_bytes());
        let mut m = msg(b'P', &p);
        m.extend(msg(b'B', &b));
        m.extend(msg(b'E', &e));
        m
    };
    // BEGIN pipelined with the next statement, one Sync at the end: the status is 'T'.
    let mut out = unnamed("BEGIN");
    out.extend(unnamed("select 1"));
    out.extend(msg(b'S', &[]));
    c.0.write_all(&out).unwrap();
    let (kinds, status) = c.until_ready();
    assert_eq!(status, b'T');
    assert_eq!(kinds, b"12C12DCZ".to_vec());
    // An error mid-pipeline: the rest up to Sync is skipped, the block is failed ('E').
    let mut out = unnamed("select * from missing_table");
    out.extend(unnamed("select 2"));
    out.extend(msg(b'S', &[]));
    c.0.write_all(&out).unwrap();
    // PostgreSQL fails this at Parse, mdbc at Execute: either way one ErrorResponse, then
    // nothing from the skipped statement, then ReadyForQuery in the failed state.
    let (kinds, status) = c.until_ready();
    assert_eq!(status, b'E');
    assert_eq!(kinds.iter().filter(|k| **k == b'E').count(), 1, "{kinds:?}");
    assert!(
        !kinds.contains(&b'D') && !kinds.contains(&b'C'),
        "{kinds:?}"
    );
}
