package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// slackBody renders an event envelope (JSON) as a Slack incoming-webhook
// body {"text": ...}. Every value that came from a person (names, reasons,
// comments) goes through slackEscape, so a reason cannot mention @channel,
// forge a link or a user mention.
func slackBody(kind string, envelopeJSON []byte, publicURL string) ([]byte, error) {
	var ev struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(envelopeJSON, &ev); err != nil {
		return nil, fmt.Errorf("slack body: %w", err)
	}
	text := slackText(kind, ev.Data, strings.TrimRight(publicURL, "/"))
	return json.Marshal(map[string]string{"text": text})
}

// slackText is the message for one event; d is the envelope's data.
func slackText(kind string, d map[string]any, base string) string {
	req := obj(d, "request")
	g := obj(d, "grant")
	if g == nil {
		g = obj(req, "grant")
	}
	who := person(obj(req, "requester"))
	stream := slackEscape(str(req, "service") + "/" + str(req, "env"))
	if req == nil && g != nil {
		who = person(obj(g, "holder"))
		stream = slackEscape(str(g, "service") + "/" + str(g, "env"))
	}
	reason := quote(str(req, "reason"))
	link := ""
	reqID := str(req, "id")
	if reqID == "" {
		reqID = str(g, "request_id")
	}
	if base != "" && reqID != "" {
		link = fmt.Sprintf(" <%s/requests/%s|Open in loggate>", slackEscape(base), slackEscape(reqID))
	} else if base != "" {
		link = fmt.Sprintf(" <%s/|Open loggate>", slackEscape(base))
	}
	switch kind {
	case KindAlertFired, KindAlertResolved:
		return alertText(kind, obj(d, "alert"))
	case KindRequestCreated:
		dec := obj(req, "decision")
		n := num(dec, "approvals_required")
		return fmt.Sprintf("*Access request*: %s asks to read %s for %s: %s. Needs %d approval%s from %s.%s",
			who, stream, slackEscape(str(req, "duration")), reason, n, plural(n),
			slackEscape(strings.Join(strs(dec, "approver_groups"), ", ")), link)
	case KindRequestApproved:
		by := "policy (auto-approved)"
		if names := approvers(req, "approve"); names != "" {
			by = names
		}
		return fmt.Sprintf("*Access approved*: %s may read %s until %s, approved by %s.%s",
			who, stream, when(str(g, "expires_at")), by, link)
	case KindRequestDenied:
		why := str(req, "closed_comment")
		by := person(obj(req, "closed_by"))
		if why == "" {
			why = strings.Join(strs(obj(req, "decision"), "reasons"), "; ")
			by = "policy"
		}
		return fmt.Sprintf("*Access denied*: %s's request for %s was denied by %s: %s.%s", who, stream, by, quote(why), link)
	case KindRequestCancelled:
		return fmt.Sprintf("*Request cancelled*: %s no longer needs %s.%s", who, stream, link)
	case KindBreakGlass:
		return fmt.Sprintf(":rotating_light: *BREAK-GLASS*: %s opened %s for %s without approval: %s. "+
			"Access ends at %s; a post-incident review is open for security.%s",
			who, stream, slackEscape(str(req, "duration")), reason, when(str(g, "expires_at")), link)
	case KindGrantExpiring:
		return fmt.Sprintf("*Access expiring*: %s's access to %s ends at %s.%s", who, stream, when(str(g, "expires_at")), link)
	case KindGrantRevoked:
		return fmt.Sprintf("*Access revoked*: %s's access to %s was revoked by %s: %s.%s",
			who, stream, person(obj(g, "revoked_by")), quote(str(g, "revoke_reason")), link)
	}
	return fmt.Sprintf("loggate: %s about %s (%s).%s", slackEscape(kind), stream, who, link)
}

// slackEscape makes untrusted text inert in a Slack message: the three
// characters Slack's markup reserves become entities (so "<!channel>",
// "<@U123>" and "<url|label>" cannot be formed) and every "@" is followed by
// a zero-width space (so "@here" and "@channel" do not notify anyone).
// Line breaks become spaces: a reason cannot fake a second message line.
func slackEscape(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, c := range s {
		switch c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '@', '\uFF20': // and the full-width at sign
			b.WriteRune(c)
			b.WriteRune('\u200B')
		case '\n', '\r', '\t':
			b.WriteByte(' ')
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func quote(s string) string {
	if s == "" {
		return "(no reason given)"
	}
	return "“" + slackEscape(s) + "”"
}

func person(p map[string]any) string {
	for _, k := range []string{"name", "email", "id"} {
		if v := str(p, k); v != "" {
			return slackEscape(v)
		}
	}
	return "someone"
}

func approvers(req map[string]any, verdict string) string {
	list, _ := req["approvals"].([]any)
	var names []string
	for _, a := range list {
		m, _ := a.(map[string]any)
		if str(m, "verdict") == verdict {
			names = append(names, person(obj(m, "approver")))
		}
	}
	return strings.Join(names, ", ")
}

func when(rfc3339 string) string {
	t, err := time.Parse(time.RFC3339Nano, rfc3339)
	if err != nil {
		return "an unknown time"
	}
	return t.UTC().Format("15:04 MST, 2 Jan")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func obj(m map[string]any, k string) map[string]any {
	v, _ := m[k].(map[string]any)
	return v
}

func str(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}

func num(m map[string]any, k string) int {
	v, _ := m[k].(float64)
	return int(v)
}

func strs(m map[string]any, k string) []string {
	list, _ := m[k].([]any)
	var out []string
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// alertText is the message for an alert firing or resolving.
func alertText(kind string, a map[string]any) string {
	where := ""
	if s, e := str(a, "service"), str(a, "env"); s != "" || e != "" {
		where = " on " + slackEscape(s+"/"+e)
	}
	link := ""
	if l := str(a, "link"); strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
		link = fmt.Sprintf(" <%s|Ask for access>", slackEscape(l))
	}
	if kind == KindAlertResolved {
		return fmt.Sprintf("*Alert resolved*: %s%s.", slackEscape(str(a, "rule")), where)
	}
	return fmt.Sprintf(":rotating_light: *Alert* (%s): %s%s — %d in %s.%s", slackEscape(str(a, "severity")),
		slackEscape(str(a, "rule")), where, num(a, "count"), slackEscape(str(a, "window")), link)
}
