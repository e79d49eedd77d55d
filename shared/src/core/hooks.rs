//! Hooks: Lambda functions the policy names, asked whether the rollout may go on (README,
//! "Hooks"). The pre-traffic hook is asked once green is provisioned at weight 0, before its
//! first request; the post-traffic hook after the final shift's bake, while blue still stands
//! by, so that its failure rolls back by weights alone.
//!
//! A hook is asked as CodeDeploy asks its lifecycle hooks, but its answer is the function's
//! return value (`{"status": "Succeeded" | "Failed" | "InProgress", "reason": ...}`) instead of
//! a call back to an API: a hook needs no permission on Guardrails, and the answer cannot come
//! from anyone else. A check that takes longer than one call answers `InProgress` and is asked
//! again, at most once per poll interval, with the same payload and the next `attempt`, until
//! it says yes or no or its `TimeoutInSeconds` passes, when the policy's `OnTimeout` decides.
//! Hooks must therefore be idempotent, as CodeDeploy's must be.
//!
//! The call itself is the driver's (`ports::Hooks`): the answer arrives in the observation, as
//! an alarm's state does, and the core decides on it here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::phases::{Outcome, changed_outside, removing_blue, rolling_back, wait_until};
use super::{Cause, Deployment, EndpointView, Observation, Phase};
use crate::policy::{HookPoint, OnHookTimeout};
use crate::units::{Share, Timestamp};

/// The longest one call may take before Guardrails stops waiting for its answer (the call
/// counts as `InProgress`): the function that asks has a minute in all (`infra/template.yaml`).
pub const HOOK_CALL_SECS: u32 = 20;
/// The most characters of a hook's reason kept in the record and the page.
pub const HOOK_REASON_MAX_CHARS: usize = 500;
/// The payload's version: a field added keeps it, a field changed or removed raises it.
pub const HOOK_PAYLOAD_VERSION: &str = "1";

/// One call of a hook: the function and what it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct HookCall {
    /// As the policy names it (a name, partial ARN or ARN, with its qualifier).
    pub function_name: String,
    pub payload: HookPayload,
}

/// What a hook receives (README, "Hooks": the payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookPayload {
    pub version: String,
    pub hook: HookPoint,
    pub deployment_id: String,
    pub endpoint_name: String,
    /// The config the endpoint serves, with blue and green as two variants.
    pub endpoint_config_name: String,
    pub blue_variant_name: String,
    pub green_variant_name: String,
    pub green_model_name: String,
    /// Green's share of requests: 0 before traffic (send test requests with `TargetVariant`),
    /// the last step's after it.
    pub green_percent: f64,
    /// 1 for the first call of this hook, then one more for each call.
    pub attempt: u32,
    /// When Guardrails first asked this hook, and when it stops waiting (RFC 3339, UTC).
    pub asked_since: String,
    pub times_out_at: String,
}

/// What a hook answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status")]
pub enum HookAnswer {
    Succeeded {
        reason: String,
    },
    /// Roll back: green must not go on.
    Failed {
        reason: String,
    },
    /// Not decided yet: ask again.
    InProgress {
        reason: String,
    },
}

impl HookAnswer {
    /// The answer in the function's `payload`, or its failure: Lambda's `X-Amz-Function-Error`
    /// (`function_error`) marks an invocation whose function raised, and the payload then holds
    /// `errorType` and `errorMessage`. An answer that is not one of the three statuses counts as
    /// `Failed`: a gate that cannot say yes plainly does not let green through.
    pub fn from_invocation(payload: &[u8], function_error: Option<&str>) -> HookAnswer {
        let value: Option<Value> = serde_json::from_slice(payload).ok();
        if let Some(kind) = function_error {
            let message = value
                .as_ref()
                .and_then(|v| v.get("errorMessage"))
                .and_then(Value::as_str)
                .unwrap_or("no errorMessage");
            return HookAnswer::Failed {
                reason: clean(&format!("the hook's function failed ({kind}): {message}")),
            };
        }
        let status = value
            .as_ref()
            .and_then(|v| v.get("status"))
            .and_then(Value::as_str);
        let reason = value
            .as_ref()
            .and_then(|v| v.get("reason"))
            .and_then(Value::as_str)
            .map(clean)
            .unwrap_or_default();
        match status {
            Some("Succeeded") => HookAnswer::Succeeded { reason },
            Some("Failed") => HookAnswer::Failed { reason },
            Some("InProgress") => HookAnswer::InProgress { reason },
            _ => {
                let shown = crate::units::cut(&String::from_utf8_lossy(payload), 120);
                HookAnswer::Failed {
                    reason: clean(&format!(
                        "the hook answered {shown}, not {{\"status\": \"Succeeded\" | \"Failed\" \
                         | \"InProgress\"}}"
                    )),
                }
            }
        }
    }

