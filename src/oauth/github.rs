//! GitHub as an identity provider (docs/behaviour.md §14): OAuth 2 without OpenID Connect, so
//! the person comes from GitHub's REST API. The shapes read here follow GitHub's documentation:
//! "Authorizing OAuth apps" (the token response, JSON with `Accept: application/json`, errors
//! answered with 200 and an `error` member), "Get the authenticated user" (`GET /user`), "List
//! email addresses for the authenticated user" (`GET /user/emails`) and "List organizations for
//! the authenticated user" (`GET /user/orgs`). Pure: the flow fetches, these rules read.

use serde_json::Value;

use super::identity::Identity;

/// The access token of a token response, or why there is none.
pub fn access_token(body: &Value) -> Result<String, String> {
    if let Some(error) = body.get("error").and_then(Value::as_str) {
        let description = body
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(format!("GitHub refused the code: {error} ({description})"));
    }
    match body.get("access_token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Ok(t.to_owned()),
        _ => Err("GitHub's token response has no access_token".into()),
    }
}

/// The person of `GET /user`, their addresses from `GET /user/emails` (only verified ones
/// count; the primary one is shown) and, when asked, their organisations from
/// `GET /user/orgs` as groups. `subject_field` is `id` (never changes) or `login`.
pub fn identity(
    user: &Value,
    emails: &Value,
    orgs: Option<&Value>,
    subject_field: &str,
) -> Result<Identity, String> {
    let subject = match user.get(subject_field) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(format!("GitHub's user has no {subject_field:?}")),
    };
    let login = user.get("login").and_then(Value::as_str).map(str::to_owned);
    let Some(list) = emails.as_array() else {
        return Err("GitHub's e-mail list is not a list".into());
    };
    let verified: Vec<&Value> = list
        .iter()
        .filter(|e| e.get("verified").and_then(Value::as_bool) == Some(true))
        .collect();
    let address = |e: &&Value| e.get("email").and_then(Value::as_str).map(str::to_owned);
    let primary = verified
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
        .and_then(address);
    let groups = match orgs {
        None => Vec::new(),
        Some(orgs) => orgs
            .as_array()
            .ok_or("GitHub's organisation list is not a list")?
            .iter()
            .filter_map(|o| o.get("login").and_then(Value::as_str).map(str::to_owned))
            .collect(),
    };
    Ok(Identity {
        subject,
        name: user
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .or_else(|| login.clone()),
        username: login,
        email: primary.or_else(|| verified.first().and_then(address)),
        verified_emails: verified
            .iter()
            .filter_map(address)
            .map(|e| e.to_ascii_lowercase())
            .collect(),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_token_response_gives_the_token_or_the_error() {
        assert_eq!(
            access_token(
                &json!({"access_token": "gho_16C7e42F292c6912E7710c838347Ae178B4a", "scope": "read:user,user:email", "token_type": "bearer"})
            ),
            Ok("gho_16C7e42F292c6912E7710c838347Ae178B4a".into())
        );
        assert!(access_token(&json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})).is_err_and(|e| e.contains("bad_verification_code")));
        assert!(access_token(&json!({})).is_err());
    }

    #[test]
    fn the_user_the_verified_addresses_and_the_organisations() {
        let user = json!({"login": "octocat", "id": 1, "node_id": "MDQ6VXNlcjE=", "name": "monalisa octocat", "email": "octocat@github.com"});
        let emails = json!([
            {"email": "octocat@unverified.example", "verified": false, "primary": false, "visibility": null},
            {"email": "Octocat@GitHub.com", "verified": true, "primary": true, "visibility": "public"},
            {"email": "cat@work.example", "verified": true, "primary": false, "visibility": null}
        ]);
        let orgs = json!([{"login": "github", "id": 1}, {"login": "acme", "id": 2}]);

        let who = identity(&user, &emails, Some(&orgs), "id").expect("identity");

        assert_eq!(who.subject, "1");
        assert_eq!(who.username.as_deref(), Some("octocat"));
        assert_eq!(who.name.as_deref(), Some("monalisa octocat"));
        assert_eq!(who.email.as_deref(), Some("Octocat@GitHub.com"));
        assert_eq!(
            who.verified_emails,
            vec!["octocat@github.com", "cat@work.example"]
        );
        assert_eq!(who.groups, vec!["github", "acme"]);
        assert_eq!(
            identity(&user, &emails, None, "login")
                .expect("by login")
                .subject,
            "octocat"
        );
    }

    #[test]
    fn a_user_without_a_name_is_shown_by_login_and_odd_shapes_are_refused() {
        let user = json!({"login": "octocat", "id": 1, "name": null});

        assert_eq!(
            identity(&user, &json!([]), None, "id")
                .expect("identity")
                .name
                .as_deref(),
            Some("octocat")
        );
        assert!(identity(&json!({"login": "x"}), &json!([]), None, "id").is_err());
        assert!(identity(&user, &json!({"message": "Bad credentials"}), None, "id").is_err());
    }
}
