//! The forms of `tests/forms/forms.rs` on edition 2024 (the `promtrack-edition2021` crate
//! compiles the same file on 2021), and the handlers among them served by a real router.
#![forbid(unsafe_code)]
#![deny(warnings, clippy::all)]

#[path = "../forms/forms.rs"]
mod forms;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

#[test]
fn every_form_compiles_and_records() {
    forms::exercise();
}

async fn get(app: axum::Router, uri: &str) -> (StatusCode, String) {
    let response = app
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn attributed_handlers_still_serve_through_a_router() {
    let app = forms::app().merge(promtrack::metrics_router());
    assert_eq!(
        get(app.clone(), "/users/4").await,
        (StatusCode::OK, "hello 4".into())
    );
    assert_eq!(get(app.clone(), "/users/0").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(app.clone(), "/health").await,
        (StatusCode::OK, "ok".into())
    );
    let (status, text) = get(app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        r#"forms_handler_total{type="user",even="true",status="true"} "#,
        r#"forms_handler_total{type="user",even="true",status="false"} 1"#,
        r#"forms_handler_seconds_count{route="/users/{id}"} "#,
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}
