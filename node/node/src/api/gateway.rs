//! The read-only HTTP gateway: `GET`/`HEAD /api/v1/datasets/{id}/files/{path}` serves a file
//! of a dataset (one byte range at most, `Range: bytes=…`), streamed from the network block by
//! block as each block verifies; a folder answers its entries as JSON (an HTML page of links
//! for clients that ask for HTML); `GET
//! /api/v1/datasets/{id}/files` lists the whole dataset (`hoard ls`). docs/api.md, "Gateway".

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use hoard_api::{FileEntry, Listing};
use hoard_dataset::{Entry, EntryKind};
use hoard_prover::DatasetId;

use super::{ApiError, Roles, parse_id};
use crate::download::gateway::{GatewayError, Opened, Resolved};

/// Why a `Range` header cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeError {
    /// Not `bytes=a-b`, `bytes=a-` or `bytes=-n` (400).
    Malformed,
    /// More than one range (400: only single ranges are served).
    Multiple,
    /// Starts past the end of the file (416).
    Unsatisfiable,
}

/// The half-open byte range `[start, end)` of a file of `size` bytes that `value` asks for.
pub(crate) fn parse_range(value: &str, size: u64) -> Result<(u64, u64), RangeError> {
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or(RangeError::Malformed)?;
    if spec.contains(',') {
        return Err(RangeError::Multiple);
    }
    let (a, b) = spec.trim().split_once('-').ok_or(RangeError::Malformed)?;
    let num = |s: &str| -> Result<u64, RangeError> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(RangeError::Malformed);
        }
        s.parse().map_err(|_| RangeError::Malformed)
    };
    match (a.trim(), b.trim()) {
        ("", n) => {
            let n = num(n)?;
            if n == 0 || size == 0 {
                return Err(RangeError::Unsatisfiable);
            }
            Ok((size - n.min(size), size))
        }
        (a, "") => {
            let a = num(a)?;
            if a >= size {
                return Err(RangeError::Unsatisfiable);
            }
            Ok((a, size))
        }
        (a, b) => {
            let (a, b) = (num(a)?, num(b)?);
            if b < a {
                return Err(RangeError::Malformed);
            }
            if a >= size {
                return Err(RangeError::Unsatisfiable);
            }
            Ok((a, b.saturating_add(1).min(size)))
        }
    }
}

/// Percent-encodes everything but unreserved characters and `/` (for ETags and URLs).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The ETag of a file: the dataset id and the path, which together fix its bytes forever.
fn etag(dataset: &DatasetId, path: &str) -> String {
    format!("\"{dataset}/{}\"", encode_path(path))
}

fn entry_view(base: &str, e: &Entry, opened: &Opened) -> FileEntry {
    let url = format!("{base}/{}", encode_path(&e.path));
    let (kind, size, target) = match &e.kind {
        EntryKind::Directory => ("dir", None, None),
        EntryKind::File { size, .. } => ("file", Some(*size), None),
        EntryKind::Link { target } => {
            let size = opened.manifest.entries.iter().find_map(|t| match t.kind {
                EntryKind::File { size, .. } if t.path == *target => Some(size),
                _ => None,
            });
            ("link", size, Some(target.clone()))
        }
    };
    FileEntry {
        path: e.path.clone(),
        kind: kind.into(),
        size,
        target,
        url,
    }
}

/// `http://<Host>/api/v1/datasets/<id>/files`, for the URLs in listings.
fn base_url(headers: &HeaderMap, dataset: &DatasetId) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}/api/v1/datasets/{dataset}/files")
}

/// A listing as JSON, or as an HTML page of links when the client prefers HTML (browsers, and
/// fsspec's `ls`, which reads links from HTML only).
fn listing_response(headers: &HeaderMap, listing: Listing) -> Response {
    let html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if !html {
        return Json(listing).into_response();
    }
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{0}/{1}</title></head><body>\n<h1>{1}/</h1>\n<ul>\n",
        listing.dataset,
        escape(&listing.path)
    );
    for e in &listing.entries {
        let slash = if e.kind == "dir" { "/" } else { "" };
        page.push_str(&format!(
            "<li><a href=\"{}{slash}\">{}{slash}</a> {}</li>\n",
            escape(&e.url),
            escape(&e.path),
            e.size.map(|s| format!("{s} bytes")).unwrap_or_default()
        ));
    }
    page.push_str("</ul>\n</body></html>\n");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// `GET /api/v1/datasets/{id}/files`: every entry of the dataset.
