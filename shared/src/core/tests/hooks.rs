//! Hooks in the rollout: GIVEN a canary whose policy names a pre-traffic and a post-traffic
//! hook, WHEN green is provisioned or the final bake passes, THEN the hook is asked before
//! anything moves, its yes lets the rollout go on, its no or its silence (as the policy says)
//! rolls back, and alarms, the deadline and an abort still hold while it is asked.

use super::*;
use crate::policy::HookPoint;

const PRE: &str = "guardrails-hook-smoke-test";
const POST: &str = "arn:aws:lambda:us-east-1:123456789012:function:guardrails-hook-checks:live";

fn hooked(on_timeout: &str) -> Plan {
    plan_with(&format!(
        "  Hooks:\n    PreTraffic: {{ FunctionName: {PRE}, TimeoutInSeconds: 120, OnTimeout: {on_timeout} }}\n    PostTraffic: {{ FunctionName: \"{POST}\" }}\n"
    ))
}

fn asking(hook: HookPoint, since: u32, attempts: u32, next_at: u32) -> Phase {
    Phase::Hooking {
        hook,
        since: at(since),
        attempts,
        next_at: at(next_at),
        said: None,
    }
}

fn answered(mut obs: Observation, answer: HookAnswer) -> Observation {
    obs.hook = Some(answer);
    obs
}

fn yes() -> HookAnswer {
    HookAnswer::Succeeded {
        reason: "20 of 20 test requests answered 200".to_owned(),
    }
}

#[test]
fn provisioned_green_asks_the_pre_traffic_hook_before_any_weight_moves() {
    let d = deployment_of(hooked("RollBack"), provisioning(true)).decide(
        &on_blue_green(0.0, 1),
        None,
        at(600),
    );
    assert_eq!(causes(&d), vec![Cause::GreenProvisioned]);
    assert_eq!(
        d.deployment.phase,
        asking(HookPoint::PreTraffic, 600, 0, 600)
    );
    assert!(d.actions.is_empty(), "nothing moves: {:?}", d.actions);
    assert_eq!(d.wake_at, Some(at(600)), "asked at once");
    let call = d.deployment.hook_call(at(600)).unwrap();
    assert_eq!(call.function_name, PRE);
    let p = &call.payload;
    assert_eq!(
        (
            p.hook,
            p.green_percent,
            p.attempt,
            p.green_variant_name.as_str()
        ),
        (HookPoint::PreTraffic, 0.0, 1, "green")
    );
    assert_eq!(p.endpoint_config_name, BG);
    assert_eq!(p.times_out_at, at(720).utc().to_string());
}

#[test]
fn a_yes_starts_the_first_shift_in_the_same_decision() {
    let d = deployment_of(
        hooked("RollBack"),
        asking(HookPoint::PreTraffic, 600, 0, 600),
    )
    .decide(&answered(on_blue_green(0.0, 1), yes()), None, at(601));
    assert_eq!(
        causes(&d),
        vec![Cause::HookPassed {
            hook: HookPoint::PreTraffic,
            function: PRE.to_owned(),
            reason: "20 of 20 test requests answered 200".to_owned(),
        }]
    );
    assert_eq!(d.deployment.phase, Phase::Shifting { step: 0 });
    assert_eq!(d.actions, vec![weights(10.0)]);
}

#[test]
fn a_no_rolls_back_before_green_served_a_request_and_is_the_first_bad_signal() {
    let no = HookAnswer::Failed {
        reason: "3 of 20 test requests answered 500".to_owned(),
    };
    let d = deployment_of(
        hooked("RollBack"),
        asking(HookPoint::PreTraffic, 600, 0, 600),
    )
    .decide(&answered(on_blue_green(0.0, 1), no), None, at(601));
    assert_eq!(
        causes(&d)[0],
        Cause::HookFailed {
            hook: HookPoint::PreTraffic,
            function: PRE.to_owned(),
            reason: "3 of 20 test requests answered 500".to_owned(),
        }
    );
    assert!(matches!(d.deployment.phase, Phase::RollingBack { .. }));
    let signal = d.deployment.first_bad_signal.clone().unwrap();
    assert_eq!(signal.at, at(601));
    assert!(signal.what.contains("pre-traffic hook"), "{}", signal.what);
}

