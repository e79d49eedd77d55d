//! Who may send which command. Commands reach Guardrails only through its function URL, whose
//! `AWS_IAM` auth type makes Lambda authenticate every request with SigV4 and hand the function
//! the caller's ARN (`requestContext.authorizer.iam.userArn`; Lambda Developer Guide, "Control
//! access to Lambda function URLs" and "Invoking Lambda function URLs", payload format 2.0). IAM
//! decides who may reach the URL at all; these lists, from the template's `DeployPrincipals`,
//! `ApprovePrincipals` and `AbortPrincipals`, decide which of them may deploy, approve or abort,
//! so that an administrator with `lambda:*` is not a deployer unless the template says so.
//!
//! A pattern is an IAM ARN with `*` and `?` wildcards, matched case-sensitively as IAM matches
//! ARNs (IAM User Guide, "IAM JSON policy elements: Resource"). A role's pattern
//! (`arn:aws:iam::123456789012:role/ml-release`) matches every session of the role, whose callers
//! Lambda names `arn:aws:sts::123456789012:assumed-role/ml-release/<session>`; a session's own
//! ARN matches only that session. Assumed-role ARNs carry no role path, so a role pattern is
//! matched on the role's name: write `role/ml-release`, not `role/teams/ml-release`.

use std::fmt;

use wildmatch::WildMatch;

/// A command a caller sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Deploy,
    Approve,
    Abort,
    /// `status`, `history`, `show`: reading deployments, allowed to `ReadPrincipals` and to
    /// whoever may send any other command.
    Read,
}

impl Verb {
    /// The template parameter naming who may send it.
    pub fn parameter(self) -> &'static str {
        match self {
            Verb::Deploy => "DeployPrincipals",
            Verb::Approve => "ApprovePrincipals",
            Verb::Abort => "AbortPrincipals",
            Verb::Read => "ReadPrincipals",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Deploy => "deploy",
            Verb::Approve => "approve",
            Verb::Abort => "abort",
            Verb::Read => "read deployments",
        })
    }
}

/// The principals allowed each command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    pub deploy: Vec<String>,
    pub approve: Vec<String>,
    pub abort: Vec<String>,
    pub read: Vec<String>,
}

/// Comma-separated patterns (the template joins each parameter this way); blanks dropped.
pub fn patterns(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `arn:<partition>:iam::<account>:role/<name>` for the caller of a role's session
/// (`arn:<partition>:sts::<account>:assumed-role/<name>/<session>`).
pub fn role_of(caller: &str) -> Option<String> {
    let mut parts = caller.splitn(6, ':');
    let (arn, partition, service, _region, account, rest) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn" || service != "sts" {
        return None;
    }
    let name = rest.strip_prefix("assumed-role/")?.split('/').next()?;
    (!name.is_empty()).then(|| format!("arn:{partition}:iam::{account}:role/{name}"))
}

impl Principals {
    fn of(&self, verb: Verb) -> Vec<&String> {
        match verb {
            Verb::Deploy => self.deploy.iter().collect(),
            Verb::Approve => self.approve.iter().collect(),
            Verb::Abort => self.abort.iter().collect(),
            // Who may act on deployments may see them.
            Verb::Read => self
                .read
                .iter()
                .chain(&self.deploy)
                .chain(&self.approve)
                .chain(&self.abort)
                .collect(),
        }
    }

    /// Whether `caller` (an authenticated ARN) may send `verb`; the refusal says why, and how
    /// to grant it.
    pub fn allow(&self, verb: Verb, caller: &str) -> Result<(), String> {
        let role = role_of(caller);
        let allowed = self.of(verb).into_iter().any(|pattern| {
            let pattern = WildMatch::new(pattern);
            pattern.matches(caller) || role.as_deref().is_some_and(|r| pattern.matches(r))
        });
        if allowed {
            return Ok(());
        }
        let parameter = verb.parameter();
        Err(format!(
            "{caller} may not {verb}: the stack's {parameter} parameter does not name it{}",
            role.map(|r| format!(" (nor its role {r})"))
                .unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principals() -> Principals {
        Principals {
            deploy: patterns(
                "arn:aws:iam::123456789012:role/ml-release, arn:aws:iam::123456789012:user/ci-*",
            ),
            approve: patterns("arn:aws:sts::123456789012:assumed-role/ml-leads/alice"),
            abort: Vec::new(),
            read: patterns("arn:aws:iam::123456789012:role/auditors"),
        }
    }

    #[test]
    fn a_role_pattern_allows_every_session_of_the_role() {
        let p = principals();
        let session = "arn:aws:sts::123456789012:assumed-role/ml-release/pipeline-42";
        assert_eq!(p.allow(Verb::Deploy, session), Ok(()));
        assert_eq!(
            p.allow(Verb::Deploy, "arn:aws:iam::123456789012:user/ci-bot"),
            Ok(())
        );
    }

    #[test]
    fn a_session_pattern_allows_that_session_only() {
        let p = principals();
        let alice = "arn:aws:sts::123456789012:assumed-role/ml-leads/alice";
        let bob = "arn:aws:sts::123456789012:assumed-role/ml-leads/bob";
        assert_eq!(p.allow(Verb::Approve, alice), Ok(()));
        let refused = p.allow(Verb::Approve, bob).unwrap_err();
        assert!(refused.contains("ApprovePrincipals"), "{refused}");
        assert!(
            refused.contains("arn:aws:iam::123456789012:role/ml-leads"),
            "{refused}"
        );
    }

    #[test]
    fn nobody_is_allowed_what_the_template_names_no_one_for() {
        let p = principals();
        let admin = "arn:aws:iam::123456789012:user/admin";
        assert!(p.allow(Verb::Abort, admin).is_err());
        // Another account's role of the same name is another principal.
        let other = "arn:aws:sts::999999999999:assumed-role/ml-release/x";
        assert!(p.allow(Verb::Deploy, other).is_err());
        // Matching is case-sensitive, as IAM's.
        assert!(
            p.allow(Verb::Deploy, "arn:aws:iam::123456789012:role/ML-release")
                .is_err()
        );
    }

    #[test]
    fn whoever_may_act_may_read_and_readers_may_only_read() {
        let p = principals();
        let auditor = "arn:aws:sts::123456789012:assumed-role/auditors/bob";
        assert!(p.allow(Verb::Read, auditor).is_ok());
        assert!(p.allow(Verb::Abort, auditor).is_err());
        let alice = "arn:aws:sts::123456789012:assumed-role/ml-leads/alice";
        assert!(p.allow(Verb::Read, alice).is_ok());
        let stranger = "arn:aws:sts::123456789012:assumed-role/other/eve";
        assert!(
            p.allow(Verb::Read, stranger)
                .unwrap_err()
                .contains("may not read deployments: the stack's ReadPrincipals parameter")
        );
    }

    #[test]
    fn only_assumed_role_sessions_have_a_role() {
        assert_eq!(
            role_of("arn:aws-us-gov:sts::1:assumed-role/r/s").as_deref(),
            Some("arn:aws-us-gov:iam::1:role/r")
        );
        assert_eq!(role_of("arn:aws:iam::1:user/u"), None);
        assert_eq!(role_of("arn:aws:sts::1:federated-user/u"), None);
        assert_eq!(role_of("not an arn"), None);
    }
}
