//! psql against a real mdbc-server: DDL, DML, transactions, savepoints, COPY (also of a
//! query) and errors
//! with their SQLSTATEs (issue 2). Expected output is what PostgreSQL 15 prints for the same
//! script with `-A -t` and `VERBOSITY sqlstate`.

use tests::Server;

const SCRIPT: &str = r#"
\set VERBOSITY sqlstate
create table items (id serial primary key, name varchar(8) not null unique, price numeric(10,2), qty int default 1, added timestamptz default now());
insert into items (name, price) values ('apple', 1.5), ('pear', 2.25);
insert into items (name, price, qty) values ('plum', 3, 7) returning id, name, qty;
select id, name, price, qty from items order by id;
select count(*), sum(qty) from items;
update items set qty = qty + 1 where name ilike 'AP%';
select name, qty from items where id = any(array[1, 3]) order by id;
begin;
delete from items where name = 'pear';
select count(*) from items;
rollback;
select count(*) from items;
begin;
insert into items (name) values ('kiwi');
savepoint s1;
insert into items (name) values ('kiwi');
rollback to savepoint s1;
insert into items (name) values ('fig');
commit;
select name from items order by id;
begin;
select * from nope;
select 1;
rollback;
insert into items (name) values ('toolongname');
insert into items (name) values (null);
insert into items (name, qty) values ('x', 'abc');
select nope from items;
selec 1;
select name from items where name ~ '^p[el]' order by id;
insert into items (name) values ('apple');
copy items (name, price, qty) from stdin;
grape	4.5	2
melon	\N	3
\.
select name, price, qty from items where name in ('grape', 'melon') order by id;
copy (select name, price, qty * 2 as q from items where name in ('grape', 'melon') order by name) to stdout with (format csv, header);
copy (select 1.5 + 1, null::text, E'a\tb', true) to stdout;
select x, x * 2 from generate_series(1, 3) as x;
truncate items;
select count(*) from items;
drop table items;
select * from items;
"#;

const EXPECTED: &str = "\
3|plum|7
1|apple|1.50|1
2|pear|2.25|1
3|plum|3.00|7
3|9
apple|2
plum|7
2
3
ERROR:  23505
apple
pear
plum
kiwi
fig
ERROR:  42P01
ERROR:  25P02
ERROR:  22001
ERROR:  23502
ERROR:  22P02
ERROR:  42703
ERROR:  42601
pear
plum
ERROR:  23505
grape|4.50|2
melon||3
name,price,q
grape,4.50,4
melon,,6
2.5\t\\N\ta\\tb\tt
1|2
2|4
3|6
0
ERROR:  42P01
";

#[test]
fn psql_script_matches_postgres_output() {
    let server = Server::start().expect("server starts");
    let (out, _) = server.psql(SCRIPT, &["-A", "-t"]).expect("psql runs");
    assert_eq!(out, EXPECTED, "server log:\n{}", server.log_text());
}

#[test]
fn psql_connects_and_reports_version() {
    let server = Server::start().expect("server starts");
    let (out, ok) = server
        .psql("select version(); show server_version;", &["-A", "-t"])
        .expect("psql runs");
    assert!(ok, "{out}");
    assert!(out.starts_with("PostgreSQL 16.6 (mdbc "), "{out}");
    assert!(out.contains("16.6 (mdbc "), "{out}");
}

/// psql's meta-commands over the system catalogs (issue 6), compared with what PostgreSQL 15
/// prints for the same schema: `tests/golden/psql/generate` produced `expected.out`.
#[test]
fn psql_meta_commands_match_postgres() {
    let dir = tests::workspace().join("tests/golden/psql");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let server = Server::start().unwrap();
    let (out, ok) = server.psql(&read("schema.sql"), &[]).unwrap();
    assert!(ok && out.is_empty(), "schema.sql failed:\n{out}");
    let (out, ok) = server.psql(&read("meta.sql"), &[]).unwrap();
    assert!(ok, "psql failed:\n{out}");
    assert_eq!(
        out,
        read("expected.out"),
        "psql meta-command output differs"
    );
}