#[test]
fn in_progress_asks_again_after_a_poll_interval_and_not_sooner() {
    let working = HookAnswer::InProgress {
        reason: "load test 40% done".to_owned(),
    };
    let d = deployment_of(
        hooked("RollBack"),
        asking(HookPoint::PreTraffic, 600, 0, 600),
    )
    .decide(&answered(on_blue_green(0.0, 1), working), None, at(601));
    assert!(d.transitions.is_empty());
    let Phase::Hooking {
        attempts,
        next_at,
        said,
        ..
    } = &d.deployment.phase
    else {
        panic!("{:?}", d.deployment.phase);
    };
    assert_eq!((*attempts, *next_at), (1, at(631)));
    assert_eq!(said.as_deref(), Some("load test 40% done"));
    assert_eq!(d.wake_at, Some(at(631)));
    // An event before then asks nothing.
    assert!(d.deployment.hook_call(at(620)).is_none());
    assert_eq!(d.deployment.hook_call(at(631)).unwrap().payload.attempt, 2);
}

#[test]
fn silence_past_the_timeout_does_what_the_policy_says() {
    let quiet = asking(HookPoint::PreTraffic, 600, 4, 710);
    let rolled = deployment_of(hooked("RollBack"), quiet.clone()).decide(
        &on_blue_green(0.0, 1),
        None,
        at(720),
    );
    assert!(matches!(rolled.deployment.phase, Phase::RollingBack { .. }));
    assert!(matches!(
        causes(&rolled)[0],
        Cause::HookTimedOut {
            after_secs: 120,
            went_on: false,
            ..
        }
    ));
    assert!(
        rolled.deployment.hook_call(at(720)).is_none(),
        "never asked past it"
    );
    let went_on =
        deployment_of(hooked("Continue"), quiet).decide(&on_blue_green(0.0, 1), None, at(720));
    assert!(matches!(
        causes(&went_on)[0],
        Cause::HookTimedOut { went_on: true, .. }
    ));
    assert_eq!(went_on.deployment.phase, Phase::Shifting { step: 0 });
    assert!(went_on.deployment.first_bad_signal.is_none());
}

#[test]
fn the_final_bake_passing_asks_the_post_traffic_hook_then_removes_blue() {
    let d = deployment_of(
        hooked("RollBack"),
        Phase::Baking {
            step: 1,
            until: at(2000),
        },
    )
    .decide(&on_blue_green(100.0, 4), None, at(2000));
    assert_eq!(causes(&d), vec![Cause::BakePassed { step: 1 }]);
    assert_eq!(
        d.deployment.phase,
        asking(HookPoint::PostTraffic, 2000, 0, 2000)
    );
    assert!(d.actions.is_empty(), "blue stays: {:?}", d.actions);
    let call = d.deployment.hook_call(at(2000)).unwrap();
    assert_eq!(
        (call.function_name.as_str(), call.payload.green_percent),
        (POST, 100.0)
    );
    let passed = d
        .deployment
        .decide(&answered(on_blue_green(100.0, 4), yes()), None, at(2001));
    assert!(matches!(
        passed.deployment.phase,
        Phase::RemovingBlue { .. }
    ));
    assert_eq!(
        action_names(&passed.actions),
        vec![
            "create guardrails-d1-green",
            "update to guardrails-d1-green"
        ]
    );
}

#[test]
fn alarms_the_deadline_and_an_abort_still_hold_while_a_hook_is_asked() {
    let hooking = || {
        deployment_of(
            hooked("RollBack"),
            asking(HookPoint::PostTraffic, 2000, 1, 2030),
        )
    };
    let alarmed = with_alarm(on_blue_green(100.0, 4), TEMPLATED, AlarmState::Alarm);
    let d = hooking().decide(&alarmed, None, at(2010));
    assert_eq!(causes(&d), vec![alarm_fired(TEMPLATED)]);
    let d = hooking().decide(&on_blue_green(100.0, 4), None, at(3600));
    assert_eq!(causes(&d), vec![Cause::TimedOut { deadline: at(3600) }]);
    let abort = Command::Abort {
        by: "alice".to_owned(),
        reason: "wrong model".to_owned(),
    };
    let d = hooking().decide(&on_blue_green(100.0, 4), Some(&abort), at(2010));
    assert!(matches!(causes(&d)[0], Cause::Aborted { .. }));
}

