//! The request as the sim's handlers see it, and response helpers.
//!
//! Handlers get the path after their service's prefix, the decoded query pairs in order
//! (repeated keys kept), the headers and the whole body.

use std::net::SocketAddr;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

pub struct Req {
    pub method: Method,
    pub path: String,
    /// The full path as received (still percent-encoded, with the service prefix).
    pub raw_path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `http://host:port` as the client addressed us.
    pub origin: String,
}

impl Req {
    pub async fn read(req: Request, addr: SocketAddr) -> Result<Req, Response> {
        let (parts, body) = req.into_parts();
        let body = to_bytes(body, 25 * 1024 * 1024).await.map_err(|_| {
            json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &serde_json::json!({"errors":[{"type":"PayloadLimitError","message":"The payload limit size of 25mb has been reached"}]}),
                "application/json",
            )
        })?;
        let query = parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let host = parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| addr.to_string());
        Ok(Req {
            method: parts.method,
            path: percent_decode(parts.uri.path()),
            raw_path: parts.uri.path().to_string(),
            query,
            headers: parts.headers,
            body,
            origin: format!("http://{host}"),
        })
    }

    pub fn with_path(mut self, path: &str) -> Req {
        self.path = if path.is_empty() {
            "/".to_string()
        } else {
            path.to_string()
        };
        self
    }

    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.get(key).and_then(|v| v.to_str().ok())
    }

    pub fn json_body(&self) -> Option<Value> {
        if self.body.is_empty() {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }
}

pub fn json(status: StatusCode, body: &Value, content_type: &str) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    set(&mut resp, "content-type", content_type);
    resp
}

pub fn empty(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

pub fn set(resp: &mut Response, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        resp.headers_mut().insert(n, v);
    }
}

pub fn append(resp: &mut Response, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        resp.headers_mut().append(n, v);
    }
}

pub fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Decodes `%XX` escapes (not `+`: paths keep it literal).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
