//! Every transition of the variant engine in one table: GIVEN a phase and what the world looks
//! like, WHEN deciding at a time, THEN the phases passed through and the requests sent. The
//! tests beside this file check the contents of those requests and the records in detail.

use super::*;

struct Row {
    given: &'static str,
    phase: Phase,
    observation: Observation,
    command: Option<Command>,
    at_secs: u32,
    /// The phases entered, in order.
    path: &'static [&'static str],
    actions: &'static [&'static str],
}

fn row(given: &'static str, phase: Phase, observation: Observation, at_secs: u32) -> Row {
    Row {
        given,
        phase,
        observation,
        command: None,
        at_secs,
        path: &[],
        actions: &[],
    }
}

impl Row {
    fn then(mut self, path: &'static [&'static str], actions: &'static [&'static str]) -> Row {
        self.path = path;
        self.actions = actions;
        self
    }

    fn command(mut self, command: Command) -> Row {
        self.command = Some(command);
        self
    }
}

fn baking(step: usize, until_secs: u32) -> Phase {
    Phase::Baking {
        step,
        until: at(until_secs),
    }
}

fn removing(update: UpdateProgress) -> Phase {
    Phase::RemovingBlue {
        since: at(2000),
        update,
    }
}

fn final_bake(until_secs: u32) -> Phase {
    Phase::BakingFinalFleet {
        until: at(until_secs),
    }
}

fn accepted() -> UpdateProgress {
    UpdateProgress {
        accepted_at: Some(at(10)),
        failures: 0,
    }
}

fn missing_endpoint() -> Observation {
    Observation {
        endpoint: None,
        alarms: alarms_ok(),
        alarms_fired: BTreeMap::new(),
        judged: None,
        hook: None,
        unseen: None,
    }
}

fn broken(mut obs: Observation) -> Observation {
    if let Some(e) = obs.endpoint.as_mut() {
        e.status = EndpointStatus::Failed;
    }
    obs
}

fn abort() -> Command {
    Command::Abort {
        by: "bob".to_owned(),
        reason: "complaints".to_owned(),
    }
}

fn approve() -> Command {
    Command::Approve {
        by: "alice".to_owned(),
    }
}

fn gated(phase: Phase) -> Deployment {
    deployment_of(plan_with("  ApproveBeforeFinalShift: true"), phase)
}

