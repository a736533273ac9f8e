package policy

import "time"

// Subject is a signed-in person as the identity layer verified them.
type Subject struct {
	ID      string // stable id: issuer|subject
	Subject string
	Email   string
	Name    string
	Groups  []string
}

// Approval is one approver's consent to a pending request.
type Approval struct {
	Approver Subject
	Time     time.Time
}

// Input asks the access policy about a request for a log stream.
type Input struct {
	// Action is "request", "extend" or "probe". A probe asks what a request
	// would require (used to list streams); duration and reason are not
	// checked for it.
	Action    string
	Requester Subject
	Service   string
	Env       string
	// Duration is sent to Rego as duration_seconds (a number) and duration
	// (Go's time.Duration string, e.g. "4h0m0s").
	Duration   time.Duration
	Reason     string
	BreakGlass bool
	// Time is sent as RFC 3339 and as unix seconds. If zero: Config.Now().
	Time      time.Time
	Approvals []Approval
	// Level is the log level the request asks the stream's services to
	// emit while it is watched ("debug"), "" for none; Scope narrows it
	// to records with these attributes. Sent as input.request.level and
	// input.request.scope.
	Level string
	Scope map[string]string
}

// Decision is the access policy's answer for one Input.
type Decision struct {
	ID       string // unique per evaluation: "dec_" + 16 hex digits
	Revision string // the policy set's revision, "sha256:<hex>"
	// Allow means the request may proceed, at once or after approvals.
	Allow bool
	// Reasons explain a deny; non-empty whenever Allow is false.
	Reasons           []string
	ApprovalsRequired int // 0: auto-approve
	ApproverGroups    []string
	MaxDuration       time.Duration
	MaxLookback       time.Duration
	PendingTimeout    time.Duration // 0: nothing to wait for
	// BreakGlass reports whether the input asked for break-glass access.
	BreakGlass bool
	// BreakGlassAllowed reports whether the requester may use break-glass
	// on this stream (whether or not the input asked for it).
	BreakGlassAllowed bool
	// ReasonPattern is the regular expression the reason must match; empty
	// when any reason is accepted.
	ReasonPattern string
	// MinReasonLength is the least number of characters (after trimming) a
	// reason must have; 0 when not required.
	MinReasonLength int
}

// AutoApprove reports whether the request is granted without approvals.
func (d Decision) AutoApprove() bool { return d.Allow && d.ApprovalsRequired == 0 }

// ActionInput asks the authorization policy whether Actor may do Action.
type ActionInput struct {
	// Action is "approve", "deny", "revoke", "read_audit",
	// "manage_sources", "manage_policies" or "view_request".
	Action string
	Actor  Subject
	// Requester, Service, Env, BreakGlass and ApproverGroups describe the
	// request or grant acted on; ApproverGroups come from its Decision.
	Requester      Subject
	Service        string
	Env            string
	BreakGlass     bool
	ApproverGroups []string
}

// ActionDecision is the authorization policy's answer for one ActionInput.
type ActionDecision struct {
	ID       string
	Revision string
	Allow    bool
	Reasons  []string // non-empty whenever Allow is false
}

// ReloadEvent reports one reload attempt by Watch, so the gateway can
// audit policy.reloaded (OK) or policy.rejected (!OK).
type ReloadEvent struct {
	OK          bool
	Revision    string // the revision now in force (the new one when OK)
	OldRevision string // the revision in force before the attempt
	// Candidate is the revision of the files that were read, accepted or
	// not; empty if they could not be read.
	Candidate string
	Err       error
}

// TestResult is the outcome of one Rego test rule.
type TestResult struct {
	Name     string
	Package  string
	Pass     bool
	Fail     string // why it failed or errored; empty when Pass
	Duration time.Duration
}
