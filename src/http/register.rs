//! `POST /register` (RFC 7591: JSON API and the HTML form) and `/register/{client_id}`
//! (RFC 7592: read, update, delete with the registration access token).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::AppState;
use crate::http::common::{
    BodyError, body_problem, json_no_store, media_type, read_body, store_problem,
};
use crate::oauth::errors::{ErrorCode, OAuthError};
use crate::oauth::params::Params;
use crate::oauth::register::{self, ClientMetadata, Field, MetadataInput, RegisterError};
use crate::oauth::secret;
use crate::render::html::{self, CSRF_COOKIE, csrf_cookie, form_enabled, new_form};
use crate::render::json::problem_body;
use crate::render::pages::{RegisterForm, RegisterPage, RegisteredPage};
use crate::render::{Problem, Renderer};
use crate::store::{Client, StoreError};

/// A client just created, with the secrets that are shown once and then only kept hashed.
pub struct Created {
    pub client: Client,
    pub client_secret: Option<String>,
    pub registration_access_token: String,
}

/// Creates and stores a client; returns only after the store confirmed the write.
pub async fn create_client(
    state: &AppState,
    metadata: ClientMetadata,
) -> Result<Created, StoreError> {
    let client_secret = metadata.is_confidential().then(secret::random_token);
    let registration_access_token = secret::random_token();
    // The app's clock, like every other time check (tests move it instead of sleeping).
    let issued_at = state.clock.now();
    let ttl = state.settings.registration.client_ttl;
    let client = Client {
        client_id: secret::random_id(),
        secret_hash: client_secret.as_deref().map(secret::hash),
        registration_token_hash: secret::hash(&registration_access_token),
        metadata,
        issued_at,
        expires_at: if ttl == 0 {
            0
        } else {
            issued_at.saturating_add(ttl)
        },
    };
    state.store.put_client(&client).await?;
    Ok(Created {
        client,
        client_secret,
        registration_access_token,
    })
}

/// The registration response (RFC 7591 §3.2.1): everything stored, plus the identifiers.
pub fn client_document(
    state: &AppState,
    client: &Client,
    secret: Option<&str>,
    rat: Option<&str>,
) -> Value {
    let mut doc = serde_json::to_value(&client.metadata).unwrap_or_else(|_| json!({}));
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("client_id".into(), json!(client.client_id));
        obj.insert("client_id_issued_at".into(), json!(client.issued_at));
        if let Some(s) = secret {
            obj.insert("client_secret".into(), json!(s));
        }
        if client.secret_hash.is_some() {
            obj.insert("client_secret_expires_at".into(), json!(0));
        }
        if let Some(t) = rat {
            obj.insert("registration_access_token".into(), json!(t));
        }
        obj.insert(
            "registration_client_uri".into(),
            json!(registration_client_uri(state, &client.client_id)),
        );
    }
    doc
}

fn registration_client_uri(state: &AppState, client_id: &str) -> String {
    // client_ids are base64url, so they need no escaping in a path segment.
    format!("{}/register/{client_id}", state.meta.endpoints.issuer)
}

fn problem_json(p: &Problem) -> HttpResponse {
    let mut res = HttpResponse::build(p.status);
    crate::http::common::no_store(&mut res);
    if let Some(secs) = p.retry_after {
        res.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    res.json(problem_body(p))
}

fn register_error_json(e: &RegisterError) -> HttpResponse {
    problem_json(&Problem::new(StatusCode::BAD_REQUEST, e.error.clone()))
}

fn disabled() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        OAuthError::new(
            ErrorCode::AccessDenied,
            "Dynamic client registration is disabled on this server; ask its operator to register your client.",
        ),
    )
}

/// RFC 6750 §3: `401` with `WWW-Authenticate: Bearer error="invalid_token"`.
fn invalid_token(description: &str) -> HttpResponse {
    let mut res = HttpResponse::Unauthorized();
    crate::http::common::no_store(&mut res);
    res.insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""))
        .json(json!({"error": ErrorCode::InvalidToken.as_str(), "error_description": description}))
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether the initial access token requirement (if any) is met.
fn initial_token_ok(state: &AppState, presented: Option<&str>) -> bool {
    let required = &state.settings.registration.initial_access_token;
    required.is_empty() || presented.is_some_and(|p| secret::equal(p, required))
}