#[test]
fn every_transition_in_one_table() {
    let alarmed = |obs| with_alarm(obs, TEMPLATED, AlarmState::Alarm);
    let rows = vec![
        // Provisioning.
        row(
            "blue serves, nothing sent yet",
            provisioning(false),
            on_blue(),
            0,
        )
        .then(
            &[],
            &[
                "create guardrails-d1-blue-green",
                "update to guardrails-d1-blue-green",
            ],
        ),
        row(
            "the update is in flight",
            provisioning(true),
            busy(on_blue(), Some(BG)),
            60,
        ),
        row(
            "green provisioned",
            provisioning(true),
            on_blue_green(0.0, 1),
            500,
        )
        .then(&["shifting step 1"], &["weights green 10%"]),
        row(
            "accepted update back on blue",
            provisioning(true),
            on_blue(),
            500,
        )
        .then(
            &["failed"],
            &[
                "delete alarms guardrails-d1-errors,guardrails-d1-errors-final",
                "delete guardrails-d1-blue-green",
            ],
        ),
        row(
            "deadline while provisioning",
            provisioning(true),
            busy(on_blue(), Some(BG)),
            3600,
        )
        .then(&["rolling back"], &[]),
        row(
            "abort while provisioning",
            provisioning(false),
            on_blue(),
            60,
        )
        .command(abort())
        .then(
            &["rolling back", "rolled back"],
            &[
                "delete alarms guardrails-d1-errors,guardrails-d1-errors-final",
                "delete guardrails-d1-blue-green",
                "delete guardrails-d1-green",
            ],
        ),
        row(
            "endpoint deleted",
            provisioning(true),
            missing_endpoint(),
            60,
        )
        .then(
            &["failed"],
            &[
                "delete alarms guardrails-d1-errors,guardrails-d1-errors-final",
                "delete guardrails-d1-blue-green",
                "delete guardrails-d1-green",
            ],
        ),
        row("endpoint Failed", provisioning(true), broken(on_blue()), 60).then(
            &["failed"],
            &["delete alarms guardrails-d1-errors,guardrails-d1-errors-final"],
        ),
        // Shifting.
        row(
            "green needs capacity",
            Phase::Shifting { step: 1 },
            on_blue_green(10.0, 1),
            900,
        )
        .then(&[], &["instances green 4"]),
        row(
            "weights to move",
            Phase::Shifting { step: 0 },
            on_blue_green(0.0, 1),
            600,
        )
        .then(&[], &["weights green 10%"]),
        row(
            "weights reached",
            Phase::Shifting { step: 0 },
            on_blue_green(10.0, 1),
            600,
        )
        .then(&["baking step 1"], &[]),
        row(
            "endpoint busy",
            Phase::Shifting { step: 0 },
            busy(on_blue_green(0.0, 1), None),
            600,
        ),
        row(
            "ALARM while shifting",
            Phase::Shifting { step: 0 },
            alarmed(on_blue_green(5.0, 1)),
            600,
        )
        .then(&["rolling back"], &["weights green 0%"]),
        row(
            "deadline while shifting",
            Phase::Shifting { step: 1 },
            on_blue_green(10.0, 1),
            3600,
        )
        .then(&["rolling back"], &["weights green 0%"]),
        // Baking.
        row("bake running", baking(0, 1000), on_blue_green(10.0, 1), 900),
        row("bake passed", baking(0, 1000), on_blue_green(10.0, 1), 1000)
            .then(&["shifting step 2"], &["instances green 4"]),
        row(
            "final bake passed",
            baking(1, 2000),
            on_blue_green(100.0, 4),
            2000,
        )
        .then(
            &["removing blue"],
            &[
                "create guardrails-d1-green",
                "update to guardrails-d1-green",
            ],
        ),
        row(
            "ALARM while baking",
            baking(0, 1000),
            alarmed(on_blue_green(10.0, 1)),
            900,
        )
        .then(&["rolling back"], &["weights green 0%"]),
        row(
            "weights changed while baking",
            baking(0, 1000),
            on_blue_green(30.0, 1),
            900,
        )
        .then(&["shifting step 1"], &["weights green 10%"]),
        row(
            "config changed while baking",
            baking(0, 1000),
            on_green(),
            900,
        )
        .then(&["failed"], &[]),
        row(
            "abort while baking",
            baking(0, 1000),
            on_blue_green(10.0, 1),
            900,
        )
        .command(abort())
        .then(&["rolling back"], &["weights green 0%"]),
        // Removing blue.
        row(
            "removal in flight",
            removing(accepted()),
            busy(on_blue_green(100.0, 4), Some(GREEN)),
            2100,
        ),
        row(
            "final config in service",
            removing(accepted()),
            on_green(),
            2500,
        )
        .then(&["baking the final fleet"], &[]),
        // The final fleet bakes, watched.
        row("final fleet baking", final_bake(3000), on_green(), 2700),
        row("final fleet baked", final_bake(3000), on_green(), 3000).then(
            &["succeeded"],
            &[
                "delete alarms guardrails-d1-errors,guardrails-d1-errors-final",
                "delete guardrails-d1-blue-green",
            ],
        ),
        row(
            "ALARM of the final fleet",
            final_bake(3000),
            with_alarm(on_green(), FINAL, AlarmState::Alarm),
            2700,
        )
        .then(&["rolling back"], &["update to fraud-v1"]),
        row(
            "abort during the final bake",
            final_bake(3000),
            on_green(),
            2700,
        )
        .command(abort())
        .then(&["rolling back"], &["update to fraud-v1"]),
        row(
            "config changed during the final bake",
            final_bake(3000),
            on_blue(),
            2700,
        )
        .then(&["failed"], &[]),
        row(
            "removal failed once",
            removing(accepted()),
            on_blue_green(100.0, 4),
            2500,
        )
        .then(
            &[],
            &[
                "create guardrails-d1-green",
                "update to guardrails-d1-green",
            ],
        ),
        row(
            "ALARM after the final bake",
            removing(accepted()),
            alarmed(busy(on_blue_green(100.0, 4), Some(GREEN))),
            2100,
        ),
        row(
            "removal out of time",
            removing(accepted()),
            busy(on_blue_green(100.0, 4), Some(GREEN)),
            2000 + SETTLE_SECS,
        )
        .then(&["failed"], &[]),
        // Rolling back.
        row(
            "green still serves",
            rolling_back_phase(UpdateProgress::default()),
            on_blue_green(10.0, 1),
            801,
        )
        .then(&[], &["weights green 0%"]),
        row(
            "green at 0",
            rolling_back_phase(UpdateProgress::default()),
            on_blue_green(0.0, 1),
            830,
        )
        .then(&[], &["update to fraud-v1"]),
        row(
            "revert in flight",
            rolling_back_phase(accepted()),
            busy(on_blue_green(0.0, 1), Some(BLUE)),
            900,
        ),
        row(
            "back on blue",
            rolling_back_phase(accepted()),
            on_blue(),
            1500,
        )
        .then(
            &["rolled back"],
            &[
                "delete alarms guardrails-d1-errors,guardrails-d1-errors-final",
                "delete guardrails-d1-blue-green",
                "delete guardrails-d1-green",
            ],
        ),
        row(
            "revert failed once",
            rolling_back_phase(accepted()),
            on_blue_green(0.0, 1),
            1500,
        )
        .then(&[], &["update to fraud-v1"]),
        // A second abort ends the rollback at once, unfinished (the page says what is left).
        row(
            "abort while rolling back",
            rolling_back_phase(accepted()),
            busy(on_blue_green(0.0, 1), Some(BLUE)),
            900,
        )
        .command(abort())
        .then(&["failed"], &[]),
        row(
            "abort while removing blue",
            removing(accepted()),
            on_blue_green(100.0, 4),
            2100,
        )
        .command(abort())
        .then(&["rolling back"], &["weights green 0%"]),
        row(
            "abort once green serves alone, during its removal",
            removing(accepted()),
            busy(on_green(), None),
            2100,
        )
        .command(abort())
        .then(&["rolling back"], &[]),
        row(
            "rolling back from green alone",
            rolling_back_phase(accepted()),
            on_green(),
            2200,
        )
        .then(&[], &["update to fraud-v1"]),
        // Final.
        row("succeeded", Phase::Succeeded, alarmed(on_blue()), 9000).command(abort()),
    ];
    for r in rows {
        let d =
            deployment(r.phase.clone()).decide(&r.observation, r.command.as_ref(), at(r.at_secs));
        let path: Vec<String> = d.transitions.iter().map(|t| t.to.label()).collect();
        assert_eq!(path, r.path, "GIVEN {} ({})", r.given, r.phase.label());
        assert_eq!(
            action_names(&d.actions),
            r.actions,
            "GIVEN {} ({})",
            r.given,
            r.phase.label()
        );
    }
}