    /// No answer within `HOOK_CALL_SECS`: the hook is still at work, as far as anyone knows.
    pub fn no_answer() -> HookAnswer {
        HookAnswer::InProgress {
            reason: format!("no answer within {HOOK_CALL_SECS} s"),
        }
    }
}

/// A hook's words as the record and the page keep them: control characters (a hostile or
/// careless hook's newlines and escapes) become spaces, and the length is bounded.
fn clean(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::units::cut(flat.trim(), HOOK_REASON_MAX_CHARS)
}

/// The phase that asks the hook at `point`, from `now`.
pub(super) fn asking(point: HookPoint, now: Timestamp) -> Phase {
    Phase::Hooking {
        hook: point,
        since: now,
        attempts: 0,
        next_at: now,
        said: None,
    }
}

/// Where the rollout goes once the hook at `point` let it: green's first shift, or removing
/// blue.
pub(super) fn after_hook(_d: &Deployment, point: HookPoint, now: Timestamp) -> Phase {
    match point {
        HookPoint::PreTraffic => Phase::Shifting { step: 0 },
        HookPoint::PostTraffic => removing_blue(now),
    }
}

impl Deployment {
    /// The call the driver makes before deciding, when this phase asks a hook and it is time
    /// to ask again.
    pub fn hook_call(&self, now: Timestamp) -> Option<HookCall> {
        let Phase::Hooking {
            hook,
            since,
            attempts,
            next_at,
            ..
        } = &self.phase
        else {
            return None;
        };
        let spec = self.plan.hooks.at(*hook)?;
        let ends = since.plus_secs(spec.timeout_in_seconds);
        if now < *next_at || now >= ends {
            return None;
        }
        let plan = &self.plan;
        let green_share = match hook {
            HookPoint::PreTraffic => Share::ZERO,
            HookPoint::PostTraffic => plan.steps.last().map_or(Share::FULL, |s| s.green_share),
        };
        Some(HookCall {
            function_name: spec.function_name.clone(),
            payload: HookPayload {
                version: HOOK_PAYLOAD_VERSION.to_owned(),
                hook: *hook,
                deployment_id: plan.deployment_id.clone(),
                endpoint_name: plan.endpoint_name.clone(),
                endpoint_config_name: plan.blue_green_config_name.clone(),
                blue_variant_name: plan.blue.variant_name.clone(),
                green_variant_name: plan.green.variant_name.clone(),
                green_model_name: plan.green.model_name.clone(),
                green_percent: green_share.fraction() * 100.0,
                attempt: attempts.saturating_add(1),
                asked_since: since.utc().to_string(),
                times_out_at: ends.utc().to_string(),
            },
        })
    }
}

