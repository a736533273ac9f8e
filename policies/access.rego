# Access decisions: may this person look at this log stream, for how long,
# and who has to agree first?
#
# Queried by the gateway as data.loggate.access.decision with the input
# document described in README.md. The decision is total: every field is
# always present, and "allow" is false whenever "reasons" is non-empty.
package loggate.access

# Per-environment settings. An environment not listed here gets
# other_environment. approver_groups must approve a request when
# approvals_required > 0; oversight_groups oversee the stream's grants
# (they may view and revoke them, see authz.rego) even when no approval
# is needed.
environments := {
	"staging": {
		"approvals_required": 0,
		"approver_groups": [],
		"oversight_groups": ["sre-leads"],
		"max_duration_seconds": 28800, # 8h
		"max_lookback_seconds": 3600, # 1h
		"pending_timeout_seconds": 0,
		"reason_pattern": "",
		"min_reason_length": 0,
	},
	"prod": {
		"approvals_required": 1,
		"approver_groups": ["sre-leads"],
		"oversight_groups": ["sre-leads"],
		"max_duration_seconds": 14400, # 4h
		"max_lookback_seconds": 900, # 15m
		"pending_timeout_seconds": 3600, # 1h
		"reason_pattern": "^(INC|CHG|SR)-[0-9]+",
		"min_reason_length": 0,
	},
}

other_environment := {
	"approvals_required": 1,
	"approver_groups": ["sre-leads"],
	"oversight_groups": ["sre-leads"],
	"max_duration_seconds": 7200, # 2h
	"max_lookback_seconds": 900, # 15m
	"pending_timeout_seconds": 3600, # 1h
	"reason_pattern": "",
	"min_reason_length": 0,
}

# Only members of this group may ask for access at all.
requester_group := "engineers"

# Break-glass: members of this group may skip approval in an emergency,
# with a short cap and a written reason instead of a ticket.
break_glass_group := "oncall"

break_glass_max_duration_seconds := 900 # 15m

break_glass_max_lookback_seconds := 900 # 15m

break_glass_min_reason_length := 10

env_settings := environments[input.env] if true else := other_environment

# Durations are in seconds, written as literals above because OPA does
# not fold constant arithmetic and every decision reads them.
minute := 60

hour := 3600

is_requester if requester_group in input.requester.groups

is_break_glass_member if break_glass_group in input.requester.groups

default break_glass := false

break_glass := input.break_glass == true

default break_glass_allowed := false

break_glass_allowed if {
	is_requester
	is_break_glass_member
}

known_actions := {"request", "extend", "probe"}


# The limits in force: break-glass grants at once, with a short cap and
# no ticket pattern; otherwise the environment's settings apply.
limits := {
	"approvals_required": 0,
	"approver_groups": [],
	"max_duration_seconds": min([env_settings.max_duration_seconds, break_glass_max_duration_seconds]),
	"max_lookback_seconds": min([env_settings.max_lookback_seconds, break_glass_max_lookback_seconds]),
	"pending_timeout_seconds": 0,
	"reason_pattern": "",
	"min_reason_length": break_glass_min_reason_length,
} if input.break_glass == true else := env_settings

# The rules below that check duration and reason apply to the actions
# that ask for access now ("request", "extend"), not to "probe", which
# only asks what a request would need. Their first condition is on the
# input, so OPA's rule index skips them when it does not hold.

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

deny contains "service is required" if input.service == ""

deny contains "env is required" if input.env == ""

deny contains msg if {
	input.break_glass == true
	not is_break_glass_member
	msg := sprintf("break-glass is only for members of %s", [break_glass_group])
}

deny contains "duration must be at least 1s" if {
	input.action in {"request", "extend"}
	not input.duration_seconds >= 1
}

deny contains msg if {
	input.action in {"request", "extend"}
	input.duration_seconds > limits.max_duration_seconds
	msg := sprintf("duration %s exceeds the maximum of %s for %s", [input.duration, human(limits.max_duration_seconds), scope])
}

scope := sprintf("break-glass in %s", [input.env]) if break_glass else := input.env

deny contains msg if {
	input.action in {"request", "extend"}
	limits.reason_pattern != ""
	not regex.match(limits.reason_pattern, object.get(input, "reason", ""))
	msg := sprintf("reason must start with a ticket reference matching %s in %s", [limits.reason_pattern, input.env])
}

deny contains msg if {
	input.action in {"request", "extend"}
	count(trim_space(object.get(input, "reason", ""))) < limits.min_reason_length
	msg := sprintf("a reason of at least %d characters is required for %s", [limits.min_reason_length, scope])
}

decision := {
	"allow": count(deny) == 0,
	"reasons": sort(deny),
	"approvals_required": limits.approvals_required,
	"approver_groups": limits.approver_groups,
	"max_duration_seconds": limits.max_duration_seconds,
	"max_lookback_seconds": limits.max_lookback_seconds,
	"pending_timeout_seconds": limits.pending_timeout_seconds,
	"break_glass": break_glass,
	"break_glass_allowed": break_glass_allowed,
	"reason_pattern": limits.reason_pattern,
	"min_reason_length": limits.min_reason_length,
}