/// The meta-commands whose PostgreSQL output names what only that server has (its other
/// databases and roles): `\l` lists this database, `\du` the session's role, `\timing`
/// times each query, and none of them errors.
#[test]
fn psql_lists_databases_roles_and_times_queries() {
    let server = Server::start().unwrap();
    let (out, ok) = server
        .psql("\\l\n\\du\n\\timing on\nselect 1;\n\\timing off\n", &[])
        .unwrap();
    assert!(ok, "{out}");
    assert!(!out.contains("ERROR"), "{out}");
    let db_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("mdbc "))
        .unwrap_or_else(|| panic!("no database line:\n{out}"));
    let cells: Vec<&str> = db_line.split('|').map(str::trim).collect();
    assert_eq!(&cells[..3], ["mdbc", "tester", "UTF8"], "{out}");
    let role_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("tester "))
        .unwrap_or_else(|| panic!("no role line:\n{out}"));
    assert!(role_line.contains("Superuser"), "{out}");
    assert!(
        !out.contains("pg_database_owner"),
        "\\du hides pg_ roles:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("Time: ") && l.ends_with(" ms")),
        "{out}"
    );
}

/// COPY's CSV options (QUOTE, ESCAPE, FORCE_QUOTE, FORCE_NOT_NULL, FORCE_NULL, the `\.`
/// end marker) in both directions. Expected output is PostgreSQL 15's for the same script.
#[test]
fn copy_csv_options_match_postgres() {
    const CSV_SCRIPT: &str = r#"
\set VERBOSITY sqlstate
create table cy (a text, b text, c int);
insert into cy values ('Jackson, Sam', E'\\h', 1), ('It is "perfect".', E'\t', 2), ('', null, 3), (E'\\.', 'x''y', null);
copy cy to stdout with csv quote '''' delimiter '|';
copy cy to stdout csv;
copy cy to stdout (format csv, force_quote (a, c));
copy cy to stdout (format csv, quote '$', escape '!');
copy cy (a, b, c) from stdin (format csv, force_not_null (a), force_null (b));
,"",10
"x",,11
\.
copy cy (a, b, c) from stdin (format csv, force_not_null (a, b), force_null (a, b));
,"",12
\.
select a is null, a, b is null, b, c from cy where c >= 10 order by c;
copy cy from stdin (format text, quote '"');
drop table cy;
"#;
    const CSV_EXPECTED: &str = "\
Jackson, Sam|\\h|1
It is \"perfect\".|\t|2
''||3
\\.|'x''y'|
\"Jackson, Sam\",\\h,1
\"It is \"\"perfect\"\".\",\t,2
\"\",,3
\\.,x'y,
\"Jackson, Sam\",\\h,\"1\"
\"It is \"\"perfect\"\".\",\t,\"2\"
\"\",,\"3\"
\"\\.\",x'y,
$Jackson, Sam$,\\h,1
It is \"perfect\".,\t,2
$$,,3
\\.,x'y,
f||t||10
f|x|t||11
f||t||12
ERROR:  0A000
";
    let server = Server::start().expect("server starts");
    let (out, _) = server.psql(CSV_SCRIPT, &["-A", "-t"]).expect("psql runs");
    assert_eq!(out, CSV_EXPECTED, "server log:\n{}", server.log_text());
}

/// Several statements in one query string run in one implicit transaction block, as in
/// PostgreSQL: an error rolls back the string's statements (up to a COMMIT inside it),
/// BEGIN turns the block into a real one, savepoints and VACUUM are refused in it. Also
/// COMMIT AND CHAIN ending a failed block. Expected output
/// is PostgreSQL 15's for the same script.
#[test]
fn multi_statement_strings_run_in_one_implicit_transaction() {
    const SCRIPT: &str = r#"
\set VERBOSITY sqlstate
create table it (f1 int);
insert into it values (1)\; insert into it values (2)\; select 1/0;
insert into it values (3)\; commit\; insert into it values (4)\; select 1/0;
insert into it values (5)\; begin\; insert into it values (6);
rollback;
select 1\; savepoint sp;
select 1\; vacuum;
begin;
select 1/0;
commit and chain;
show transaction_read_only;
insert into it values (7);
commit;
start transaction;
commit;
select f1 from it order by f1;
drop table it;
"#;
    const EXPECTED: &str = "\
ERROR:  22012
WARNING:  25P01
ERROR:  22012
1
ERROR:  25P01
1
ERROR:  25001
ERROR:  22012
off
3
7
";
    let server = Server::start().expect("server starts");
    let (out, _) = server.psql(SCRIPT, &["-A", "-t"]).expect("psql runs");
    assert_eq!(out, EXPECTED, "server log:\n{}", server.log_text());
}
