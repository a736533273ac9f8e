package loggate.authz_test

import data.loggate.authz

alice := {"id": "dev|alice", "subject": "alice", "email": "alice@example.com", "name": "Alice", "groups": ["engineers"]}

bob := {"id": "dev|bob", "subject": "bob", "email": "bob@example.com", "name": "Bob", "groups": ["engineers", "sre-leads", "oncall"]}

carol := {"id": "dev|carol", "subject": "carol", "email": "carol@example.com", "name": "Carol", "groups": ["security", "loggate-admins"]}

dave := {"id": "dev|dave", "subject": "dave", "email": "dave@example.com", "name": "Dave", "groups": []}

act(action, actor, requester, env, approver_groups) := {
	"action": action,
	"actor": actor,
	"requester": requester,
	"service": "payments",
	"env": env,
	"break_glass": false,
	"approver_groups": approver_groups,
	"time": "2025-01-02T03:04:05Z",
	"time_unix": 1735787045,
}

test_sre_lead_approves_others_request if {
	d := authz.decision with input as act("approve", bob, alice, "prod", ["sre-leads"])
	d.allow
	d.reasons == []
}

test_sre_lead_denies_others_request if {
	d := authz.decision with input as act("deny", bob, alice, "prod", ["sre-leads"])
	d.allow
}

test_nobody_approves_own_request if {
	d := authz.decision with input as act("approve", bob, bob, "prod", ["sre-leads"])
	not d.allow
	d.reasons == ["nobody may approve or deny their own request"]
}

test_admin_cannot_approve_own_request if {
	boss := object.union(carol, {"groups": ["sre-leads", "loggate-admins", "security"]})
	d := authz.decision with input as act("approve", boss, boss, "prod", ["sre-leads"])
	not d.allow
}

test_non_approver_cannot_approve if {
	d := authz.decision with input as act("approve", alice, bob, "prod", ["sre-leads"])
	not d.allow
	d.reasons == ["only members of sre-leads may approve this request"]
}

test_auto_approved_request_has_no_approvers if {
	d := authz.decision with input as act("approve", bob, alice, "staging", [])
	d.reasons == ["this request needs no approval"]
}

test_revoke if {
	every c in [
		{"who": "holder", "actor": alice, "env": "prod", "groups": ["sre-leads"], "allow": true},
		{"who": "approver", "actor": bob, "env": "prod", "groups": ["sre-leads"], "allow": true},
		{"who": "stream overseer of auto-approved grant", "actor": bob, "env": "staging", "groups": [], "allow": true},
		{"who": "security", "actor": carol, "env": "prod", "groups": ["sre-leads"], "allow": true},
		{"who": "no one in particular", "actor": dave, "env": "prod", "groups": ["sre-leads"], "allow": false},
	] {
		d := authz.decision with input as act("revoke", c.actor, alice, c.env, c.groups)
		d.allow == c.allow
	}
}

test_revoke_refusal_names_who_may if {
	d := authz.decision with input as act("revoke", dave, alice, "prod", ["sre-leads"])
	d.reasons == ["only the holder, members of sre-leads, or members of security may revoke"]
}

test_view_request if {
	every c in [
		{"actor": alice, "allow": true},
		{"actor": bob, "allow": true},
		{"actor": carol, "allow": true},
		{"actor": dave, "allow": false},
	] {
		d := authz.decision with input as act("view_request", c.actor, alice, "prod", ["sre-leads"])
		d.allow == c.allow
	}
}

test_read_audit_only_security if {
	ok := authz.decision with input as act("read_audit", carol, dave, "", [])
	ok.allow
	d := authz.decision with input as act("read_audit", bob, dave, "", [])
	d.reasons == ["only members of security may read the audit trail"]
}

test_manage_only_admins if {
	sources := authz.decision with input as act("manage_sources", carol, dave, "", [])
	sources.allow
	policies := authz.decision with input as act("manage_policies", carol, dave, "", [])
	policies.allow
	d := authz.decision with input as act("manage_policies", bob, dave, "", [])
	d.reasons == ["only members of loggate-admins may manage policies"]
	audit := authz.decision with input as act("manage_audit", carol, dave, "", [])
	audit.allow
	no := authz.decision with input as act("manage_audit", bob, dave, "", [])
	no.reasons == ["only members of loggate-admins may manage audit"]
	sessions := authz.decision with input as act("manage_sessions", carol, dave, "", [])
	sessions.allow
	others := authz.decision with input as act("manage_sessions", bob, dave, "", [])
	not others.allow
}

test_anonymous_actor_denied if {
	anon := object.union(bob, {"id": ""})
	d := authz.decision with input as act("approve", anon, alice, "prod", ["sre-leads"])
	not d.allow
	"actor has no identity" in d.reasons
}

test_unknown_action_denied if {
	d := authz.decision with input as act("delete_everything", carol, alice, "prod", ["sre-leads"])
	d.reasons == ["unknown action \"delete_everything\""]
}

test_replay_view_security_or_admins if {
	ok := authz.decision with input as act("replay_view", carol, dave, "", [])
	ok.allow
	admin := {"id": "dev|ada", "subject": "ada", "email": "ada@example.com", "name": "Ada", "groups": ["loggate-admins"]}
	by_admin := authz.decision with input as act("replay_view", admin, dave, "", [])
	by_admin.allow
	d := authz.decision with input as act("replay_view", alice, dave, "", [])
	not d.allow
	d.reasons == ["only members of security or loggate-admins may replay a view"]
}

nobody := {"id": "", "subject": "", "email": "", "name": "", "groups": []}

test_alert_sample_allowed_for_staging if {
	d := authz.decision with input as act("alert_sample", nobody, nobody, "staging", [])
	d.allow
	d.reasons == []
}

test_alert_sample_never_for_prod if {
	d := authz.decision with input as act("alert_sample", nobody, nobody, "prod", [])
	not d.allow
	"alerts on prod carry no sample line" in d.reasons
}

test_alert_sample_never_for_prod_whoever_asks if {
	d := authz.decision with input as act("alert_sample", carol, nobody, "prod", [])
	not d.allow
}

test_alert_sample_needs_a_stream if {
	d := authz.decision with input as act("alert_sample", nobody, nobody, "", [])
	not d.allow
	"an alert without a stream carries no sample line" in d.reasons
}