pub(crate) async fn list_all(
    State(roles): State<Roles>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let dataset = DatasetId(parse_id(&id)?);
    let opened = roles.downloads.open(dataset).await?;
    let base = base_url(&headers, &dataset);
    let listing = Listing {
        dataset,
        path: String::new(),
        entries: opened
            .manifest
            .entries
            .iter()
            .map(|e| entry_view(&base, e, &opened))
            .collect(),
    };
    Ok(listing_response(&headers, listing))
}

/// `GET`/`HEAD /api/v1/datasets/{id}/files/{path}`.
pub(crate) async fn file(
    State(roles): State<Roles>,
    method: Method,
    headers: HeaderMap,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let dataset = DatasetId(parse_id(&id)?);
    let path = hoard_dataset::normalise_path(&path).map_err(GatewayError::BadPath)?;
    let opened = roles.downloads.open(dataset).await?;
    let (path, offset, size) = match opened.resolve(&path)? {
        Resolved::Dir { path, entries } => {
            let base = base_url(&headers, &dataset);
            let listing = Listing {
                dataset,
                path,
                entries: entries
                    .iter()
                    .map(|e| entry_view(&base, e, &opened))
                    .collect(),
            };
            return Ok(listing_response(&headers, listing));
        }
        Resolved::File { path, offset, size } => (path, offset, size),
    };
    let tag = etag(&dataset, &path);
    let mut out = HeaderMap::new();
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&tag) {
        out.insert(header::ETAG, v);
    }
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    let matches = |h: header::HeaderName| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"))
    };
    if matches(header::IF_NONE_MATCH) {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    // If-Range with another tag: the whole file, as RFC 9110 says.
    let range_applies = headers.get(header::IF_RANGE).is_none() || matches(header::IF_RANGE);
    let range = match headers.get(header::RANGE).filter(|_| range_applies) {
        None => None,
        Some(v) => {
            let v = v.to_str().unwrap_or("");
            match parse_range(v, size) {
                Ok(r) => Some(r),
                Err(RangeError::Unsatisfiable) => {
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                        out.insert(header::CONTENT_RANGE, v);
                    }
                    return Ok((
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        out,
                        Json(hoard_api::ErrorBody {
                            error: format!("{v:?} starts past the end of the file ({size} bytes)"),
                        }),
                    )
                        .into_response());
                }
                Err(RangeError::Multiple) => {
                    return Err(ApiError::bad(format!(
                        "{v:?}: only a single range is served; ask for each range on its own"
                    )));
                }
                Err(RangeError::Malformed) => {
                    return Err(ApiError::bad(format!(
                        "{v:?} is not a byte range (bytes=START-END, bytes=START- or bytes=-LAST)"
                    )));
                }
            }
        }
    };
    let (status, (start, end)) = match range {
        Some(r) => {
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.0, r.1.saturating_sub(1)))
            {
                out.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, r)
        }
        None => (StatusCode::OK, (0, size)),
    };
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if method == Method::HEAD || start == end {
        return Ok((status, out).into_response());
    }
    let rx = roles
        .downloads
        .stream(opened.clone(), offset + start, end - start);
    let served = roles
        .ctx
        .metrics
        .served_bytes
        .with_label_values(&["http", "reader"]);
    let body = futures::stream::unfold(rx, move |mut rx| {
        let served = served.clone();
        async move {
            let chunk = rx.recv().await?;
            let item = chunk
                .map(|c| {
                    served.inc_by(c.len() as u64);
                    Bytes::from(c)
                })
                .map_err(std::io::Error::other);
            Some((item, rx))
        }
    });
    Ok((status, out, Body::from_stream(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges_are_read_and_bad_ones_named() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok((0, 100)));
        assert_eq!(parse_range("bytes=900-", 1000), Ok((900, 1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Ok((900, 1000)));
        assert_eq!(parse_range("bytes=-5000", 1000), Ok((0, 1000)));
        assert_eq!(parse_range("bytes=990-5000", 1000), Ok((990, 1000)));
        assert_eq!(
            parse_range("bytes=1000-", 1000),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(
            parse_range("bytes=2000-3000", 1000),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(
            parse_range("bytes=-0", 1000),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(
            parse_range("bytes=0-1,5-6", 1000),
            Err(RangeError::Multiple)
        );
        for bad in [
            "0-99",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=-",
            "bytes=+1-2",
            "items=0-1",
        ] {
            assert_eq!(parse_range(bad, 1000), Err(RangeError::Malformed), "{bad}");
        }
    }

    #[test]
    fn etags_and_urls_stay_ascii() {
        let id = DatasetId([0xab; 32]);
        let tag = etag(&id, "a b/\"ü\".bin");
        assert!(
            tag.is_ascii() && HeaderValue::from_str(&tag).is_ok(),
            "{tag}"
        );
        assert!(tag.ends_with("/a%20b/%22%C3%BC%22.bin\""), "{tag}");
    }
}
