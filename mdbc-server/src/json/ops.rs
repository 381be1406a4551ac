//! jsonb's operators and functions that change or search a value: path reads (`#>`),
//! deletion (`-`, `#-`), `jsonb_set`, `jsonb_insert`, `jsonb_strip_nulls`, `||` — each as
//! PostgreSQL 15 defines it, errors included.

use super::error::JsonError;
use super::value::{resolve_index, Jsonb};

/// The value at `path` (`#>`): object keys, array indexes (negative from the end); a
/// step that is not an integer on an array finds nothing.
pub fn get_path<'a>(mut v: &'a Jsonb, path: &[String]) -> Option<&'a Jsonb> {
    for step in path {
        v = match v {
            Jsonb::Object(_) => v.member(step)?,
            Jsonb::Array(_) => v.element(step.trim().parse().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// `jsonb - text`: the object without that key, or the array without those strings.
pub fn delete_key(v: &Jsonb, key: &str) -> Result<Jsonb, JsonError> {
    delete_keys(v, &[key.to_string()])
}

/// `jsonb - text[]`.
pub fn delete_keys(v: &Jsonb, keys: &[String]) -> Result<Jsonb, JsonError> {
    Ok(match v {
        Jsonb::Object(m) => Jsonb::Object(
            m.iter()
                .filter(|(k, _)| !keys.contains(k))
                .cloned()
                .collect(),
        ),
        Jsonb::Array(a) => Jsonb::Array(
            a.iter()
                .filter(|x| !matches!(x, Jsonb::String(s) if keys.contains(s)))
                .cloned()
                .collect(),
        ),
        _ => return Err(scalar_error("delete from")),
    })
}

/// `jsonb - integer`: the array without that element (negative from the end).
pub fn delete_index(v: &Jsonb, index: i64) -> Result<Jsonb, JsonError> {
    match v {
        Jsonb::Array(a) => {
            let mut a = a.clone();
            if let Some(i) = resolve_index(index, a.len()) {
                a.remove(i);
            }
            Ok(Jsonb::Array(a))
        }
        Jsonb::Object(_) => Err(JsonError::new(
            "22023",
            "cannot delete from object using integer index",
        )),
        _ => Err(scalar_error("delete from")),
    }
}

fn scalar_error(what: &str) -> JsonError {
    JsonError::new("22023", format!("cannot {what} scalar"))
}

/// `#-`: the value without the element at `path`.
pub fn delete_path(v: &Jsonb, path: &[String]) -> Result<Jsonb, JsonError> {
    if !matches!(v, Jsonb::Array(_) | Jsonb::Object(_)) {
        return Err(JsonError::new("22023", "cannot delete path in scalar"));
    }
    let mut out = v.clone();
    if let Some((last, init)) = path.split_last() {
        if let Some(parent) = walk_mut(&mut out, init, 0)? {
            match parent {
                Jsonb::Object(m) => m.retain(|(k, _)| k != last),
                Jsonb::Array(a) => {
                    let i = index_step(last, init.len())?;
                    if let Some(i) = resolve_index(i, a.len()) {
                        a.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// A path step used on an array: an integer, else PostgreSQL's 22P02 naming the position.
fn index_step(step: &str, at: usize) -> Result<i64, JsonError> {
    step.trim().parse().map_err(|_| {
        JsonError::new(
            "22P02",
            format!(
                "path element at position {} is not an integer: \"{step}\"",
                at + 1
            ),
        )
    })
}

/// The container `path` leads to, if every step exists.
fn walk_mut<'a>(
    v: &'a mut Jsonb,
    path: &[String],
    depth: usize,
) -> Result<Option<&'a mut Jsonb>, JsonError> {
    let Some((step, rest)) = path.split_first() else {
        return Ok(Some(v));
    };
    let next = match v {
        Jsonb::Object(m) => m.iter_mut().find(|(k, _)| k == step).map(|(_, x)| x),
        Jsonb::Array(a) => {
            let i = index_step(step, depth)?;
            let len = a.len();
            resolve_index(i, len).and_then(move |i| a.get_mut(i))
        }
        _ => None,
    };
    match next {
        Some(n) => walk_mut(n, rest, depth + 1),
        None => Ok(None),
    }
}

/// `jsonb_set(target, path, new, create_if_missing)` and `jsonb_insert(target, path, new,
/// insert_after)`: `insert` adds beside an array element (or a new object key) instead of
/// replacing it.
pub fn set_path(
    v: &Jsonb,
    path: &[String],
    new: Jsonb,
    create: bool,
    insert: Option<bool>,
) -> Result<Jsonb, JsonError> {
    if !matches!(v, Jsonb::Array(_) | Jsonb::Object(_)) {
        return Err(JsonError::new("22023", "cannot set path in scalar"));
    }
    let Some((last, init)) = path.split_last() else {
        return Ok(v.clone());
    };
    let mut out = v.clone();
    let Some(parent) = walk_mut(&mut out, init, 0)? else {
        return Ok(out);
    };
    match parent {
        Jsonb::Object(m) => {
            let exists = m.iter().any(|(k, _)| k == last);
            if exists && insert.is_some() {
                return Err(JsonError::new("22023", "cannot replace existing key"));
            }
            if exists || create || insert.is_some() {
                let mut members: Vec<(String, Jsonb)> =
                    m.iter().filter(|(k, _)| k != last).cloned().collect();
                members.push((last.clone(), new));
                *parent = Jsonb::object(members);
            }
        }
        Jsonb::Array(a) => {
            let i = index_step(last, init.len())?;
            let len = a.len() as i64;
            match insert {
                Some(after) => {
                    // Positions past either end add at that end.
                    let at = if i < 0 { (len + i).max(0) } else { i.min(len) };
                    let at = if after && (i < len && i >= -len) {
                        at + 1
                    } else {
                        at
                    };
                    a.insert(at.clamp(0, len) as usize, new);
                }
                None => match resolve_index(i, a.len()) {
                    Some(at) => a[at] = new,
                    None if create => {
                        if i < 0 {
                            a.insert(0, new);
                        } else {
                            a.push(new);
                        }
                    }
                    None => {}
                },
            }
        }
        _ => {}
    }
    Ok(out)
}

/// One step of a subscript assignment: the subscript as text, and whether it was written
/// as an integer (which decides what a missing level is created as).
pub type Subscript = (String, bool);

/// `UPDATE … SET j['a'][0] = v`: PostgreSQL's subscript assignment. Unlike `jsonb_set`, it
/// creates every missing level (an array below an integer subscript, an object below a
/// text one), pads arrays with nulls up to an index past their end, and treats a NULL
/// target as the empty container its first subscript implies.
pub fn assign_path(
    target: Option<Jsonb>,
    path: &[Subscript],
    new: Jsonb,
) -> Result<Jsonb, JsonError> {
    let Some(first) = path.first() else {
        return Ok(new);
    };
    let target = target.unwrap_or_else(|| empty_for(first));
    assign(target, path, 0, new)
}

fn empty_for(step: &Subscript) -> Jsonb {
    if step.1 {
        Jsonb::Array(Vec::new())
    } else {
        Jsonb::Object(Vec::new())
    }
}

fn assign(node: Jsonb, path: &[Subscript], at: usize, new: Jsonb) -> Result<Jsonb, JsonError> {
    let Some(((key, _), rest)) = path[at..].split_first().map(|(k, _)| (k, &path[at + 1..])) else {
        return Ok(new);
    };
    // What a missing level becomes: the value itself at the end of the path, else the
    // container the next subscript implies.
    let missing = || rest.first().map_or(Jsonb::Null, empty_for);
    match node {
        Jsonb::Object(members) => {
            let child = members
                .iter()
                .find(|(k, _)| k == key)
                .map_or_else(missing, |(_, v)| v.clone());
            let child = assign(child, path, at + 1, new)?;
            let mut members: Vec<(String, Jsonb)> =
                members.into_iter().filter(|(k, _)| k != key).collect();
            members.push((key.clone(), child));
            Ok(Jsonb::object(members))
        }
        Jsonb::Array(mut items) => {
            let i: i64 = key.trim().parse().map_err(|_| {
                JsonError::new(
                    "22P02",
                    format!(
                        "path element at position {} is not an integer: \"{key}\"",
                        at + 1
                    ),
                )
            })?;
            let len = items.len() as i64;
            let index = if i < 0 { len + i } else { i };
            if index < 0 {
                return Err(JsonError::new(
                    "22023",
                    format!("path element at position {} is out of range: {i}", at + 1),
                ));
            }
            let index = index as usize;
            let child = if index < items.len() {
                std::mem::replace(&mut items[index], Jsonb::Null)
            } else {
                items.resize(index + 1, Jsonb::Null);
                missing()
            };
            items[index] = assign(child, path, at + 1, new)?;
            Ok(Jsonb::Array(items))
        }
        _ => Err(JsonError::new(
            "22023",
            "cannot replace existing key (the path assumes key is a composite object, but \
             it is a scalar value)",
        )),
    }
}

/// `jsonb_strip_nulls`: object members whose value is null removed, at every depth.
pub fn strip_nulls(v: &Jsonb) -> Jsonb {
    match v {
        Jsonb::Object(m) => Jsonb::Object(
            m.iter()
                .filter(|(_, x)| *x != Jsonb::Null)
                .map(|(k, x)| (k.clone(), strip_nulls(x)))
                .collect(),
        ),
        Jsonb::Array(a) => Jsonb::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// `jsonb || jsonb`: two objects merge (the right one's keys win), two arrays
/// concatenate, an array and anything else append or prepend it, two scalars pair up.
pub fn concat(a: Jsonb, b: Jsonb) -> Jsonb {
    match (a, b) {
        (Jsonb::Object(mut x), Jsonb::Object(y)) => {
            x.extend(y);
            Jsonb::object(x)
        }
        (Jsonb::Array(mut x), Jsonb::Array(y)) => {
            x.extend(y);
            Jsonb::Array(x)
        }
        (Jsonb::Array(mut x), y) => {
            x.push(y);
            Jsonb::Array(x)
        }
        (x, Jsonb::Array(mut y)) => {
            y.insert(0, x);
            Jsonb::Array(y)
        }
        (x, y) => Jsonb::Array(vec![x, y]),
    }
}
