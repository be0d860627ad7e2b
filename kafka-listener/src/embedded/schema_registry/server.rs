//! The HTTP face of the embedded registry: the subset of the Confluent
//! Schema Registry REST API that serializers, deserializers and tools use.
//!
//! Source: Confluent, "Schema Registry API Reference"
//! (<https://docs.confluent.io/platform/current/schema-registry/develop/api.html>).
//! Only Avro schemas without references are accepted.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::store::{Compatibility, Store, StoreError, Version};
use crate::avro::CONTENT_TYPE;

type Shared = State<Arc<Store>>;

/// The routes, over `store`.
pub(crate) fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route("/schemas/types", get(|| async { reply(json!(["AVRO"])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_latest),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check),
        )
        .route("/config", get(global_config).put(set_global_config))
        .route(
            "/config/{subject}",
            get(subject_config).put(set_subject_config),
        )
        .route(
            "/mode",
            get(|| async { reply(json!({ "mode": "READWRITE" })) }),
        )
        .layer(middleware::from_fn_with_state(
            Arc::clone(&store),
            authorize,
        ))
        .with_state(store)
}

/// Refuses requests without the required basic-auth credentials (HTTP 401,
/// error code 40101, as Confluent's registry answers).
async fn authorize(State(store): Shared, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if store.authorized(header) {
        next.run(request).await
    } else {
        StoreError {
            code: 40101,
            message: "Unauthorized".into(),
        }
        .into_response()
    }
}

fn reply(body: Value) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "error_code": self.code, "message": self.message });
        (
            status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            body.to_string(),
        )
            .into_response()
    }
}

type Answer = Result<Response, StoreError>;

fn version_json(v: Version) -> Value {
    json!({ "subject": v.subject, "version": v.version, "id": v.id, "schema": v.schema })
}

/// The body of register, look-up and compatibility requests.
#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

fn schema_of(body: &Bytes) -> Result<String, StoreError> {
    let body: SchemaBody = serde_json::from_slice(body).map_err(|e| StoreError {
        code: 42201,
        message: format!("Invalid request body: {e}"),
    })?;
    if body
        .schema_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("AVRO"))
    {
        return Err(StoreError {
            code: 42201,
            message: "the embedded registry supports AVRO schemas only".into(),
        });
    }
    if !body.references.is_empty() {
        return Err(StoreError {
            code: 42201,
            message: "the embedded registry does not support schema references".into(),
        });
    }
    Ok(body.schema)
}

fn id_of(id: &str) -> Result<u32, StoreError> {
    id.parse().map_err(|_| StoreError {
        code: 40403,
        message: format!("Schema {id} not found"),
    })
}

async fn schema_by_id(State(store): Shared, Path(id): Path<String>) -> Answer {
    Ok(reply(json!({ "schema": store.schema(id_of(&id)?)? })))
}

async fn raw_schema_by_id(State(store): Shared, Path(id): Path<String>) -> Answer {
    let text = store.schema(id_of(&id)?)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}

async fn id_versions(State(store): Shared, Path(id): Path<String>) -> Answer {
    let id = id_of(&id)?;
    store.schema(id)?;
    let usages: Vec<Value> = store
        .usages(id)
        .into_iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    Ok(reply(Value::Array(usages)))
}

async fn subjects(State(store): Shared) -> Response {
    reply(json!(store.subjects()))
}

async fn versions(State(store): Shared, Path(subject): Path<String>) -> Answer {
    Ok(reply(json!(store.versions(&subject)?)))
}

async fn register(State(store): Shared, Path(subject): Path<String>, body: Bytes) -> Answer {
    let id = store.register(&subject, &schema_of(&body)?)?;
    tracing::debug!(%subject, id, "embedded schema registry: registered");
    Ok(reply(json!({ "id": id })))
}

async fn version(State(store): Shared, Path((subject, version)): Path<(String, String)>) -> Answer {
    Ok(reply(version_json(store.version(&subject, &version)?)))
}

async fn raw_version(
    State(store): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let v = store.version(&subject, &version)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], v.schema).into_response())
}

async fn lookup(State(store): Shared, Path(subject): Path<String>, body: Bytes) -> Answer {
    Ok(reply(version_json(
        store.lookup(&subject, &schema_of(&body)?)?,
    )))
}

async fn delete_subject(State(store): Shared, Path(subject): Path<String>) -> Answer {
    Ok(reply(json!(store.delete_subject(&subject)?)))
}

fn compatibility_answer(messages: Vec<String>) -> Response {
    reply(json!({ "is_compatible": messages.is_empty(), "messages": messages }))
}

async fn check_latest(State(store): Shared, Path(subject): Path<String>, body: Bytes) -> Answer {
    Ok(compatibility_answer(store.check(
        &subject,
        "latest",
        &schema_of(&body)?,
    )?))
}

async fn check(
    State(store): Shared,
    Path((subject, version)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    Ok(compatibility_answer(store.check(
        &subject,
        &version,
        &schema_of(&body)?,
    )?))
}

fn level_of(body: &Bytes) -> Result<Compatibility, StoreError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| StoreError {
        code: 42203,
        message: format!("Invalid request body: {e}"),
    })?;
    v.get("compatibility")
        .or_else(|| v.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .ok_or_else(|| "no `compatibility`".to_owned())
        .and_then(str::parse)
        .map_err(|message| StoreError {
            code: 42203,
            message,
        })
}

async fn global_config(State(store): Shared) -> Response {
    reply(json!({ "compatibilityLevel": store.compatibility(None).to_string() }))
}

async fn set_global_config(State(store): Shared, body: Bytes) -> Answer {
    let level = level_of(&body)?;
    store.set_compatibility(None, level);
    Ok(reply(json!({ "compatibility": level.to_string() })))
}

async fn subject_config(State(store): Shared, Path(subject): Path<String>) -> Response {
    reply(json!({ "compatibilityLevel": store.compatibility(Some(&subject)).to_string() }))
}

async fn set_subject_config(
    State(store): Shared,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    let level = level_of(&body)?;
    store.set_compatibility(Some(&subject), level);
    Ok(reply(json!({ "compatibility": level.to_string() })))
}
