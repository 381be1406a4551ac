//! Checks PostgreSQL makes on window clauses (and aggregate calls) before it runs a query.
//! SQLite runs window functions with the same syntax, but accepts some of what PostgreSQL
//! refuses — a second window of one name, GROUPS without ORDER BY, a RANGE offset with
//! several ORDER BY columns, `count()` — and would answer instead of failing.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArguments, NamedWindowDefinition, NamedWindowExpr, Query, Select, SetExpr, Visit,
    Visitor, WindowFrame, WindowFrameBound, WindowFrameUnits, WindowSpec, WindowType,
};

use crate::ast::function_name;
use crate::error::{Error, Result};

/// Checks every SELECT of `q` (subqueries included).
pub(crate) fn check<T: Visit>(q: &T) -> Result<()> {
    match q.visit(&mut Check) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Check;

impl Visitor for Check {
    type Break = Error;

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<Error> {
        let mut selects = Vec::new();
        selects_of(&q.body, &mut selects);
        for s in selects {
            if let Err(e) = check_select(s) {
                return ControlFlow::Break(e);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<Error> {
        if let Expr::Function(f) = e {
            if function_name(f) == "count"
                && matches!(&f.args, FunctionArguments::List(l) if l.args.is_empty())
            {
                return ControlFlow::Break(coded(
                    "42809",
                    "count(*) must be used to call a parameterless aggregate function",
                ));
            }
        }
        ControlFlow::Continue(())
    }
}

fn coded(code: &'static str, message: &str) -> Error {
    Error::Coded(code, message.into())
}

/// The SELECTs of a query body (nested queries are visited on their own).
fn selects_of<'a>(body: &'a SetExpr, out: &mut Vec<&'a Select>) {
    match body {
        SetExpr::Select(s) => out.push(s),
        SetExpr::SetOperation { left, right, .. } => {
            selects_of(left, out);
            selects_of(right, out);
        }
        _ => {}
    }
}

fn check_select(s: &Select) -> Result<()> {
    let key = |i: &sqlparser::ast::Ident| match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    };
    let mut named: Vec<(String, &NamedWindowDefinition)> = Vec::new();
    for def in &s.named_window {
        let name = key(&def.0);
        if named.iter().any(|(n, _)| *n == name) {
            return Err(coded(
                "42P20",
                &format!("window \"{}\" is already defined", def.0.value),
            ));
        }
        named.push((name, def));
    }
    // The ORDER BY a window has, its own or inherited from the window it names.
    let order_of = |spec: &WindowSpec| -> usize {
        if !spec.order_by.is_empty() {
            return spec.order_by.len();
        }
        let base = spec.window_name.as_ref().map(&key);
        named
            .iter()
            .find(|(n, _)| Some(n) == base.as_ref())
            .and_then(|(_, def)| match &def.1 {
                NamedWindowExpr::WindowSpec(w) => Some(w.order_by.len()),
                NamedWindowExpr::NamedWindow(_) => None,
            })
            .unwrap_or(0)
    };
    for (_, def) in &named {
        if let NamedWindowExpr::WindowSpec(spec) = &def.1 {
            check_frame(spec.window_frame.as_ref(), order_of(spec))?;
        }
    }
    let mut result = Ok(());
    let _ = sqlparser::ast::visit_expressions(&s.projection, |e| {
        if let Expr::Function(f) = e {
            if let Some(WindowType::WindowSpec(spec)) = &f.over {
                if let Err(err) = check_frame(spec.window_frame.as_ref(), order_of(spec)) {
                    result = Err(err);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    result
}

fn check_frame(frame: Option<&WindowFrame>, order_columns: usize) -> Result<()> {
    let Some(frame) = frame else {
        return Ok(());
    };
    let offset = |b: &WindowFrameBound| {
        matches!(
            b,
            WindowFrameBound::Preceding(Some(_)) | WindowFrameBound::Following(Some(_))
        )
    };
    let has_offset = offset(&frame.start_bound) || frame.end_bound.as_ref().is_some_and(offset);
    match frame.units {
        WindowFrameUnits::Groups if order_columns == 0 => {
            Err(coded("42P20", "GROUPS mode requires an ORDER BY clause"))
        }
        WindowFrameUnits::Range if has_offset && order_columns != 1 => Err(coded(
            "42P20",
            "RANGE with offset PRECEDING/FOLLOWING requires exactly one ORDER BY column",
        )),
        _ => Ok(()),
    }
}