/// `POST /register` with a JSON body (RFC 7591 §3.1).
pub async fn post_register(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    if !state.settings.registration.enabled {
        return problem_json(&disabled());
    }
    if !initial_token_ok(&state, bearer(&req)) {
        return invalid_token(
            "This server requires an initial access token (Authorization: Bearer) to register clients.",
        );
    }
    if media_type(&req) != "application/json" {
        return problem_json(&Problem::new(
            StatusCode::BAD_REQUEST,
            OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "Send the client metadata as a JSON object with Content-Type: application/json.",
            ),
        ));
    }
    let body = match read_body(payload).await {
        Ok(b) => b,
        Err(e) => return problem_json(&body_problem(e, ErrorCode::InvalidClientMetadata)),
    };
    let metadata = match register::parse_json(&body)
        .and_then(|input| register::validate(input, &state.settings.scopes.supported))
    {
        Ok(m) => m,
        Err(e) => return register_error_json(&e),
    };
    match create_client(&state, metadata).await {
        Ok(c) => json_no_store(
            StatusCode::CREATED,
            &client_document(
                &state,
                &c.client,
                c.client_secret.as_deref(),
                Some(&c.registration_access_token),
            ),
        ),
        Err(e) => problem_json(&store_problem(&e)),
    }
}

/// `GET /register` in a browser: the registration form on its own page.
pub async fn get_register_form(state: web::Data<AppState>) -> HttpResponse {
    if !form_enabled(&state) {
        return crate::render::Html::problem(&state, &disabled());
    }
    let csrf = secret::random_token();
    form_page(&state, StatusCode::OK, new_form(&state, csrf))
}

fn form_page(state: &AppState, status: StatusCode, form: RegisterForm<'_>) -> HttpResponse {
    let mut res = html::builder(status);
    res.cookie(csrf_cookie(&state.meta.endpoints, &form.csrf));
    html::page(
        res,
        RegisterPage {
            c: &state.chrome,
            title: "Register an application",
            f: form,
        },
    )
}

/// `POST /register` from the HTML form (`application/x-www-form-urlencoded`, CSRF-protected).
pub async fn post_register_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> HttpResponse {
    if !form_enabled(&state) {
        return crate::render::Html::problem(&state, &disabled());
    }
    let body = match read_body(payload).await {
        Ok(b) => b,
        Err(e @ (BodyError::TooLarge | BodyError::Broken)) => {
            return crate::render::Html::problem(
                &state,
                &body_problem(e, ErrorCode::InvalidClientMetadata),
            );
        }
    };
    let params = Params::parse(&body);
    let field = |name: &str| params.get(name).unwrap_or("").to_owned();
    let mut form = RegisterForm {
        client_name: field("client_name"),
        redirect_uris: field("redirect_uris").into(),
        confidential: params.get("client_type") == Some("confidential"),
        scope: field("scope"),
        retry: field("retry").into(),
        ..new_form(&state, secret::random_token())
    };

    // Double-submit CSRF check: the form's token must equal the SameSite=Strict cookie's.
    let cookie = req.cookie(CSRF_COOKIE);
    let csrf_ok = match (cookie.as_ref().map(|c| c.value()), params.get("csrf_token")) {
        (Some(c), Some(f)) => secret::equal(c, f),
        _ => false,
    };
    if !csrf_ok {
        form.errors.general = Some("This form expired or was not sent from this site. Please check the values and submit it again.".into());
        return form_page(&state, StatusCode::FORBIDDEN, form);
    }
    if !initial_token_ok(&state, params.get("initial_access_token")) {
        form.errors.general = Some(
            "The initial access token is missing or wrong; ask the operator of this server for it."
                .into(),
        );
        return form_page(&state, StatusCode::UNAUTHORIZED, form);
    }

    let input = MetadataInput {
        client_name: Some(form.client_name.clone()),
        redirect_uris: Some(
            form.redirect_uris
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        token_endpoint_auth_method: Some(
            if form.confidential {
                "client_secret_basic"
            } else {
                "none"
            }
            .into(),
        ),
        scope: Some(form.scope.clone()),
        ..Default::default()
    };
    let metadata = match register::validate(input, &state.settings.scopes.supported) {
        Ok(m) => m,
        Err(e) => {
            let message = e.error.description.clone();
            let errors = &mut form.errors;
            match e.field {
                Field::ClientName => errors.client_name = Some(message),
                Field::RedirectUris => errors.redirect_uris = Some(message),
                Field::ClientType => errors.client_type = Some(message),
                Field::Scope => errors.scope = Some(message),
                Field::Other => errors.general = Some(message),
            }
            return form_page(&state, StatusCode::BAD_REQUEST, form);
        }
    };
    let created = match create_client(&state, metadata).await {
        Ok(c) => c,
        Err(e) => return crate::render::Html::problem(&state, &store_problem(&e)),
    };
    let retry_link = retry_link(&state, &form.retry, &created.client.client_id);
    let rcu = registration_client_uri(&state, &created.client.client_id);
    html::page(
        html::builder(StatusCode::CREATED),
        RegisteredPage {
            c: &state.chrome,
            title: "Application registered",
            client_id: &created.client.client_id,
            client_name: created.client.metadata.client_name.as_deref(),
            client_secret: created.client_secret.as_deref(),
            registration_access_token: &created.registration_access_token,
            registration_client_uri: &rcu,
            redirect_uris: &created.client.metadata.redirect_uris,
            retry_link,
        },
    )
}

/// The failed authorization again, with the new client_id: always a link to our own
/// authorization endpoint, built with `Url`.
fn retry_link(state: &AppState, retry: &str, client_id: &str) -> Option<String> {
    if retry.is_empty() {
        return None;
    }
    let original = Params::parse(retry.as_bytes());
    let mut url = url::Url::parse(&state.meta.endpoints.authorization).ok()?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", client_id);
        for (k, v) in original.pairs().iter().filter(|(k, _)| k != "client_id") {
            q.append_pair(k, v);
        }
    }
    Some(url.into())
}

