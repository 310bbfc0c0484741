//! Page models for the sailfish templates under `templates/`. Every `<%= %>` escapes.

use std::borrow::Cow;

use sailfish::TemplateSimple;
use sailfish::runtime::{Buffer, Render, RenderError};

/// Text escaped for HTML once, when it was made, by sailfish's own escaping: for text that
/// every page shows and that changes only with the settings, so pages do not escape it again
/// on every request. `<%= %>` writes it as it is; it cannot be made from unescaped text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escaped(String);

impl Escaped {
    pub fn new(text: &str) -> Self {
        let mut out = String::with_capacity(text.len());
        sailfish::runtime::escape::escape_to_string(text, &mut out);
        Self(out)
    }

    /// The escaped text.
    pub fn as_html(&self) -> &str {
        &self.0
    }
}

impl Render for Escaped {
    fn render(&self, b: &mut Buffer) -> Result<(), RenderError> {
        b.push_str(&self.0);
        Ok(())
    }

    fn render_escaped(&self, b: &mut Buffer) -> Result<(), RenderError> {
        b.push_str(&self.0);
        Ok(())
    }
}

/// What every page shows around its content: name, logo, stylesheet, footer links.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub name: Escaped,
    pub css: Escaped,
    pub logo: Escaped,
    pub favicon: Escaped,
    pub docs: Escaped,
    pub metadata: Escaped,
}

/// Messages shown next to form fields.
#[derive(Debug, Clone, Default)]
pub struct FormErrors {
    pub general: Option<String>,
    pub client_name: Option<String>,
    pub redirect_uris: Option<String>,
    pub client_type: Option<String>,
    pub scope: Option<String>,
}

/// The registration form, with the values entered so far.
#[derive(Debug, Clone, Default)]
pub struct RegisterForm<'a> {
    /// Borrowed where it can be: the endpoint from the settings, the request's redirect URI
    /// and query on the unregistered page.
    pub action: Cow<'a, str>,
    pub csrf: String,
    pub client_name: String,
    pub redirect_uris: Cow<'a, str>,
    pub confidential: bool,
    pub scope: String,
    /// The failed authorization's query, to offer a retry after registering.
    pub retry: Cow<'a, str>,
    pub needs_initial_token: bool,
    pub errors: FormErrors,
}

#[derive(TemplateSimple)]
#[template(path = "unregistered.stpl")]
pub struct UnregisteredPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a Escaped,
    pub headline: &'a Escaped,
    pub explanation: &'a Escaped,
    pub client_id: &'a str,
    pub steps: &'a [Escaped],
    pub registration_doc: Option<&'a str>,
    /// For `cimd_failed`: the `cimd_error` code.
    pub cimd_error: Option<&'a str>,
    pub form: Option<RegisterForm<'a>>,
}

#[derive(TemplateSimple)]
#[template(path = "register.stpl")]
pub struct RegisterPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub f: RegisterForm<'a>,
}

#[derive(TemplateSimple)]
#[template(path = "registered.stpl")]
pub struct RegisteredPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub client_id: &'a str,
    pub client_name: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub registration_access_token: &'a str,
    pub registration_client_uri: &'a str,
    pub redirect_uris: &'a [String],
    pub retry_link: Option<String>,
}

#[derive(TemplateSimple)]
#[template(path = "error.stpl")]
pub struct ErrorPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub message: &'a str,
    pub error_code: &'a str,
    pub client_id: Option<&'a str>,
    pub steps: Vec<String>,
    /// A link back to the application with the error (its URL, and its host as shown).
    pub return_to: Option<(&'a str, &'a str)>,
    /// A link that tries again (a failed upstream sign-in: back to the sign-in page).
    pub retry: Option<&'a str>,
}

#[derive(TemplateSimple)]
#[template(path = "login.stpl")]
pub struct LoginPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub action: &'a str,
    /// None when signing in to the account page.
    pub client_name: Option<&'a str>,
    pub request_id: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    /// The identity providers' buttons: their names and where each starts (docs/behaviour.md
    /// §14).
    pub providers: Vec<(&'a str, String)>,
    /// Whether the password form is shown.
    pub password: bool,
}

/// After an upstream sign-in: the page that continues to the consent page by itself.
#[derive(TemplateSimple)]
#[template(path = "continue.stpl")]
pub struct ContinuePage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub location: &'a str,
}

/// A scope as a person reads it: its name, the sentence from `scopes.descriptions`, and
/// whether it is asked beyond what the person approved before.
#[derive(Debug, Clone)]
pub struct ScopeLine {
    pub name: String,
    pub description: Option<String>,
    pub new: bool,
}

#[derive(TemplateSimple)]
#[template(path = "consent.stpl")]
pub struct ConsentPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub action: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    /// For a metadata-document client: the host of its client_id URL, shown prominently.
    pub document_host: Option<String>,
    /// Its logo, when served from that host.
    pub logo: Option<&'a str>,
    pub username: &'a str,
    pub redirect_host: String,
    pub scopes: Vec<ScopeLine>,
    /// The resource, as host and path.
    pub resource: Option<String>,
    /// When the person approved this client before, if they did.
    pub approved_on: Option<String>,
    /// Whether more is asked than last time.
    pub step_up: bool,
    pub account: &'a str,
    pub request_id: &'a str,
    pub csrf: &'a str,
}

/// One application on the account page, as shown.
#[derive(Debug, Clone)]
pub struct AppLine {
    pub client_id: String,
    pub name: String,
    pub host: Option<String>,
    pub scopes: Vec<ScopeLine>,
    pub resource: Option<String>,
    pub first_use: String,
    pub last_use: String,
}

#[derive(TemplateSimple)]
#[template(path = "account.stpl")]
pub struct AccountPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub username: &'a str,
    pub apps: Vec<AppLine>,
    pub revoked: Option<&'a str>,
    pub csrf: &'a str,
    pub revoke_action: &'a str,
    pub signout_action: &'a str,
}

#[derive(TemplateSimple)]
#[template(path = "signed_out.stpl")]
pub struct SignedOutPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub account: &'a str,
}

/// What a browser that opens a gate route is shown (docs/behaviour.md §13.2).
#[derive(TemplateSimple)]
#[template(path = "gate.stpl")]
pub struct GatePage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub resource: &'a str,
    pub issuer: &'a str,
    pub scopes: Vec<&'a str>,
    pub metadata: &'a str,
    pub account: &'a str,
    /// Why the token sent was refused, when one was sent.
    pub refusal: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_is_escaped_once_and_written_as_it_is() {
        let text = Escaped::new("Tom & <Jerry> \"q\" 'a'");

        assert_eq!(
            text.as_html(),
            "Tom &amp; &lt;Jerry&gt; &quot;q&quot; &#039;a&#039;"
        );
        let mut b = Buffer::new();
        text.render_escaped(&mut b).expect("renders");
        assert_eq!(b.as_str(), text.as_html());
    }
}
