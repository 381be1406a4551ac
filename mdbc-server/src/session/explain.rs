//! EXPLAIN: SQLite's query plan shown in PostgreSQL's shape (Seq Scan, Index Scan, Index
//! Only Scan, Nested Loop, Sort, Aggregate, Limit…), and for each replicated table the
//! statement reads, what that read waits for — the part no other PostgreSQL-compatible
//! peer can show. SQLite has no cost model to report, so there are no cost estimates; with
//! ANALYZE the statement runs and the top node reports its actual time and rows.

use std::time::Instant;

use rusqlite::Connection;
use sql_capture::ExplainPlan;

use crate::errors::SqlError;

type Result<T> = std::result::Result<T, SqlError>;

/// One plan node as PostgreSQL names it.
#[derive(Debug, Clone, Default)]
struct Node {
    kind: String,
    relation: Option<String>,
    alias: Option<String>,
    index: Option<String>,
    cond: Option<String>,
    children: Vec<Node>,
}

impl Node {
    fn named(kind: &str) -> Node {
        Node {
            kind: kind.into(),
            ..Node::default()
        }
    }

    fn over(kind: &str, child: Node) -> Node {
        Node {
            kind: kind.into(),
            children: vec![child],
            ..Node::default()
        }
    }
}

/// What the session knows about each table the statement reads: its consistency level
/// and what a read of it waits for.
pub struct ReadNote {
    /// The table.
    pub table: String,
    /// Its level (`strong`, `bounded`…).
    pub level: String,
    /// What a read waits for, in words.
    pub wait: String,
}

/// A row of SQLite's EXPLAIN QUERY PLAN.
struct Step {
    id: i64,
    parent: i64,
    detail: String,
}