/// RFC 7592 §2: the client named in the path, if the bearer token is its registration token.
async fn authorized_client(
    req: &HttpRequest,
    state: &AppState,
    client_id: &str,
) -> Result<Client, HttpResponse> {
    let Some(token) = bearer(req) else {
        return Err(invalid_token(
            "Send the registration access token as Authorization: Bearer.",
        ));
    };
    match state.store.client(client_id).await {
        Ok(Some(c)) if secret::verify(token, &c.registration_token_hash) => Ok(c),
        // RFC 7592 §2.1: an unknown client and a wrong token look the same.
        Ok(_) => Err(invalid_token(
            "The registration access token is not valid for this client.",
        )),
        Err(e) => Err(problem_json(&store_problem(&e))),
    }
}

/// `GET /register/{client_id}` (RFC 7592 §2.1). Secrets are stored hashed, so they are not
/// returned again.
pub async fn get_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    match authorized_client(&req, &state, &path).await {
        Ok(c) => json_no_store(StatusCode::OK, &client_document(&state, &c, None, None)),
        Err(res) => res,
    }
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the metadata.
pub async fn put_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let mut client = match authorized_client(&req, &state, &path).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    if media_type(&req) != "application/json" {
        return problem_json(&Problem::new(
            StatusCode::BAD_REQUEST,
            OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "Send the client metadata as JSON with Content-Type: application/json.",
            ),
        ));
    }
    let body = match read_body(payload).await {
        Ok(b) => b,
        Err(e) => return problem_json(&body_problem(e, ErrorCode::InvalidClientMetadata)),
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return problem_json(&Problem::new(
                StatusCode::BAD_REQUEST,
                OAuthError::new(
                    ErrorCode::InvalidClientMetadata,
                    format!("The request body is not valid JSON ({e})."),
                ),
            ));
        }
    };
    if value.get("client_id").and_then(Value::as_str) != Some(client.client_id.as_str()) {
        return problem_json(&Problem::new(
            StatusCode::BAD_REQUEST,
            OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "The body's client_id must equal the client being updated (RFC 7592 §2.2).",
            ),
        ));
    }
    if let Some(sent) = value.get("client_secret").and_then(Value::as_str) {
        let matches = client
            .secret_hash
            .as_deref()
            .is_some_and(|h| secret::verify(sent, h));
        if !matches {
            return problem_json(&Problem::new(
                StatusCode::BAD_REQUEST,
                OAuthError::new(
                    ErrorCode::InvalidClientMetadata,
                    "The client_secret in the body does not match this client's secret.",
                ),
            ));
        }
    }
    let metadata = match register::parse_json(&body)
        .and_then(|i| register::validate(i, &state.settings.scopes.supported))
    {
        Ok(m) => m,
        Err(e) => return register_error_json(&e),
    };
    let mut new_secret = None;
    match (metadata.is_confidential(), client.secret_hash.is_some()) {
        (true, false) => {
            let s = secret::random_token();
            client.secret_hash = Some(secret::hash(&s));
            new_secret = Some(s);
        }
        (false, true) => client.secret_hash = None,
        _ => {}
    }
    client.metadata = metadata;
    match state.store.put_client(&client).await {
        Ok(()) => json_no_store(
            StatusCode::OK,
            &client_document(&state, &client, new_secret.as_deref(), None),
        ),
        Err(e) => problem_json(&store_problem(&e)),
    }
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): 204.
pub async fn delete_client(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let client = match authorized_client(&req, &state, &path).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    match state.store.delete_client(&client.client_id).await {
        Ok(_) => {
            let mut res = HttpResponse::NoContent();
            crate::http::common::no_store(&mut res);
            res.finish()
        }
        Err(e) => problem_json(&store_problem(&e)),
    }
}
