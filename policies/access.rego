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

# Who may do what, in short: only members of "engineers" may ask for
# access at all; members of "oncall" may also break glass: access granted
# at once, without a ticket pattern but with a reason of at least 10
# characters, capped at 15 minutes of access and 15 minutes of lookback
# (or the environment's caps, if lower). Group names and numbers are
# written inline because every rule and constant costs evaluation time on
# every decision (OPA does not fold constants).

# "if true else" falls back to other_environment when the table has no
# entry for the environment.
env_settings := environments[input.env] if true else := other_environment

default is_requester := false

is_requester := "engineers" in input.requester.groups

default is_break_glass_member := false

is_break_glass_member := "oncall" in input.requester.groups

default break_glass := false

break_glass := input.break_glass == true

default break_glass_allowed := false

break_glass_allowed := is_break_glass_member if is_requester

# The limits in force: the break-glass ones, or the environment's,
# tightened for a raised log level in prod (debug_limits).
limits := debug_limits if raised_level_in_prod else := base_limits

base_limits := {
	"approvals_required": 0,
	"approver_groups": [],
	"max_duration_seconds": min([env_settings.max_duration_seconds, 900]), # 15m
	"max_lookback_seconds": min([env_settings.max_lookback_seconds, 900]), # 15m
	"pending_timeout_seconds": 0,
	"reason_pattern": "",
	"min_reason_length": 10,
} if input.break_glass == true else := env_settings

# A request may ask the stream's services to log at a raised level
# (input.request.level, "debug" or "trace") while it is watched. Debug
# lines carry what info lines leave out, so in prod that needs an
# approver from sre-leads and lasts at most 30 minutes. Requests without
# a level are unaffected.
default raised_level := false

raised_level := input.request.level in {"debug", "trace"}

default raised_level_in_prod := false

raised_level_in_prod := raised_level if input.env == "prod"

debug_limits := object.union(base_limits, {
	"approvals_required": max([base_limits.approvals_required, 1]),
	"approver_groups": ["sre-leads"],
	"max_duration_seconds": min([base_limits.max_duration_seconds, 1800]), # 30m
})

# The rules below that check duration and reason apply to the actions
# that ask for access now ("request", "extend"), not to "probe", which
# only asks what a request would need. Their first condition is on the
# input, so OPA's rule index skips them when it does not hold.

# human(s) prints a whole number of seconds the way people write caps.
human(s) := sprintf("%dh", [s / 3600]) if s % 3600 == 0

human(s) := sprintf("%dm", [s / 60]) if {
	s % 3600 != 0
	s % 60 == 0
}

human(s) := sprintf("%ds", [s]) if s % 60 != 0

deny contains msg if {
	not input.action in {"request", "extend", "probe"}
	msg := sprintf("unknown action %q", [input.action])
}

deny contains "requester is not a member of engineers" if is_requester == false

deny contains "service is required" if input.service == ""

deny contains "env is required" if input.env == ""

deny contains "break-glass is only for members of oncall" if {
	input.break_glass == true
	is_break_glass_member == false
}

deny contains msg if {
	not object.get(input, ["request", "level"], "") in {"", "debug", "trace"}
	msg := sprintf("unknown log level %q (debug or trace)", [input.request.level])
}

# Break-glass issues a grant at once, without the approval a raised level
# in prod needs: ask for debug with an approval, or break glass without it.
deny contains "break-glass cannot raise the log level in prod; ask for debug without break-glass" if {
	input.break_glass == true
	raised_level_in_prod
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

scope := sprintf("break-glass in %s", [input.env]) if break_glass else := scope_env

scope_env := sprintf("%s at level %s", [input.env, input.request.level]) if raised_level_in_prod else := input.env

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
