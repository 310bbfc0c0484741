//! Page models for the sailfish templates under `templates/`. Every `<%= %>` escapes.

use sailfish::TemplateSimple;

/// What every page shows around its content: name, logo, stylesheet, footer links.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub name: String,
    pub css: String,
    pub logo: String,
    pub favicon: String,
    pub docs: String,
    pub metadata: String,
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
pub struct RegisterForm {
    pub action: String,
    pub csrf: String,
    pub client_name: String,
    pub redirect_uris: String,
    pub confidential: bool,
    pub scope: String,
    /// The failed authorization's query, to offer a retry after registering.
    pub retry: String,
    pub needs_initial_token: bool,
    pub errors: FormErrors,
}

#[derive(TemplateSimple)]
#[template(path = "unregistered.stpl")]
pub struct UnregisteredPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub headline: &'a str,
    pub explanation: String,
    pub client_id: &'a str,
    pub steps: Vec<String>,
    pub registration_doc: Option<&'a str>,
    pub form: Option<RegisterForm>,
}

#[derive(TemplateSimple)]
#[template(path = "register.stpl")]
pub struct RegisterPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub f: RegisterForm,
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
}

#[derive(TemplateSimple)]
#[template(path = "login.stpl")]
pub struct LoginPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub action: &'a str,
    pub client_name: &'a str,
    pub request_id: &'a str,
    pub csrf: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
}

#[derive(TemplateSimple)]
#[template(path = "consent.stpl")]
pub struct ConsentPage<'a> {
    pub c: &'a Chrome,
    pub title: &'a str,
    pub action: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub username: &'a str,
    pub redirect_host: String,
    pub scopes: &'a [String],
    pub resource: Option<&'a str>,
    pub request_id: &'a str,
    pub csrf: &'a str,
}