/// The hook phase: decide on the hook's answer, if one came with this look; else wait for the
/// next call, never past the hook's timeout.
pub(super) fn hooking(
    d: &mut Deployment,
    obs: &Observation,
    endpoint: &EndpointView,
    now: Timestamp,
) -> Outcome {
    let Phase::Hooking {
        hook,
        since,
        attempts,
        next_at,
        said,
    } = d.phase.clone()
    else {
        return wait_until(d, Vec::new(), now, now);
    };
    let Some(spec) = d.plan.hooks.at(hook).cloned() else {
        let detail = format!("the record asks the {hook} hook, but the plan names none");
        return super::phases::failed(Cause::InvalidRecord { detail }, Vec::new());
    };
    if !endpoint.status.is_busy() && endpoint.config_name != d.plan.blue_green_config_name {
        return changed_outside(endpoint);
    }
    let function = spec.function_name.clone();
    let (mut attempts, mut next_at, mut said) = (attempts, next_at, said);
    if let Some(answer) = &obs.hook {
        attempts = attempts.saturating_add(1);
        next_at = now.plus_secs(d.plan.poll_secs);
        match answer {
            HookAnswer::Succeeded { reason } => {
                let cause = Cause::HookPassed {
                    hook,
                    function,
                    reason: reason.clone(),
                };
                return Outcome::Move {
                    to: after_hook(d, hook, now),
                    cause,
                    actions: Vec::new(),
                };
            }
            HookAnswer::Failed { reason } => {
                d.signal(now, format!("the {hook} hook {function} failed"));
                let cause = Cause::HookFailed {
                    hook,
                    function,
                    reason: reason.clone(),
                };
                return Outcome::Move {
                    to: rolling_back(cause.clone(), now),
                    cause,
                    actions: Vec::new(),
                };
            }
            HookAnswer::InProgress { reason } => said = Some(reason.clone()),
        }
    }
    let ends = since.plus_secs(spec.timeout_in_seconds);
    if now >= ends {
        let cause = Cause::HookTimedOut {
            hook,
            function,
            after_secs: spec.timeout_in_seconds,
            went_on: spec.on_timeout == OnHookTimeout::Continue,
            last_said: said.unwrap_or_default(),
        };
        let to = match spec.on_timeout {
            OnHookTimeout::RollBack => {
                d.signal(now, format!("the {hook} hook did not answer in time"));
                rolling_back(cause.clone(), now)
            }
            OnHookTimeout::Continue => after_hook(d, hook, now),
        };
        return Outcome::Move {
            to,
            cause,
            actions: Vec::new(),
        };
    }
    d.phase = Phase::Hooking {
        hook,
        since,
        attempts,
        next_at,
        said,
    };
    wait_until(d, Vec::new(), next_at.min(ends), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_from_the_functions_return_value() {
        let read = |text: &str| HookAnswer::from_invocation(text.as_bytes(), None);
        assert_eq!(
            read(r#"{"status":"Succeeded","reason":"20 of 20 test requests answered"}"#),
            HookAnswer::Succeeded {
                reason: "20 of 20 test requests answered".to_owned()
            }
        );
        assert_eq!(
            read(r#"{"status":"InProgress"}"#),
            HookAnswer::InProgress {
                reason: String::new()
            }
        );
        assert!(matches!(
            read(r#"{"status":"Failed","reason":"x"}"#),
            HookAnswer::Failed { .. }
        ));
    }

    #[test]
    fn anything_but_a_plain_yes_or_no_fails_the_hook() {
        for text in [
            "",
            "null",
            "true",
            r#"{"status":"succeeded"}"#,
            r#"["Succeeded"]"#,
        ] {
            let answer = HookAnswer::from_invocation(text.as_bytes(), None);
            assert!(
                matches!(answer, HookAnswer::Failed { .. }),
                "{text}: {answer:?}"
            );
        }
        let raised = HookAnswer::from_invocation(
            br#"{"errorType":"Runtime.ExitError","errorMessage":"boom"}"#,
            Some("Unhandled"),
        );
        assert_eq!(
            raised,
            HookAnswer::Failed {
                reason: "the hook's function failed (Unhandled): boom".to_owned()
            }
        );
    }

    #[test]
    fn a_hostile_reason_is_flattened_and_bounded() {
        let long = format!(
            r#"{{"status":"Failed","reason":"line\nbreak\u001b[31m{}"}}"#,
            "x".repeat(10_000)
        );
        let HookAnswer::Failed { reason } = HookAnswer::from_invocation(long.as_bytes(), None)
        else {
            panic!("not failed");
        };
        assert!(reason.starts_with("line break [31m"));
        assert!(reason.chars().count() <= HOOK_REASON_MAX_CHARS + 3);
        assert!(!reason.chars().any(char::is_control));
    }
}
