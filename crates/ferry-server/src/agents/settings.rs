//! A deployment's link settings (`[deployments.<id>.links]`): who may open its download links
//! (`access = "bearer" | "agents"`), and for `agents` the OAuth client agents sign in with, the
//! organisation they must belong to, optional roles or divisions, and the lifetimes.

use crate::config::{ConfigError, Secret};
use serde::{Deserialize, Serialize};

/// Who may open a deployment's download links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LinkAccess {
    /// Whoever holds the link (it is signed and expires): ferry's behaviour before agent sign-in.
    #[default]
    Bearer,
    /// Only agents of the deployment's Genesys organisation, signed in with Genesys Cloud
    /// (authorization code with PKCE); the link alone is not enough.
    Agents,
}

/// `[deployments.<id>.links]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkSettings {
    /// `bearer` (default) or `agents`. Read at download time, so switching to `agents` protects
    /// links already posted.
    pub access: LinkAccess,
    /// OAuth client (authorization code grant, PKCE) agents sign in with. Its redirect URI must be
    /// `{public_url}/v1/agents/callback`.
    pub client_id: String,
    /// The client's secret when it is confidential (inline or `{ file = "…" }`, or
    /// `FERRY_…_FILE`); none for a public client. Never serialized (`[redacted]`).
    #[serde(serialize_with = "redacted")]
    pub client_secret: Option<Secret>,
    /// The Genesys organisation id agents must belong to (`GET /api/v2/tokens/me`).
    pub organization_id: String,
    /// When not empty, the agent must hold one of these roles (name or id).
    pub roles: Vec<String>,
    /// When not empty, the agent's division must be one of these (id).
    pub divisions: Vec<String>,
    /// How long an agent stays signed in, seconds (default 9 hours: a working day).
    pub session_secs: u64,
    /// Lifetime of new links of this deployment when `access = "agents"`, seconds (default 30
    /// days: the sign-in is the gate). Bearer links keep the global `link_ttl_secs`.
    pub agents_link_ttl_secs: u64,
    /// Lifetime of the bearer URL handed to Genesys for an Open Messaging attachment (Genesys
    /// fetches it and cannot sign in), seconds (default 1 hour).
    pub fetch_link_secs: u64,
    /// Login override (`https://login.E` by default), e.g. an emulator.
    pub login_url: Option<String>,
    /// Platform REST override (`https://api.E` by default).
    pub api_url: Option<String>,
}

/// Says whether a secret is set, never what it is.
fn redacted<S: serde::Serializer>(secret: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) if !secret.is_empty() => serializer.serialize_some("[redacted]"),
        _ => serializer.serialize_none(),
    }
}

impl Default for LinkSettings {
    fn default() -> Self {
        Self {
            access: LinkAccess::Bearer,
            client_id: String::new(),
            client_secret: None,
            organization_id: String::new(),
            roles: Vec::new(),
            divisions: Vec::new(),
            session_secs: 9 * 3600,
            agents_link_ttl_secs: 30 * 24 * 3600,
            fetch_link_secs: 3600,
            login_url: None,
            api_url: None,
        }
    }
}

impl LinkSettings {
    /// Checks the settings of deployment `id`.
    ///
    /// # Errors
    /// The first problem, naming the setting (`deployments.<id>.links.<field>`).
    pub fn check(&self, id: &str) -> Result<(), ConfigError> {
        let invalid = |field: &str, problem: &str| ConfigError {
            setting: format!("deployments.{id}.links.{field}"),
            problem: problem.to_owned(),
        };
        if !(60..=7 * 24 * 3600).contains(&self.session_secs) {
            return Err(invalid("session_secs", "must be between 60 and 604800"));
        }
        if self.agents_link_ttl_secs == 0 {
            return Err(invalid("agents_link_ttl_secs", "must be positive"));
        }
        if !(60..=24 * 3600).contains(&self.fetch_link_secs) {
            return Err(invalid("fetch_link_secs", "must be between 60 and 86400"));
        }
        for (field, value) in [("login_url", &self.login_url), ("api_url", &self.api_url)] {
            if let Some(url) = value {
                url::Url::parse(url).map_err(|e| invalid(field, &e.to_string()))?;
            }
        }
        if self.access == LinkAccess::Agents {
            if self.client_id.is_empty() {
                return Err(invalid("client_id", "is required with access = \"agents\""));
            }
            if self.organization_id.is_empty() {
                return Err(invalid("organization_id", "is required with access = \"agents\""));
            }
            if self.client_secret.as_ref().is_some_and(Secret::is_empty) {
                return Err(invalid("client_secret", "is empty (leave it out for a public client)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_need_a_client_and_an_organisation_and_bearer_needs_nothing() {
        LinkSettings::default().check("d").unwrap();
        let mut s = LinkSettings { access: LinkAccess::Agents, ..LinkSettings::default() };
        assert_eq!(s.check("d").unwrap_err().setting, "deployments.d.links.client_id");
        s.client_id = "c".into();
        assert_eq!(s.check("d").unwrap_err().setting, "deployments.d.links.organization_id");
        s.organization_id = "o".into();
        s.check("d").unwrap();
        s.session_secs = 10;
        assert_eq!(s.check("d").unwrap_err().setting, "deployments.d.links.session_secs");
    }

    #[test]
    fn read_from_toml() {
        let s: LinkSettings = toml::from_str(
            "access = \"agents\"\nclient_id = \"c\"\norganization_id = \"o\"\nroles = [\"Supervisor\"]\n",
        )
        .unwrap();
        assert_eq!((s.access, s.session_secs, s.roles.len()), (LinkAccess::Agents, 32400, 1));
        assert!(toml::from_str::<LinkSettings>("access = \"everyone\"").is_err());
        assert!(toml::from_str::<LinkSettings>("acess = \"agents\"").is_err());
    }
}
