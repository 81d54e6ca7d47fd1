//! The client credentials grant (RFC 6749 §4.4): a confidential client acting for itself. The
//! token's `sub` is the client id (`cl_…`, never a user id, checklist 34); no refresh token
//! (§4.4.3) and nothing written.

use super::{Issue, Plan};
use crate::oauth::authorize::select_audience;
use crate::oauth::errors::OAuthError;
use crate::oauth::model::Client;
use crate::oauth::scope;
use crate::oauth::token_request::ClientCredentialsRequest;

pub fn decide(client: &Client, request: &ClientCredentialsRequest) -> Plan {
    if !client.is_confidential() {
        return Plan::refuse(OAuthError::unauthorized_client(
            "client_credentials is for confidential clients",
        ));
    }
    let target = scope::negotiate(request.scope.as_deref(), &client.scopes).and_then(|s| {
        Ok((
            scope::to_string(&s),
            select_audience(request.resource.as_deref(), client)?,
        ))
    });
    match target {
        Ok((scope, audience)) => Plan::issue(
            Vec::new(),
            Issue {
                subject: client.id.to_string(),
                client_id: client.id.clone(),
                audience,
                scope,
                roles: Vec::new(),
                grant_id: None,
                refresh: None,
                amr: Vec::new(),
                id_token: None,
            },
        ),
        Err(e) => Plan::refuse(e),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use super::*;
    use crate::oauth::model::GrantType;

    fn client(secret: Option<&str>) -> Client {
        Client {
            id: "cl_backend".into(),
            name: "backend".into(),
            secret_hash: secret.map(str::to_owned),
            redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            scopes: vec!["reports:read".into()],
            audiences: vec!["https://api.example".into()],
            allowed_origins: vec![],
            created_at: 0,
            require_mfa: false,
            previous_secret: None,
            skip_consent: false,
            post_logout_redirect_uris: Vec::new(),
        }
    }

    const ANY: ClientCredentialsRequest = ClientCredentialsRequest {
        scope: None,
        resource: None,
    };

    #[test]
    fn client_acts_for_itself_without_a_refresh_token() {
        let plan = decide(&client(Some("h")), &ANY);
        assert!(plan.writes.is_empty());
        let Outcome::Issue(issue) = plan.outcome else {
            panic!("issued");
        };
        assert_eq!(issue.subject, "cl_backend");
        assert_eq!(issue.scope, "reports:read");
        assert!(issue.refresh.is_none() && issue.grant_id.is_none());
    }

    #[test]
    fn public_clients_may_not_use_client_credentials() {
        let plan = decide(&client(None), &ANY);
        assert!(
            matches!(plan.outcome, Outcome::Refuse { error, .. } if error.code.as_str() == "unauthorized_client")
        );
    }
}