/// `SCAN t`, `SEARCH t USING INDEX i (a=?)`… as a PostgreSQL node; None for SQLite's
/// bookkeeping steps that have no PostgreSQL counterpart.
fn scan_node(detail: &str) -> Option<Node> {
    let (verb, rest) = detail.split_once(' ')?;
    if !matches!(verb, "SCAN" | "SEARCH") {
        return None;
    }
    if rest == "CONSTANT ROW" {
        return Some(Node::named("Result"));
    }
    let (table_part, using) = match rest.split_once(" USING ") {
        Some((t, u)) => (t, Some(u)),
        None => (rest, None),
    };
    let mut words = table_part.split_whitespace();
    let table = words.next()?.to_string();
    let alias = match (words.next(), words.next()) {
        (Some("AS"), Some(a)) => Some(a.to_string()),
        _ => None,
    };
    if table_part.contains("VIRTUAL TABLE")
        || matches!(table.as_str(), "generate_series" | "json_each")
    {
        let mut n = Node::named("Function Scan");
        n.relation = Some(table);
        n.alias = alias;
        return Some(n);
    }
    let cond = |u: &str| {
        u.find('(').map(|p| {
            u[p..]
                .replace('=', " = ")
                .replace('>', " > ")
                .replace('<', " < ")
        })
    };
    let mut n = match using {
        None => Node::named("Seq Scan"),
        Some(u) if u.starts_with("INTEGER PRIMARY KEY") => {
            let mut n = Node::named("Index Scan");
            n.index = Some(format!("{table}_pkey"));
            n.cond = cond(u);
            n
        }
        Some(u) => {
            let covering = u.contains("COVERING INDEX");
            let index = u
                .split("INDEX ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or("automatic")
                .to_string();
            let mut n = Node::named(if covering {
                "Index Only Scan"
            } else {
                "Index Scan"
            });
            n.index = Some(if u.starts_with("AUTOMATIC") {
                "automatic index".into()
            } else {
                index
            });
            n.cond = cond(u);
            n
        }
    };
    n.relation = Some(table);
    n.alias = alias;
    Some(n)
}

/// The children of `parent` as one PostgreSQL subtree: scans joined left-deep by nested
/// loops, then sorted, grouped or de-duplicated as SQLite's temporary b-trees say.
fn subtree(steps: &[Step], parent: i64) -> Option<Node> {
    let mut scans: Vec<Node> = Vec::new();
    let mut wrappers: Vec<&'static str> = Vec::new();
    let mut subplans: Vec<Node> = Vec::new();
    let mut appended: Vec<Node> = Vec::new();
    for s in steps.iter().filter(|s| s.parent == parent) {
        let d = s.detail.as_str();
        if let Some(n) = scan_node(d) {
            scans.push(n);
        } else if d.starts_with("USE TEMP B-TREE FOR") {
            let w = if d.contains("GROUP BY") {
                "HashAggregate"
            } else if d.contains("DISTINCT") {
                "Unique"
            } else {
                "Sort"
            };
            if !wrappers.contains(&w) {
                wrappers.push(w);
            }
        } else if d.starts_with("CO-ROUTINE") || d.starts_with("MATERIALIZE") {
            let name = d
                .split_whitespace()
                .nth(1)
                .unwrap_or("subquery")
                .to_string();
            let inner = subtree(steps, s.id).unwrap_or_else(|| Node::named("Result"));
            let mut n = Node::over("Subquery Scan", inner);
            n.relation = Some(name);
            scans.push(n);
        } else if d.contains("SUBQUERY") && !d.starts_with("LEFT-MOST") {
            let label = format!("SubPlan {}", d.split_whitespace().last().unwrap_or("1"));
            if let Some(inner) = subtree(steps, s.id) {
                subplans.push(Node::over(&label, inner));
            }
        } else if d.starts_with("COMPOUND") {
            if let Some(inner) = subtree(steps, s.id) {
                scans.push(inner);
            }
        } else if d.starts_with("LEFT-MOST SUBQUERY")
            || d.starts_with("UNION")
            || d.starts_with("EXCEPT")
            || d.starts_with("INTERSECT")
        {
            if let Some(inner) = subtree(steps, s.id) {
                appended.push(inner);
            }
        }
    }
    if !appended.is_empty() {
        let mut n = Node::named("Append");
        n.children = appended;
        scans.push(n);
    }
    let mut node = scans.into_iter().reduce(|outer, inner| Node {
        kind: "Nested Loop".into(),
        children: vec![outer, inner],
        ..Node::default()
    })?;
    node.children.extend(subplans);
    for w in wrappers.iter().rev() {
        node = Node::over(w, node);
    }
    Some(node)
}

fn rename_rowid(n: &mut Node, key_column: &dyn Fn(&str) -> Option<String>) {
    if let (Some(c), Some(t)) = (&mut n.cond, &n.relation) {
        if let Some(k) = key_column(t) {
            *c = c.replace("rowid", &k);
        }
    }
    for child in &mut n.children {
        rename_rowid(child, key_column);
    }
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn text_lines(n: &Node, depth: usize, out: &mut Vec<String>, actual: Option<&str>) {
    let mut line = n.kind.clone();
    if let Some(i) = &n.index {
        line.push_str(&format!(" using {i}"));
    }
    if let Some(r) = &n.relation {
        line.push_str(" on ");
        line.push_str(r);
        if let Some(a) = &n.alias {
            line.push_str(&format!(" {a}"));
        }
    }
    if let Some(a) = actual {
        line.push_str(&format!(" {a}"));
    }
    if depth == 0 {
        out.push(line);
    } else {
        out.push(format!("{}->  {line}", " ".repeat(6 * (depth - 1) + 2)));
    }
    let detail_indent = " ".repeat(6 * depth + 2);
    if let Some(c) = &n.cond {
        out.push(format!("{detail_indent}Index Cond: {c}"));
    }
    for c in &n.children {
        text_lines(c, depth + 1, out, None);
    }
}

/// A JSON value with its keys in the order given (PostgreSQL's order, not sorted).
enum Json {
    Scalar(serde_json::Value),
    Object(Vec<(&'static str, Json)>),
    Array(Vec<Json>),
}

impl Json {
    fn text(s: &str) -> Json {
        Json::Scalar(s.into())
    }

    /// Written as PostgreSQL writes EXPLAIN's JSON: two spaces per level.
    fn write(&self, indent: usize, out: &mut String) {
        let pad = |n: usize| " ".repeat(n);
        match self {
            Json::Scalar(v) => out.push_str(&v.to_string()),
            Json::Object(fields) => {
                out.push_str("{\n");
                for (i, (k, v)) in fields.iter().enumerate() {
                    out.push_str(&format!(
                        "{}{}: ",
                        pad(indent + 2),
                        serde_json::Value::from(*k)
                    ));
                    v.write(indent + 2, out);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                out.push_str(&format!("{}}}", pad(indent)));
            }
            Json::Array(items) => {
                out.push_str("[\n");
                for (i, v) in items.iter().enumerate() {
                    out.push_str(&pad(indent + 2));
                    v.write(indent + 2, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&format!("{}]", pad(indent)));
            }
        }
    }
}

fn json_node(n: &Node, actual: Option<(f64, usize)>) -> Json {
    let mut m: Vec<(&'static str, Json)> = vec![("Node Type", Json::text(&n.kind))];
    if let Some(r) = &n.relation {
        m.push(("Relation Name", Json::text(r)));
        m.push(("Alias", Json::text(n.alias.as_deref().unwrap_or(r))));
    }
    if let Some(i) = &n.index {
        m.push(("Index Name", Json::text(i)));
    }
    if let Some(c) = &n.cond {
        m.push(("Index Cond", Json::text(c)));
    }
    if let Some((ms, rows)) = actual {
        m.push(("Actual Total Time", Json::Scalar(serde_json::json!(ms))));
        m.push(("Actual Rows", Json::Scalar(serde_json::json!(rows))));
        m.push(("Actual Loops", Json::Scalar(serde_json::json!(1))));
    }
    if !n.children.is_empty() {
        m.push((
            "Plans",
            Json::Array(n.children.iter().map(|c| json_node(c, None)).collect()),
        ));
    }
    Json::Object(m)
}

/// The lines of EXPLAIN's output (one row each; one JSON document for FORMAT JSON).
pub fn explain(
    conn: &Connection,
    plan: &ExplainPlan,
    reads: &[ReadNote],
    key_column: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>> {
    let started = Instant::now();
    let Some(sql) = plan.plan.sql.last() else {
        return Ok(vec!["Result".into()]);
    };
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let n = stmt.parameter_count();
    for i in 1..=n {
        stmt.raw_bind_parameter(i, rusqlite::types::Null)?;
    }
    let mut steps = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(r) = rows.next()? {
        steps.push(Step {
            id: r.get(0)?,
            parent: r.get(1)?,
            detail: r.get(3)?,
        });
    }
    drop(rows);
    let mut root = subtree(&steps, 0).unwrap_or_else(|| Node::named("Result"));
    if plan.aggregate && root.kind != "HashAggregate" {
        root = Node::over("Aggregate", root);
    }
    if plan.limit {
        root = Node::over("Limit", root);
    }
    // A write is its target's node over what feeds it.
    let verb = match plan.plan.tag {
        sql_capture::CommandTag::Insert => Some("Insert"),
        sql_capture::CommandTag::Update => Some("Update"),
        sql_capture::CommandTag::Delete => Some("Delete"),
        _ => None,
    };
    if let (Some(v), Some(t)) = (verb, plan.plan.writes.first()) {
        let mut n = Node::over(v, root);
        n.relation = Some(t.clone());
        root = n;
    }
    // SQLite names an integer primary key `rowid`; PostgreSQL names the column.
    rename_rowid(&mut root, key_column);
    let planning = started.elapsed();
    let actual = if plan.analyze {
        // Run it: the rows are counted, not sent.
        let began = Instant::now();
        let mut run = conn.prepare(sql)?;
        for i in 1..=run.parameter_count() {
            run.raw_bind_parameter(i, rusqlite::types::Null)?;
        }
        let mut rows = run.raw_query();
        let mut count = 0usize;
        while rows.next()?.is_some() {
            count += 1;
        }
        Some((began.elapsed().as_secs_f64() * 1000.0, count))
    } else {
        None
    };
    if plan.json {
        let mut top: Vec<(&'static str, Json)> = vec![("Plan", json_node(&root, actual))];
        if !reads.is_empty() {
            top.push((
                "mdbc Reads",
                Json::Array(
                    reads
                        .iter()
                        .map(|r| {
                            Json::Object(vec![
                                ("Relation Name", Json::text(&r.table)),
                                ("Consistency", Json::text(&r.level)),
                                ("Waits For", Json::text(&r.wait)),
                            ])
                        })
                        .collect(),
                ),
            ));
        }
        if let Some((ms, _)) = actual {
            top.push((
                "Planning Time",
                Json::Scalar(serde_json::json!(planning.as_secs_f64() * 1000.0)),
            ));
            top.push(("Execution Time", Json::Scalar(serde_json::json!(ms))));
        }
        let mut doc = String::new();
        Json::Array(vec![Json::Object(top)]).write(0, &mut doc);
        return Ok(vec![doc]);
    }
    let mut out = Vec::new();
    let actual_text =
        actual.map(|(ms, rows)| format!("(actual time=0.000..{ms:.3} rows={rows} loops=1)"));
    text_lines(&root, 0, &mut out, actual_text.as_deref());
    for r in reads {
        out.push(format!(
            "mdbc: {} is {}: {}",
            quote(&r.table).trim_matches('"'),
            r.level,
            r.wait
        ));
    }
    if let Some((ms, _)) = actual {
        out.push(format!(
            "Planning Time: {:.3} ms",
            planning.as_secs_f64() * 1000.0
        ));
        out.push(format!("Execution Time: {ms:.3} ms"));
    }
    Ok(out)
}
