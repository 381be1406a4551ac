//! The REST API (HTTP, JSON), after the original MUSIC's: keys, critical keys under a
//! lock ref, and locks. Documented with curl examples in the crate README.
//!
//! Errors are JSON, `{"error": "...", "code": "..."}`, with the status saying what kind:
//! 400 bad request, 401 missing or wrong token, 404 no such key or lock ref, 409 a lock
//! conflict (not the holder, lease run out, fenced off by a newer ref), 413 a body too
//! large, 503 no quorum or no consensus leader reachable.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::locks::{LockError, LockInfo, LockRef};
use crate::service::{Music, MusicError};
use crate::store::{DataStore, StoreError, Versioned, MAX_VALUE};
use crate::version::Version;

struct Api<D> {
    music: Music<D>,
    token: Option<String>,
}

/// An error as the API answers it.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.2, "code": self.1}))).into_response()
    }
}

impl From<MusicError> for ApiError {
    fn from(e: MusicError) -> Self {
        let msg = e.to_string();
        let (status, code) = match &e {
            MusicError::Lock(LockError::UnknownRef(_)) => {
                (StatusCode::NOT_FOUND, "unknown_lock_ref")
            }
            MusicError::Lock(LockError::NotHolder(_)) | MusicError::NotHolder { .. } => {
                (StatusCode::CONFLICT, "not_holder")
            }
            MusicError::LeaseExpired(_) => (StatusCode::CONFLICT, "lease_expired"),
            MusicError::Store(StoreError::Fenced { .. }) => (StatusCode::CONFLICT, "fenced"),
            MusicError::Lock(LockError::NoKeys)
            | MusicError::Lock(LockError::Malformed(_))
            | MusicError::Invalid(_)
            | MusicError::Store(StoreError::Invalid(_)) => (StatusCode::BAD_REQUEST, "bad_request"),
            MusicError::Timeout(_) => (StatusCode::CONFLICT, "not_acquired"),
            MusicError::Unavailable(_)
            | MusicError::Store(StoreError::NoQuorum { .. })
            | MusicError::Store(StoreError::Storage(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        ApiError(status, code, msg)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "bad_request"
        };
        ApiError(status, code, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
    }
}

type ApiResult = Result<Response, ApiError>;

/// The router serving the API of `music`; with `token`, every request must carry
/// `Authorization: Bearer TOKEN`.
pub fn router<D: DataStore>(music: Music<D>, token: Option<String>) -> Router {
    let api = Arc::new(Api { music, token });
    Router::new()
        .route("/v1/keys/{key}", put(put_key::<D>).get(get_key::<D>))
        .route(
            "/v1/keys/{key}/critical",
            put(critical_put::<D>).get(critical_get::<D>),
        )
        .route("/v1/locks", post(create_lock::<D>))
        .route(
            "/v1/locks/{lock_ref}",
            get(lock_info::<D>).delete(release::<D>),
        )
        .route("/v1/locks/{lock_ref}/acquire", post(acquire::<D>))
        .route("/v1/locks/{lock_ref}/renew", post(renew::<D>))
        .route("/v1/locks/holder/{key}", get(holder::<D>))
        .route("/v1/locks/queue/{key}", get(queue::<D>))
        .route("/v1/status", get(status::<D>))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            authorize::<D>,
        ))
        // A value of MAX_VALUE bytes, as JSON, with room for the envelope.
        .layer(DefaultBodyLimit::max(2 * MAX_VALUE + 4096))
        .with_state(api)
}

/// Lets a request through only with the bearer token, when one is set.
async fn authorize<D>(
    State(api): State<Arc<Api<D>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match check_token(api.token.as_deref(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn check_token(token: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Ok(());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared in constant time: the token is a secret.
    let ok = given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token".into(),
        ))
    }
}

#[derive(Deserialize)]
struct ValueBody {
    value: Value,
}

#[derive(Deserialize)]
struct RefQuery {
    lock_ref: LockRef,
}

#[derive(Deserialize)]
struct CreateBody {
    keys: Vec<String>,
    #[serde(default)]
    owner: String,
    /// Acquire at once (in the same decision when the queues are empty).
    #[serde(default)]
    acquire: bool,
    /// With `acquire`: wait up to this long for the lock.
    #[serde(default)]
    wait_ms: u64,
}

#[derive(Deserialize, Default)]
struct AcquireBody {
    /// Wait up to this long for the lock (0: one attempt).
    #[serde(default)]
    wait_ms: u64,
}

fn version_json(v: &Version) -> Value {
    json!({"epoch": v.epoch, "hlc": v.hlc, "node": v.node})
}

fn value_json(key: &str, v: &Versioned) -> Value {
    // Values put through this API are JSON; anything else is shown as text.
    let value = serde_json::from_slice::<Value>(&v.value)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&v.value).into_owned()));
    json!({"key": key, "value": value, "version": version_json(&v.version)})
}

fn info_json(i: &LockInfo) -> Value {
    json!({
        "lock_ref": i.lock_ref,
        "keys": i.keys,
        "owner": i.owner,
        "lease_ms": i.lease_ms,
        "held_since_ms": i.held_since_ms,
        "expires_ms": i.expires_ms,
    })
}

