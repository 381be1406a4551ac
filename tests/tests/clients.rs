//! Real client libraries against a real mdbc-server (issues 2 and 6): psycopg2 (every type
//! with the right Python type), SQLAlchemy 2 Core and ORM CRUD, SQLAlchemy reflection (what
//! Alembic autogenerate reads) over psycopg2 and psycopg 3, node-postgres with parameters.
//! The scripts live in `tests/clients/`; `tests/run.sh` installs their packages.

use std::process::Command;

use tests::{run, workspace, Server};

fn script(interpreter: &str, name: &str) {
    script_with(interpreter, name, &[]);
}

fn script_with(interpreter: &str, name: &str, args: &[&str]) {
    let server = Server::start().expect("server starts");
    let path = workspace().join("tests/clients").join(name);
    let (out, ok) = run(Command::new(interpreter)
        .arg(&path)
        .arg(server.port().to_string())
        .args(args)
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
fn sqlalchemy_reflection_with_psycopg2() {
    script_with("python3", "sqlalchemy_reflect.py", &["psycopg2"]);
}

#[test]
fn sqlalchemy_reflection_with_psycopg3() {
    script_with("python3", "sqlalchemy_reflect.py", &["psycopg"]);
}

#[test]
fn node_postgres_with_parameters() {
    script("node", "node_pg.js");
}
