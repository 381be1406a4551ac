//! Real client libraries against a real mdbc-server (issue 2): psycopg2 (every type with the
//! right Python type), SQLAlchemy 2 Core and ORM CRUD, node-postgres with parameters.
//! The scripts live in `tests/clients/`; `tests/run.sh` installs their packages.

use std::process::Command;

use tests::{run, workspace, Server};

fn script(interpreter: &str, name: &str) {
    let server = Server::start().expect("server starts");
    let path = workspace().join("tests/clients").join(name);
    let (out, ok) = run(Command::new(interpreter)
        .arg(&path)
        .arg(server.port().to_string())
        .current_dir(workspace().join("tests/clients")))
    .expect("interpreter runs");
    assert!(
        ok,
        "{name} failed:\n{out}\nserver log:\n{}",
        server.log_text()
    );
}

#[test]
fn psycopg2_types_round_trip() {
    script("python3", "psycopg2_types.py");
}

#[test]
fn sqlalchemy_core_and_orm_crud() {
    script("python3", "sqlalchemy_crud.py");
}

#[test]
fn node_postgres_with_parameters() {
    script("node", "node_pg.js");
}
