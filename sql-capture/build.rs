//! Refuses, with a clear message, to build against an SQLite compiled without the session
//! extension (the link would fail later with undefined `sqlite3session_*` symbols).
//! The flags come from the repository's `.cargo/config.toml`; a build started elsewhere
//! (`cargo install --git`, another workspace) must set them itself.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBSQLITE3_FLAGS");
    let flags = std::env::var("LIBSQLITE3_FLAGS").unwrap_or_default();
    let has = |f: &str| {
        flags
            .split_whitespace()
            .any(|x| x.trim_start_matches("-D") == f)
    };
    if !(has("SQLITE_ENABLE_SESSION") && has("SQLITE_ENABLE_PREUPDATE_HOOK")) {
        panic!(
            "mdbc needs SQLite's session extension: build from the mdbc repository (its \
             .cargo/config.toml sets it), or set \
             LIBSQLITE3_FLAGS=\"-DSQLITE_ENABLE_SESSION -DSQLITE_ENABLE_PREUPDATE_HOOK\" \
             (found: {flags:?})"
        );
    }
}
