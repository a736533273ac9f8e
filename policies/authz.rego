# Authorization of actions on requests, grants, the audit trail and the
# gateway's own configuration.
#
# Queried by the gateway as data.loggate.authz.decision with the input
# document described in README.md. Nothing is allowed unless one of the
# allow rules below says so.
package loggate.authz

import data.loggate.access

security_group := "security"

admin_group := "loggate-admins"

actor_groups := input.actor.groups

# The actor has a stable identity to compare with the requester's.
identified if object.get(input.actor, "id", "") != ""

own_request if {
	identified
	input.actor.id == object.get(input.requester, "id", "")
}

request_approver_groups := object.get(input, "approver_groups", [])

# Groups that oversee the stream: the request's approvers plus the
# environment's oversight groups from the access policy (staging is
# auto-approved, so its requests carry no approver groups, yet someone
# must be able to revoke).
stream_groups := {g | some g in request_approver_groups} | {g | some g in access.env_settings.oversight_groups}

is_request_approver if {
	some g in request_approver_groups
	g in actor_groups
}

is_stream_approver if {
	some g in stream_groups
	g in actor_groups
}

is_security if security_group in actor_groups

is_admin if admin_group in actor_groups

review_actions := {"approve", "deny"}

# manage_audit: retention purges, legal hold, signing-key rotation.
admin_actions := {"manage_sources", "manage_policies", "manage_audit", "manage_sessions"}

known_actions := {"alert_sample", "approve", "deny", "manage_sources", "manage_policies", "manage_audit", "manage_sessions", "revoke", "view_request", "read_audit", "replay_view"}

default allow := false

# Nobody reviews their own request, whatever groups they are in.
allow if {
	input.action in review_actions
	identified
	is_request_approver
	not own_request
}

allow if {
	input.action in {"revoke", "view_request"}
	identified
	own_request
}

allow if {
	input.action in {"revoke", "view_request"}
	identified
	is_stream_approver
}

allow if {
	input.action in {"revoke", "view_request"}
	identified
	is_security
}

allow if {
	input.action == "read_audit"
	identified
	is_security
}

allow if {
	input.action in admin_actions
	identified
	is_admin
}

# replay_view: rebuild what a closed view showed (security and admins).
allow if {
	input.action == "replay_view"
	identified
	is_security
}

allow if {
	input.action == "replay_view"
	identified
	is_admin
}

# alert_sample: may an alert keep one sample of the (redacted) line that
# matched its rule, shown to alert readers (security, loggate-admins) and
# sent to its receivers (Alertmanager, webhook, Slack)? The gateway asks
# with the alert's stream and no actor. Never for prod: a prod line leaves
# loggate only through a granted, audited view.
sample_envs_refused := {"prod"}

allow if {
	input.action == "alert_sample"
	input.env != ""
	not input.env in sample_envs_refused
}

why contains msg if {
	input.action == "alert_sample"
	input.env in sample_envs_refused
	msg := sprintf("alerts on %s carry no sample line", [input.env])
}

why contains "an alert without a stream carries no sample line" if {
	input.action == "alert_sample"
	input.env == ""
}

why contains msg if {
	not input.action in known_actions
	msg := sprintf("unknown action %q", [input.action])
}

why contains "actor has no identity" if not identified

why contains "nobody may approve or deny their own request" if {
	input.action in review_actions
	own_request
}

why contains "this request needs no approval" if {
	input.action in review_actions
	count(request_approver_groups) == 0
}

why contains msg if {
	input.action in review_actions
	count(request_approver_groups) > 0
	not is_request_approver
	msg := sprintf("only members of %s may %s this request", [concat(", ", sort(request_approver_groups)), input.action])
}

why contains msg if {
	input.action in {"revoke", "view_request"}
	msg := sprintf("only the holder, members of %s, or members of %s may %s", [
		concat(", ", sort(stream_groups)), security_group,
		replace(input.action, "_", " "),
	])
}

why contains msg if {
	input.action == "read_audit"
	msg := sprintf("only members of %s may read the audit trail", [security_group])
}

why contains msg if {
	input.action == "replay_view"
	msg := sprintf("only members of %s or %s may replay a view", [security_group, admin_group])
}

why contains msg if {
	input.action in admin_actions
	msg := sprintf("only members of %s may %s", [admin_group, replace(input.action, "_", " ")])
}

# Explanations are only reported for a refusal; a refusal always has one.
reasons := [] if allow else := sort(why) if count(why) > 0 else := ["not permitted"]

decision := {
	"allow": allow,
	"reasons": reasons,
}
