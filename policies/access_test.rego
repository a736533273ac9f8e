package loggate.access_test

import data.loggate.access

alice := {"id": "dev|alice", "subject": "alice", "email": "alice@example.com", "name": "Alice", "groups": ["engineers"]}

bob := {"id": "dev|bob", "subject": "bob", "email": "bob@example.com", "name": "Bob", "groups": ["engineers", "sre-leads", "oncall"]}

carol := {"id": "dev|carol", "subject": "carol", "email": "carol@example.com", "name": "Carol", "groups": ["security", "loggate-admins"]}

# req builds a request input; overrides replace any field.
req(who, env, overrides) := object.union(
	{
		"action": "request",
		"requester": who,
		"service": "payments",
		"env": env,
		"duration_seconds": 3600,
		"duration": "1h0m0s",
		"reason": "INC-1234 checkout errors",
		"break_glass": false,
		"approvals": [],
		"time": "2025-01-02T03:04:05Z",
		"time_unix": 1735787045,
	},
	overrides,
)

test_staging_engineer_auto_approved if {
	d := access.decision with input as req(alice, "staging", {"reason": ""})
	d.allow
	d.approvals_required == 0
	d.approver_groups == []
	d.max_duration_seconds == 8 * 3600
	d.max_lookback_seconds == 3600
	d.reason_pattern == ""
}

test_prod_needs_one_sre_lead if {
	d := access.decision with input as req(alice, "prod", {})
	d.allow
	d.approvals_required == 1
	d.approver_groups == ["sre-leads"]
	d.max_duration_seconds == 4 * 3600
	d.max_lookback_seconds == 15 * 60
	d.pending_timeout_seconds == 3600
	d.reason_pattern == "^(INC|CHG|SR)-[0-9]+"
	not d.break_glass_allowed
}

test_other_env_needs_approval_capped_2h if {
	d := access.decision with input as req(alice, "qa", {"reason": "poking at qa"})
	d.allow
	d.approvals_required == 1
	d.approver_groups == ["sre-leads"]
	d.max_duration_seconds == 2 * 3600
}

test_non_engineer_denied if {
	d := access.decision with input as req(carol, "staging", {})
	not d.allow
	d.reasons == ["requester is not a member of engineers"]
}

test_non_engineer_denied_on_probe if {
	d := access.decision with input as req(carol, "staging", {"action": "probe", "duration_seconds": 0, "duration": "0s"})
	not d.allow
}

test_duration_over_cap_denied if {
	d := access.decision with input as req(alice, "prod", {"duration_seconds": 5 * 3600, "duration": "5h0m0s"})
	not d.allow
	d.reasons == ["duration 5h0m0s exceeds the maximum of 4h for prod"]
}

test_duration_at_cap_allowed if {
	d := access.decision with input as req(alice, "prod", {"duration_seconds": 4 * 3600, "duration": "4h0m0s"})
	d.allow
}

test_duration_below_one_second_denied if {
	d := access.decision with input as req(alice, "staging", {"duration_seconds": 0.5, "duration": "500ms"})
	d.reasons == ["duration must be at least 1s"]
}

test_probe_with_zero_duration_not_denied if {
	d := access.decision with input as req(alice, "prod", {"action": "probe", "duration_seconds": 0, "duration": "0s", "reason": ""})
	d.allow
	d.approvals_required == 1
}

test_prod_reason_without_ticket_denied if {
	d := access.decision with input as req(alice, "prod", {"reason": "just looking around"})
	not d.allow
	d.reasons == ["reason must start with a ticket reference matching ^(INC|CHG|SR)-[0-9]+ in prod"]
}

test_prod_reason_ticket_kinds_accepted if {
	every r in ["INC-1", "CHG-22 deploy", "SR-333: customer"] {
		d := access.decision with input as req(alice, "prod", {"reason": r})
		d.allow
	}
}

test_break_glass_oncall_granted_at_once if {
	d := access.decision with input as req(bob, "prod", {
		"break_glass": true, "reason": "payments down, paging",
		"duration_seconds": 900, "duration": "15m0s",
	})
	d.allow
	d.approvals_required == 0
	d.approver_groups == []
	d.max_duration_seconds == 900
	d.max_lookback_seconds == 900
	d.pending_timeout_seconds == 0
	d.break_glass
	d.break_glass_allowed
	d.reason_pattern == ""
	d.min_reason_length == 10
}

