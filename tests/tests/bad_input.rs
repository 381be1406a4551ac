//! Bad input never takes the server down (issue 2, DESIGN invariant 6): malformed and
//! oversized frames, garbage after startup, unknown message types, wrong passwords, bad
//! config files. Each gets a clear error or a closed connection, and other clients keep
//! being served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use tests::{run, server_binary, Server};

fn startup_packet(user: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608i32.to_be_bytes()); // protocol 3.0
    for (k, v) in [("user", user), ("database", "mdbc")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// Sends `bytes` and reads what the server answers until it closes or goes quiet.
fn exchange(server: &Server, parts: &[&[u8]]) -> Vec<u8> {
    let mut s = TcpStream::connect(server.addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    for p in parts {
        let _ = s.write_all(p);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

fn still_serving(server: &mut Server) {
    assert!(server.is_running(), "server died:\n{}", server.log_text());
    let (out, ok) = server.psql("select 40 + 2", &["-A", "-t"]).unwrap();
    assert!(ok && out.trim() == "42", "{out}");
}

fn has_error(reply: &[u8], code: &str) -> bool {
    reply
        .windows(code.len() + 1)
        .any(|w| w[0] == b'C' && &w[1..] == code.as_bytes())
}

#[test]
fn malformed_frames_are_refused_and_the_server_keeps_serving() {
    let mut server = Server::start().unwrap();
    // A startup length shorter than its own header.
    exchange(&server, &[&[0, 0, 0, 3, 0, 0, 0, 0]]);
    still_serving(&mut server);
    // A startup packet claiming a gigabyte.
    exchange(&server, &[&0x4000_0000i32.to_be_bytes(), &[0, 3, 0, 0]]);
    still_serving(&mut server);
    // Pure garbage instead of a startup packet.
    exchange(&server, &[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]);
    still_serving(&mut server);
    // A valid startup, then an oversized Query frame.
    let mut huge = vec![b'Q'];
    huge.extend_from_slice(&0x7fff_fff0i32.to_be_bytes());
    exchange(&server, &[&startup_packet("tester"), &huge, b"select 1"]);
    still_serving(&mut server);
    // A valid startup, then garbage bytes and an unknown message type.
    let reply = exchange(
        &server,
        &[
            &startup_packet("tester"),
            &[b'?', 0, 0, 0, 8, 1, 2, 3, 4],
            &[0xff; 64],
        ],
    );
    assert!(reply.starts_with(b"R"), "startup answered: {reply:?}");
    still_serving(&mut server);
    // A Query whose length does not match its contents (no terminator).
    let mut q = vec![b'Q'];
    q.extend_from_slice(&9i32.to_be_bytes());
    q.extend_from_slice(b"selec");
    exchange(&server, &[&startup_packet("tester"), &q]);
    still_serving(&mut server);
    // SQL garbage over a healthy connection: a syntax error, the session survives.
    let mut ok_query = vec![b'Q'];
    let text = b"\x01\x02 not sql at all;\0";
    ok_query.extend_from_slice(&((text.len() + 4) as i32).to_be_bytes());
    ok_query.extend_from_slice(text);
    let reply = exchange(&server, &[&startup_packet("tester"), &ok_query]);
    assert!(
        has_error(&reply, "42601"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    still_serving(&mut server);
}

#[test]
fn wrong_password_is_refused_with_28p01() {
    let mut server = Server::start_with_config(
        "[[users]]\nname = \"app\"\npassword = \"right horse battery\"\n",
    )
    .unwrap();
    let port = server.port().to_string();
    let psql = |password: &str, user: &str| {
        run(Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                user,
                "-d",
                "mdbc",
            ])
            .args(["-c", "select current_user"])
            .env("PGPASSWORD", password))
        .unwrap()
    };
    let (out, ok) = psql("wrong", "app");
    assert!(
        !ok && out
            .to_lowercase()
            .contains("password authentication failed"),
        "{out}"
    );
    let (out, ok) = psql("right horse battery", "nobody");
    assert!(
        !ok && out
            .to_lowercase()
            .contains("password authentication failed"),
        "{out}"
    );
    let (out, ok) = psql("right horse battery", "app");
    assert!(ok && out.trim() == "app", "{out}");
    assert!(server.is_running());
    // Without a password psql cannot log in at all.
    let (out, ok) = run(Command::new("psql").args([
        "-X",
        "-w",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "app",
        "-d",
        "mdbc",
        "-c",
        "select 1",
    ]))
    .unwrap();
    assert!(!ok, "{out}");
}

#[test]
fn tls_with_scram_and_plain_refusal_of_tls_when_not_configured() {
    let mut plain = Server::start().unwrap();
    let port = plain.port().to_string();
    let (out, ok) = run(Command::new("psql")
        .args(["-X", "-c", "select 1"])
        .arg(format!(
            "host=127.0.0.1 port={port} user=t dbname=mdbc sslmode=require"
        )))
    .unwrap();
    assert!(!ok && out.contains("does not support SSL"), "{out}");
    still_serving(&mut plain);

    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let (out, ok) = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert))
    .unwrap();
    assert!(ok, "{out}");
    let server = Server::start_with_config(&format!(
        "[[users]]\nname = \"app\"\npassword = \"s3cret\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    ))
    .unwrap();
    let port = server.port().to_string();
    let (out, ok) = run(Command::new("psql")
        .args(["-X", "-A", "-t", "-c", "select 'over tls'"])
        .arg(format!(
            "host=127.0.0.1 port={port} user=app dbname=mdbc sslmode=require"
        ))
        .env("PGPASSWORD", "s3cret"))
    .unwrap();
    assert!(
        ok && out.contains("over tls"),
        "{out}\n{}",
        server.log_text()
    );
}

#[test]
fn bad_config_files_are_refused_with_a_clear_message() {
    let bin = server_binary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("listen = 5", "invalid config file"),
        ("unknown_key = true", "unknown field"),
        ("[[users]]\nname = \"a\"\npassword = \"\"", "empty password"),
        ("synchronous = \"sometimes\"", "invalid config file"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let (out, ok) = run(Command::new(&bin).arg("start").arg("--config").arg(&path)).unwrap();
        assert!(!ok, "accepted {text:?}");
        assert!(out.contains(needle), "{text:?}: {out}");
    }
    let (out, ok) = run(Command::new(&bin)
        .arg("start")
        .arg("--config")
        .arg(dir.path().join("missing.toml")))
    .unwrap();
    assert!(!ok && out.contains("cannot read config file"), "{out}");
}

#[test]
fn a_corrupted_database_file_is_refused_at_start() {
    let bin = server_binary().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mdbc.db"), vec![0x5a; 8192]).unwrap();
    let (out, ok) = run(Command::new(&bin)
        .args(["start", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path()))
    .unwrap();
    assert!(!ok, "started on a corrupted file");
    assert!(out.contains("opening data directory"), "{out}");
}

/// Seeded random frames after a valid startup: every frame type byte, random lengths and
/// bodies. The server may answer with errors or close the connection, but it must keep
/// serving other clients. A failure names its seed (`SEED=n` replays it).
#[test]
fn random_frames_never_take_the_server_down() {
    let mut server = Server::start().unwrap();
    let seeds: Vec<u64> = match std::env::var("SEED") {
        Ok(s) => vec![s.parse().expect("SEED is a number")],
        Err(_) => (1..=60).collect(),
    };
    for seed in seeds {
        let mut st = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            st
        };
        let mut frames: Vec<Vec<u8>> = vec![startup_packet("tester")];
        for _ in 0..(1 + next() % 8) {
            let kind = b"QPBEDSCHFdcfXp?\0"[(next() % 16) as usize];
            let body_len = (next() % 64) as usize;
            let body: Vec<u8> = (0..body_len).map(|_| next() as u8).collect();
            // Mostly honest lengths, sometimes lies.
            let len = match next() % 4 {
                0 => (next() % 0x7fff_ffff) as i32,
                _ => (body_len + 4) as i32,
            };
            let mut f = vec![kind];
            f.extend_from_slice(&len.to_be_bytes());
            f.extend_from_slice(&body);
            frames.push(f);
        }
        let parts: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
        exchange(&server, &parts);
        assert!(
            server.is_running(),
            "server died on seed {seed} (replay: SEED={seed}):\n{}",
            server.log_text()
        );
    }
    still_serving(&mut server);
}
