//! The plain HTML pages of `/connect`: no JavaScript, no external assets,
//! every echoed value escaped, never cached.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// A page: a status code, a title and a body already made of escaped parts.
pub struct Page {
    pub status: StatusCode,
    pub title: &'static str,
    pub body: String,
    /// Origins the forms may post or redirect to (the identity platform's),
    /// for the CSP's `form-action`.
    pub form_targets: Vec<String>,
}

impl Page {
    pub fn new(status: StatusCode, title: &'static str, body: String) -> Self {
        Self {
            status,
            title,
            body,
            form_targets: Vec::new(),
        }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · halosync</title></head>\n<body>\n<h1>{title}</h1>\n{body}\n</body></html>\n",
            title = escape(self.title),
            body = self.body
        );
        let mut form_action = String::from("'self'");
        for origin in &self.form_targets {
            form_action.push(' ');
            form_action.push_str(origin);
        }
        let csp = format!(
            "default-src 'none'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        );
        let mut response = (self.status, html).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        // The callback's URL carries the authorization code: never pass it on.
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        if let Ok(value) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
        response
    }
}

/// The form an agent starts from; `email` pre-filled from a link.
pub fn start_form(email: &str, notice: Option<&str>) -> String {
    let notice = notice
        .map(|n| format!("<p><strong>{}</strong></p>\n", escape(n)))
        .unwrap_or_default();
    format!(
        "{notice}<p>Connect your Exchange calendar to HaloITSM: sign in with your own Microsoft account.</p>\n\
         <form method=\"post\" action=\"/connect/start\">\n\
         <label for=\"email\">Your e-mail address</label>\n\
         <input id=\"email\" name=\"email\" type=\"email\" required value=\"{email}\">\n\
         <button type=\"submit\">Sign in with Microsoft</button>\n</form>\n\
         <form method=\"post\" action=\"/connect/disconnect\">\n\
         <input name=\"email\" type=\"hidden\" value=\"{email}\">\n\
         <p>To stop syncing, sign in once more to confirm: \
         <button type=\"submit\">Disconnect</button></p>\n</form>",
        email = escape(email)
    )
}

pub fn message(text: &str) -> String {
    format!(
        "<p>{}</p>\n<p><a href=\"/connect\">Back</a></p>",
        escape(text)
    )
}