#[test]
fn the_approval_gate_in_the_table() {
    let rows = vec![
        row(
            "last bake before the gate passed",
            baking(0, 1000),
            on_blue_green(10.0, 1),
            1000,
        )
        .then(&["shifting step 2", "awaiting approval of step 2"], &[]),
        row(
            "waiting",
            Phase::AwaitingApproval { step: 1 },
            on_blue_green(10.0, 1),
            1500,
        ),
        row(
            "approved",
            Phase::AwaitingApproval { step: 1 },
            on_blue_green(10.0, 1),
            1500,
        )
        .command(approve())
        .then(&["shifting step 2"], &["instances green 4"]),
        row(
            "approved early",
            baking(0, 1000),
            on_blue_green(10.0, 1),
            1000,
        )
        .command(approve())
        .then(&["shifting step 2"], &["instances green 4"]),
        row(
            "ALARM while waiting",
            Phase::AwaitingApproval { step: 1 },
            with_alarm(on_blue_green(10.0, 1), NAMED, AlarmState::Alarm),
            1500,
        )
        .then(&["rolling back"], &["weights green 0%"]),
        row(
            "deadline while waiting",
            Phase::AwaitingApproval { step: 1 },
            on_blue_green(10.0, 1),
            3600,
        )
        .then(&["rolling back"], &["weights green 0%"]),
    ];
    for r in rows {
        let d = gated(r.phase.clone()).decide(&r.observation, r.command.as_ref(), at(r.at_secs));
        let path: Vec<String> = d.transitions.iter().map(|t| t.to.label()).collect();
        assert_eq!(path, r.path, "GIVEN {} ({})", r.given, r.phase.label());
        assert_eq!(
            action_names(&d.actions),
            r.actions,
            "GIVEN {} ({})",
            r.given,
            r.phase.label()
        );
    }
}