#[test]
fn an_endpoint_changed_by_hand_while_a_hook_is_asked_fails_untouched() {
    let d = deployment_of(
        hooked("RollBack"),
        asking(HookPoint::PreTraffic, 600, 0, 600),
    )
    .decide(&answered(on_blue(), yes()), None, at(601));
    assert!(matches!(
        causes(&d)[0],
        Cause::ChangedOutsideGuardrails { .. }
    ));
}

#[test]
fn a_hook_phase_the_plan_does_not_name_is_an_invalid_record() {
    let d = deployment(asking(HookPoint::PreTraffic, 600, 0, 600)).decide(
        &on_blue_green(0.0, 1),
        None,
        at(601),
    );
    assert!(matches!(causes(&d)[0], Cause::InvalidRecord { .. }));
    assert!(d.actions.is_empty());
}

#[test]
fn hooks_add_their_timeouts_to_the_default_deadline_and_need_the_variant_engine() {
    let yaml = |engine: &str, timeout: &str| {
        format!(
            r#"
BlueGreenUpdatePolicy:
  TrafficRoutingConfiguration: {{ Type: ALL_AT_ONCE, WaitIntervalInSeconds: 300 }}
  {timeout}
Guardrails:
  Engine: {engine}
  Hooks:
    PreTraffic: {{ FunctionName: {PRE}, TimeoutInSeconds: 900 }}
    PostTraffic: {{ FunctionName: guardrails-hook-after }}
"#
        )
    };
    let (fleet, green) = fleet_and_green(2, "green");
    let policy = Policy::from_yaml(&yaml("auto", "")).unwrap();
    let plan = Plan::new("d1", &policy, &fleet, &green).unwrap();
    assert_eq!(
        plan.engine,
        Engine::Variant,
        "auto picks the variant engine"
    );
    // No bake (all at once, no TerminationWaitInSeconds), both hooks (900 s and the default
    // 300 s), provisioning (3600 s).
    assert_eq!(plan.timeout_secs, 900 + 300 + 3_600);
    let text = plan.to_string();
    assert!(
        text.contains(&format!(
            "pre-traffic hook: invoke {PRE} with green at weight 0"
        )),
        "{text}"
    );
    assert!(text.contains("post-traffic hook: invoke guardrails-hook-after after the final bake"));
    let native = Policy::from_yaml(&yaml("native", "")).unwrap();
    let refused = Plan::new("d1", &native, &fleet, &green).unwrap_err();
    assert_eq!(refused.problems[0].path, "Guardrails.Hooks");
}

#[test]
fn a_hook_must_be_a_function_guardrails_may_invoke() {
    let read = |hooks: &str| {
        Policy::from_yaml(&format!(
            "BlueGreenUpdatePolicy:\n  TrafficRoutingConfiguration: {{ Type: ALL_AT_ONCE, WaitIntervalInSeconds: 60 }}\nGuardrails:\n  Hooks:\n{hooks}"
        ))
    };
    let problems = |hooks: &str| {
        read(hooks)
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        problems("    PreTraffic: { FunctionName: smoke-test }"),
        vec![
            "Guardrails.Hooks.PreTraffic.FunctionName: function smoke-test cannot be a hook: \
             Guardrails may invoke only functions named guardrails-hook-* (its template grants \
             lambda:InvokeFunction on those alone); name it guardrails-hook-smoke-test"
        ]
    );
    let bad = problems(
        "    PostTraffic: { FunctionName: \"guardrails hook\", TimeoutInSeconds: 0, OnTimeout: Ignore, Retries: 3 }",
    );
    assert_eq!(bad.len(), 4, "{bad:#?}");
    for field in ["FunctionName", "TimeoutInSeconds", "OnTimeout", "Retries"] {
        assert!(bad.iter().any(|p| p.contains(field)), "{field}: {bad:#?}");
    }
    let ok = read(
        "    PreTraffic: { FunctionName: \"123456789012:function:guardrails-hook-a:$LATEST\" }",
    )
    .unwrap();
    let hook = ok.guardrails.hooks.pre_traffic.unwrap();
    assert_eq!(
        (hook.timeout_in_seconds, hook.on_timeout),
        (300, crate::policy::OnHookTimeout::RollBack)
    );
}
