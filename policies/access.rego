# Access decisions: may this person look at this log stream, for how long,
# and who has to agree first?
#
# Queried by the gateway as data.loggate.access.decision with the input
# document described in README.md. The decision is total: every field is
# always present, and "allow" is false whenever "reasons" is non-empty.
package loggate.access

# Seconds, so the numbers below read as durations.
minute := 60

hour := 60 * minute

# Per-environment settings. An environment not listed here gets
# other_environment. approver_groups are the groups whose members oversee
# the stream: they approve requests when approvals_required > 0 and may
# revoke its grants either way.
environments := {
	"staging": {
		"approvals_required": 0,
		"approver_groups": ["sre-leads"],
		"max_duration_seconds": 8 * hour,
		"max_lookback_seconds": 1 * hour,
		"pending_timeout_seconds": 0,
		"reason_pattern": "",
	},
	"prod": {
		"approvals_required": 1,
		"approver_groups": ["sre-leads"],
		"max_duration_seconds": 4 * hour,
		"max_lookback_seconds": 15 * minute,
		"pending_timeout_seconds": 1 * hour,
		"reason_pattern": "^(INC|CHG|SR)-[0-9]+",
	},
}

other_environment := {
	"approvals_required": 1,
	"approver_groups": ["sre-leads"],
	"max_duration_seconds": 2 * hour,
	"max_lookback_seconds": 15 * minute,
	"pending_timeout_seconds": 1 * hour,
	"reason_pattern": "",
}

# Only members of this group may ask for access at all.
requester_group := "engineers"

# Break-glass: members of this group may skip approval in an emergency,
# with a short cap and a written reason.
break_glass_group := "oncall"

break_glass_max_duration_seconds := 15 * minute

break_glass_max_lookback_seconds := 15 * minute

break_glass_min_reason_length := 10

# settings(env) is the settings object of an environment.
settings(env) := environments[env]

settings(env) := other_environment if not environments[env]

env_settings := settings(input.env)

requester_groups := {g | some g in input.requester.groups}

is_requester if requester_group in requester_groups

is_break_glass_member if break_glass_group in requester_groups

default break_glass := false

break_glass if input.break_glass == true

default break_glass_allowed := false

break_glass_allowed if {
	is_requester
	is_break_glass_member
}

# Actions that ask for access now; "probe" only asks what a request would
# need, so duration and reason are not checked for it.
access_actions := {"request", "extend"}

known_actions := access_actions | {"probe"}

checks_request if input.action in access_actions

approvals_required := 0 if break_glass

approvals_required := env_settings.approvals_required if not break_glass

approver_groups := [] if approvals_required == 0

approver_groups := env_settings.approver_groups if approvals_required > 0

max_duration_seconds := min({env_settings.max_duration_seconds, break_glass_max_duration_seconds}) if break_glass

max_duration_seconds := env_settings.max_duration_seconds if not break_glass

max_lookback_seconds := min({env_settings.max_lookback_seconds, break_glass_max_lookback_seconds}) if break_glass

max_lookback_seconds := env_settings.max_lookback_seconds if not break_glass

# A break-glass request has no one to wait for.
pending_timeout_seconds := 0 if approvals_required == 0

pending_timeout_seconds := env_settings.pending_timeout_seconds if approvals_required > 0

# The ticket pattern is not applied to break-glass reasons; those need
# min_reason_length characters of free text instead.
reason_pattern := "" if break_glass

reason_pattern := env_settings.reason_pattern if not break_glass

min_reason_length := break_glass_min_reason_length if break_glass

min_reason_length := 0 if not break_glass

# human(s) prints a whole number of seconds the way people write caps.
human(s) := sprintf("%dh", [s / hour]) if s % hour == 0

human(s) := sprintf("%dm", [s / minute]) if {
	s % hour != 0
	s % minute == 0
}

human(s) := sprintf("%ds", [s]) if s % minute != 0

deny contains msg if {
	not input.action in known_actions
	msg := sprintf("unknown action %q", [input.action])
}

deny contains msg if {
	not is_requester
	msg := sprintf("requester is not a member of %s", [requester_group])
}

deny contains "service and env are required" if {
	some field in ["service", "env"]
	object.get(input, field, "") == ""
}

deny contains msg if {
	break_glass
	not is_break_glass_member
	msg := sprintf("break-glass is only for members of %s", [break_glass_group])
}

deny contains "duration must be at least 1s" if {
	checks_request
	not input.duration_seconds >= 1
}

deny contains msg if {
	checks_request
	input.duration_seconds > max_duration_seconds
	msg := sprintf("duration %s exceeds the maximum of %s for %s", [input.duration, human(max_duration_seconds), scope])
}

scope := sprintf("break-glass in %s", [input.env]) if break_glass

scope := input.env if not break_glass

deny contains msg if {
	checks_request
	reason_pattern != ""
	not regex.match(reason_pattern, object.get(input, "reason", ""))
	msg := sprintf("reason must start with a ticket reference matching %s in %s", [reason_pattern, input.env])
}

deny contains msg if {
	checks_request
	break_glass
	count(trim_space(object.get(input, "reason", ""))) < min_reason_length
	msg := sprintf("break-glass needs a reason of at least %d characters", [min_reason_length])
}

decision := {
	"allow": count(deny) == 0,
	"reasons": sort(deny),
	"approvals_required": approvals_required,
	"approver_groups": approver_groups,
	"max_duration_seconds": max_duration_seconds,
	"max_lookback_seconds": max_lookback_seconds,
	"pending_timeout_seconds": pending_timeout_seconds,
	"break_glass": break_glass,
	"break_glass_allowed": break_glass_allowed,
	"reason_pattern": reason_pattern,
	"min_reason_length": min_reason_length,
}
