//! Reads `Guardrails.Hooks`: the Lambda functions asked before green's first request and after
//! the final shift, how long each may take, and what its silence means.

use serde_json::Value;

use super::reader::{Obj, Problems, one_of, show, string, whole_number};
use super::{HOOK_FUNCTION_PREFIX, Hook, Hooks, OnHookTimeout};

/// Lambda's `Invoke` takes a `FunctionName` of 1 to 170 characters; the name alone is at most
/// 64 letters, digits, '-' or '_', and a qualifier (version or alias) at most 128 (Lambda API
/// reference, "Invoke" and "CreateAlias").
const FUNCTION_NAME_MAX_CHARS: usize = 170;
const NAME_MAX_CHARS: usize = 64;
const QUALIFIER_MAX_CHARS: usize = 128;
/// A hook may take up to an hour, as CodeDeploy gives its lifecycle hooks.
const MAX_HOOK_SECS: u32 = 3_600;
const DEFAULT_HOOK_SECS: u32 = 300;

pub(super) fn hooks(value: &Value, path: &str, problems: &mut Problems) -> Option<Hooks> {
    let obj = Obj::new(value, path, &["PreTraffic", "PostTraffic"], problems)?;
    let pre = obj.get("PreTraffic").map(|(v, p)| hook(v, &p, problems));
    let post = obj.get("PostTraffic").map(|(v, p)| hook(v, &p, problems));
    obj.finish(problems);
    Some(Hooks {
        pre_traffic: super::reader::transpose(pre)?,
        post_traffic: super::reader::transpose(post)?,
    })
}

fn hook(value: &Value, path: &str, problems: &mut Problems) -> Option<Hook> {
    let obj = Obj::new(
        value,
        path,
        &["FunctionName", "TimeoutInSeconds", "OnTimeout"],
        problems,
    )?;
    let function_name = obj
        .require("FunctionName", problems)
        .and_then(|(v, p)| function_name(v, &p, problems));
    let timeout = match obj.get("TimeoutInSeconds") {
        None => Some(DEFAULT_HOOK_SECS),
        Some((v, p)) => whole_number(v, &p, 1, MAX_HOOK_SECS, "seconds", problems),
    };
    let on_timeout = match obj.get("OnTimeout") {
        None => Some(OnHookTimeout::RollBack),
        Some((v, p)) => one_of(v, &p, &["RollBack", "Continue"], problems).map(|i| match i {
            0 => OnHookTimeout::RollBack,
            _ => OnHookTimeout::Continue,
        }),
    };
    obj.finish(problems);
    Some(Hook {
        function_name: function_name?,
        timeout_in_seconds: timeout?,
        on_timeout: on_timeout?,
    })
}

/// A `FunctionName` as `Invoke` takes it (a name, `ACCOUNT:function:NAME` or
/// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME`, each with an optional `:QUALIFIER`),
/// naming a function whose name begins with `guardrails-hook-`.
fn function_name(value: &Value, path: &str, problems: &mut Problems) -> Option<String> {
    let text = string(value, path, 1, FUNCTION_NAME_MAX_CHARS, problems)?;
    let Some(name) = name_of(&text) else {
        problems.add(
            path,
            format!(
                "{} is not a Lambda function name, partial ARN or ARN (for example \
                 guardrails-hook-smoke-test, or \
                 arn:aws:lambda:us-east-1:123456789012:function:guardrails-hook-smoke-test:live)",
                show(value)
            ),
        );
        return None;
    };
    if !name.starts_with(HOOK_FUNCTION_PREFIX) || name.len() == HOOK_FUNCTION_PREFIX.len() {
        problems.add(
            path,
            format!(
                "function {name} cannot be a hook: Guardrails may invoke only functions named \
                 {HOOK_FUNCTION_PREFIX}* (its template grants lambda:InvokeFunction on those \
                 alone); name it {HOOK_FUNCTION_PREFIX}{name}"
            ),
        );
        return None;
    }
    Some(text)
}

/// The function's name in `text`, if `text` is spelled as `Invoke` takes it.
fn name_of(text: &str) -> Option<&str> {
    let parts: Vec<&str> = text.split(':').collect();
    let rest = match parts.as_slice() {
        [
            "arn",
            partition,
            "lambda",
            region,
            account,
            "function",
            rest @ ..,
        ] if partition.starts_with("aws") && is_region(region) && is_account(account) => rest,
        [account, "function", rest @ ..] if is_account(account) => rest,
        rest => rest,
    };
    let (name, qualifier) = match rest {
        [name] => (*name, None),
        [name, qualifier] => (*name, Some(*qualifier)),
        _ => return None,
    };
    let word = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let qualified = qualifier.is_none_or(|q| q == "$LATEST" || word(q, QUALIFIER_MAX_CHARS));
    (word(name, NAME_MAX_CHARS) && qualified).then_some(name)
}

/// `us-east-1`, `us-gov-west-1`: letters and a digit, joined by '-'.
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts
            .last()
            .is_some_and(|d| d.len() == 1 && d.chars().all(|c| c.is_ascii_digit()))
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

fn is_account(account: &str) -> bool {
    account.len() == 12 && account.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::name_of;

    #[test]
    fn function_names_are_read_as_invoke_takes_them() {
        for (text, name) in [
            ("guardrails-hook-a", Some("guardrails-hook-a")),
            ("guardrails-hook-a:live", Some("guardrails-hook-a")),
            ("guardrails-hook-a:$LATEST", Some("guardrails-hook-a")),
            (
                "123456789012:function:guardrails-hook-a",
                Some("guardrails-hook-a"),
            ),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:guardrails-hook-a:7",
                Some("guardrails-hook-a"),
            ),
            (
                "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:guardrails-hook-a",
                Some("guardrails-hook-a"),
            ),
            (
                "arn:aws:lambda:us-east-1:12345:function:guardrails-hook-a",
                None,
            ),
            ("guardrails hook", None),
            ("a:b:c", None),
            ("guardrails-hook-a:", None),
        ] {
            assert_eq!(name_of(text), name, "{text}");
        }
    }
}
