//! Who an identity provider says a person is, and whether they may sign in here
//! (docs/behaviour.md §14): the allow-lists, the provider-scoped subject, and the RFC 9207
//! `iss` check of the provider's answer. Pure: the flows fetch, these rules decide.

/// A person as an identity provider described them, reduced to what Doorman decides on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The provider's identifier for the person (the `subject_claim`), not yet scoped.
    pub subject: String,
    /// A username (`preferred_username`; GitHub: the login), if the provider gave one.
    pub username: Option<String>,
    /// The name to show.
    pub name: Option<String>,
    /// The e-mail address to show, verified or not.
    pub email: Option<String>,
    /// The e-mail addresses the provider verified (lower-cased); the only ones that count for
    /// `allowed_domains` and `allowed_users`.
    pub verified_emails: Vec<String>,
    /// The groups the provider put the person in (`groups_claim`; GitHub: organisations).
    pub groups: Vec<String>,
}

/// Who may sign in through one provider. A person is admitted when any list admits them.
#[derive(Debug, Clone, Copy)]
pub struct AllowList<'a> {
    pub domains: &'a [String],
    pub users: &'a [String],
    pub groups: &'a [String],
    /// No lists: everyone the provider signs in.
    pub everyone: bool,
}

/// Why a person may not sign in, in a sentence for them (and the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAllowed(pub String);

/// Whether `who` may sign in under `list`.
pub fn admit(who: &Identity, list: &AllowList<'_>) -> Result<(), NotAllowed> {
    if list.everyone {
        return Ok(());
    }
    let domain_ok = who.verified_emails.iter().any(|e| {
        e.rsplit_once('@').is_some_and(|(_, d)| {
            list.domains
                .iter()
                .any(|allowed| d.eq_ignore_ascii_case(allowed.trim_start_matches('@')))
        })
    });
    let user_ok = list.users.iter().any(|u| {
        u == &who.subject
            || who
                .username
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(u))
            || who
                .verified_emails
                .iter()
                .any(|e| e.eq_ignore_ascii_case(u))
    });
    let group_ok = who.groups.iter().any(|g| list.groups.contains(g));
    if domain_ok || user_ok || group_ok {
        return Ok(());
    }
    let shown = who
        .verified_emails
        .first()
        .or(who.username.as_ref())
        .or(who.email.as_ref())
        .unwrap_or(&who.subject);
    let mut why = format!("The account {shown} is not allowed to sign in here");
    let has_verified = !who.verified_emails.is_empty();
    if !list.domains.is_empty() && !has_verified {
        why.push_str(": the provider did not confirm (verify) its e-mail address");
    } else if !list.domains.is_empty() {
        why.push_str(&format!(
            ": only addresses in {} are",
            list.domains.join(", ")
        ));
    } else if !list.groups.is_empty() {
        why.push_str(": it is not in a group that is");
    }
    why.push('.');
    Err(NotAllowed(why))
}

/// The Doorman subject of a person signed in through provider `provider_id`: scoped by the
/// provider, so two providers never name two people alike (`github:12345`, `google:1089…`).
pub fn scoped_subject(provider_id: &str, subject: &str) -> String {
    format!("{provider_id}:{subject}")
}

/// RFC 9207 §2.4: when the provider sends `iss` in its authorization response it must be its
/// issuer; when it says it always sends it, a response without one is refused.
pub fn check_response_iss(
    sent: Option<&str>,
    issuer: &str,
    always_sent: bool,
) -> Result<(), String> {
    match sent {
        Some(iss) if iss == issuer => Ok(()),
        Some(iss) => Err(format!(
            "the authorization response names issuer {iss:?}, not {issuer:?} (RFC 9207)"
        )),
        None if always_sent => Err(
            "the authorization response carries no iss although the provider says it always does (RFC 9207)"
                .into(),
        ),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            subject: "248289761001".into(),
            username: Some("alice".into()),
            name: Some("Alice".into()),
            email: Some("Alice@Example.com".into()),
            verified_emails: vec!["alice@example.com".into()],
            groups: vec!["staff".into()],
        }
    }

    fn list<'a>(domains: &'a [String], users: &'a [String], groups: &'a [String]) -> AllowList<'a> {
        AllowList {
            domains,
            users,
            groups,
            everyone: false,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn any_list_admits_and_nothing_else_does() {
        let none: Vec<String> = Vec::new();
        let who = alice();

        assert!(admit(&who, &list(&strings(&["EXAMPLE.com"]), &none, &none)).is_ok());
        assert!(admit(&who, &list(&strings(&["@example.com"]), &none, &none)).is_ok());
        assert!(admit(&who, &list(&none, &strings(&["248289761001"]), &none)).is_ok());
        assert!(admit(&who, &list(&none, &strings(&["ALICE"]), &none)).is_ok());
        assert!(admit(&who, &list(&none, &strings(&["alice@example.com"]), &none)).is_ok());
        assert!(admit(&who, &list(&none, &none, &strings(&["staff"]))).is_ok());
        assert!(
            admit(
                &who,
                &list(&strings(&["other.example"]), &none, &strings(&["staff"]))
            )
            .is_ok()
        );

        assert!(admit(&who, &list(&strings(&["other.example"]), &none, &none)).is_err());
        assert!(
            admit(&who, &list(&strings(&["ample.com"]), &none, &none)).is_err(),
            "whole domain"
        );
        assert!(
            admit(&who, &list(&none, &none, &strings(&["Staff"]))).is_err(),
            "groups are exact"
        );
        assert!(
            admit(&who, &list(&none, &none, &none)).is_err(),
            "no list, nobody"
        );
        let everyone = AllowList {
            everyone: true,
            ..list(&none, &none, &none)
        };
        assert!(admit(&who, &everyone).is_ok());
    }

    #[test]
    fn unverified_addresses_count_for_nothing() {
        let none: Vec<String> = Vec::new();
        let who = Identity {
            verified_emails: Vec::new(),
            ..alice()
        };

        let refused = admit(&who, &list(&strings(&["example.com"]), &none, &none));
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.0.contains("did not confirm")),
            "{refused:?}"
        );
        assert!(admit(&who, &list(&none, &strings(&["alice@example.com"]), &none)).is_err());
    }

    #[test]
    fn the_refusal_names_the_account_and_the_rule() {
        let none: Vec<String> = Vec::new();
        let who = Identity {
            verified_emails: vec!["mallory@elsewhere.example".into()],
            ..Identity::default()
        };

        let refused = admit(&who, &list(&strings(&["example.com"]), &none, &none));

        assert_eq!(
            refused,
            Err(NotAllowed(
                "The account mallory@elsewhere.example is not allowed to sign in here: only addresses in example.com are.".into()
            ))
        );
    }

    #[test]
    fn subjects_are_scoped_by_provider() {
        assert_eq!(scoped_subject("github", "12345"), "github:12345");
        // Provider ids have no colon (settings), so the first one separates the provider.
        assert_eq!(
            scoped_subject("okta", "00u:1").split_once(':'),
            Some(("okta", "00u:1"))
        );
    }

    #[test]
    fn rfc_9207_iss_is_checked_when_sent_and_required_when_promised() {
        let issuer = "https://op.example";

        assert!(check_response_iss(Some(issuer), issuer, true).is_ok());
        assert!(check_response_iss(None, issuer, false).is_ok());
        assert!(check_response_iss(None, issuer, true).is_err());
        assert!(check_response_iss(Some("https://evil.example"), issuer, false).is_err());
        assert!(
            check_response_iss(Some("https://op.example/"), issuer, false).is_err(),
            "exact"
        );
    }
}