test_break_glass_capped_at_15m if {
	d := access.decision with input as req(bob, "prod", {"break_glass": true, "reason": "payments down, paging"})
	d.reasons == ["duration 1h0m0s exceeds the maximum of 15m for break-glass in prod"]
}

test_break_glass_needs_reason if {
	d := access.decision with input as req(bob, "prod", {
		"break_glass": true, "reason": "  down  ",
		"duration_seconds": 600, "duration": "10m0s",
	})
	d.reasons == ["a reason of at least 10 characters is required for break-glass in prod"]
}

test_break_glass_not_for_non_oncall if {
	d := access.decision with input as req(alice, "prod", {
		"break_glass": true, "reason": "payments down, paging",
		"duration_seconds": 600, "duration": "10m0s",
	})
	d.reasons == ["break-glass is only for members of oncall"]
}

test_unknown_action_denied if {
	d := access.decision with input as req(alice, "staging", {"action": "steal"})
	d.reasons == ["unknown action \"steal\""]
}

test_missing_env_denied if {
	d := access.decision with input as req(alice, "", {})
	"env is required" in d.reasons
}

test_human_durations if {
	access.human(7200) == "2h"
	access.human(900) == "15m"
	access.human(90) == "90s"
}

test_extend_is_checked_like_request if {
	d := access.decision with input as req(alice, "prod", {"action": "extend", "duration_seconds": 5 * 3600, "duration": "5h0m0s"})
	d.reasons == ["duration 5h0m0s exceeds the maximum of 4h for prod"]
}

test_break_glass_in_staging_capped_at_15m if {
	d := access.decision with input as req(bob, "staging", {
		"break_glass": true, "reason": "staging on fire, paging",
		"duration_seconds": 900, "duration": "15m0s",
	})
	d.allow
	d.max_duration_seconds == 900
	d.max_lookback_seconds == 900
}

test_missing_groups_denied if {
	d := access.decision with input as object.remove(req(alice, "staging", {}), ["requester"])
	d.reasons == ["requester is not a member of engineers"]
}

# A raised log level (input.request.level).

test_debug_in_prod_needs_sre_lead_and_30m if {
	d := access.decision with input as req(alice, "prod", {"duration_seconds": 1800, "duration": "30m0s", "request": {"level": "debug", "scope": {}}})
	d.allow
	d.approvals_required == 1
	d.approver_groups == ["sre-leads"]
	d.max_duration_seconds == 1800
}

test_debug_in_prod_over_30m_denied if {
	d := access.decision with input as req(alice, "prod", {"request": {"level": "debug", "scope": {}}})
	not d.allow
	d.reasons == ["duration 1h0m0s exceeds the maximum of 30m for prod at level debug"]
}

test_debug_in_staging_keeps_staging_rules if {
	d := access.decision with input as req(alice, "staging", {"reason": "", "request": {"level": "debug", "scope": {"tenant": "acme"}}})
	d.allow
	d.approvals_required == 0
	d.max_duration_seconds == data.loggate.access.environments.staging.max_duration_seconds
}

test_no_level_keeps_prod_rules if {
	d := access.decision with input as req(alice, "prod", {"request": {"level": "", "scope": {}}})
	d.allow
	d.max_duration_seconds == 4 * 3600
}

test_debug_in_other_env_keeps_its_approvers if {
	d := access.decision with input as req(alice, "qa", {"request": {"level": "debug", "scope": {}}})
	d.allow
	d.approver_groups == ["sre-leads"]
	d.max_duration_seconds == 2 * 3600
}

test_debug_in_prod_refuses_break_glass if {
	d := access.decision with input as req(bob, "prod", {"break_glass": true, "duration_seconds": 600, "duration": "10m0s", "request": {"level": "debug", "scope": {}}})
	not d.allow
	"break-glass cannot raise the log level in prod; ask for debug without break-glass" in d.reasons
}

test_unknown_level_denied if {
	d := access.decision with input as req(alice, "staging", {"request": {"level": "verbose", "scope": {}}})
	not d.allow
	d.reasons == ["unknown log level \"verbose\" (debug or trace)"]
}