fn encode_value(b: Result<Json<ValueBody>, JsonRejection>) -> Result<Bytes, ApiError> {
    let Json(b) = b?;
    Ok(Bytes::from(
        serde_json::to_vec(&b.value).unwrap_or_default(),
    ))
}

fn not_found(key: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("key {key:?} has no value"),
    )
}

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

async fn put_key<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    key: Result<Path<String>, PathRejection>,
    body: Result<Json<ValueBody>, JsonRejection>,
) -> ApiResult {
    let Path(key) = key?;
    let value = encode_value(body)?;
    let v = api.music.put(&key, value).await?;
    ok(json!({"key": key, "version": version_json(&v)}))
}

async fn get_key<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    key: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(key) = key?;
    match api.music.get(&key).await? {
        Some(v) => ok(value_json(&key, &v)),
        None => Err(not_found(&key)),
    }
}

async fn critical_put<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    key: Result<Path<String>, PathRejection>,
    q: Result<Query<RefQuery>, QueryRejection>,
    body: Result<Json<ValueBody>, JsonRejection>,
) -> ApiResult {
    let Path(key) = key?;
    let Query(q) = q?;
    let value = encode_value(body)?;
    let v = api.music.critical_put(&key, value, q.lock_ref).await?;
    ok(json!({"key": key, "version": version_json(&v)}))
}

async fn critical_get<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    key: Result<Path<String>, PathRejection>,
    q: Result<Query<RefQuery>, QueryRejection>,
) -> ApiResult {
    let Path(key) = key?;
    let Query(q) = q?;
    match api.music.critical_get(&key, q.lock_ref).await? {
        Some(v) => ok(value_json(&key, &v)),
        None => Err(not_found(&key)),
    }
}

async fn create_lock<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> ApiResult {
    let Json(b) = body?;
    if !b.acquire {
        let r = api.music.create_lock_ref(&b.keys, &b.owner).await?;
        return Ok((StatusCode::CREATED, Json(json!({"lock_ref": r}))).into_response());
    }
    let (r, mut a) = api.music.create_and_acquire(&b.keys, &b.owner).await?;
    if !a.held && b.wait_ms > 0 {
        match api
            .music
            .acquire_lock_wait(r, Duration::from_millis(b.wait_ms.min(600_000)))
            .await
        {
            Ok(got) => a = got,
            Err(MusicError::Timeout(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let body = json!({"lock_ref": r, "held": a.held, "expires_ms": a.expires_ms});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn acquire<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    r: Result<Path<LockRef>, PathRejection>,
    body: Option<Json<AcquireBody>>,
) -> ApiResult {
    let Path(r) = r?;
    let wait = body.map(|Json(b)| b.wait_ms).unwrap_or(0);
    let a = if wait == 0 {
        api.music.acquire_lock(r).await
    } else {
        api.music
            .acquire_lock_wait(r, Duration::from_millis(wait.min(600_000)))
            .await
    };
    match a {
        Ok(a) => ok(json!({"lock_ref": r, "held": a.held, "expires_ms": a.expires_ms})),
        Err(MusicError::Timeout(_)) => {
            ok(json!({"lock_ref": r, "held": false, "expires_ms": null}))
        }
        Err(e) => Err(e.into()),
    }
}

async fn renew<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    r: Result<Path<LockRef>, PathRejection>,
) -> ApiResult {
    let Path(r) = r?;
    let e = api.music.renew(r).await?;
    ok(json!({"lock_ref": r, "expires_ms": e}))
}

async fn release<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    r: Result<Path<LockRef>, PathRejection>,
) -> ApiResult {
    let Path(r) = r?;
    let removed = api.music.release_lock(r).await?;
    if removed {
        ok(json!({"lock_ref": r, "released": true}))
    } else {
        Err(MusicError::Lock(LockError::UnknownRef(r)).into())
    }
}

async fn lock_info<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    r: Result<Path<LockRef>, PathRejection>,
) -> ApiResult {
    let Path(r) = r?;
    match api.music.lock_info(r).await? {
        Some(i) => ok(info_json(&i)),
        None => Err(MusicError::Lock(LockError::UnknownRef(r)).into()),
    }
}

async fn holder<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    key: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(key) = key?;
    let h = api.music.holder(&key).await?;
    ok(json!({"key": key, "holder": h.as_ref().map(info_json)}))
}

async fn queue<D: DataStore>(
    State(api): State<Arc<Api<D>>>,
    key: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(key) = key?;
    let q = api.music.queue(&key).await?;
    ok(json!({"key": key, "queue": q.iter().map(info_json).collect::<Vec<_>>()}))
}

async fn status<D: DataStore>(State(api): State<Arc<Api<D>>>) -> ApiResult {
    let s = api
        .music
        .locks()
        .status()
        .await
        .map_err(|e| MusicError::Unavailable(e.to_string()))?;
    ok(json!({
        "node": s.id,
        "role": format!("{:?}", s.role).to_lowercase(),
        "leader": s.leader,
        "decided": s.decided,
        "members": s.members.ids().collect::<Vec<_>>(),
    }))
}
