package cli

import (
	"fmt"
	"strings"

	"github.com/loggate/loggate/gateway/api"
)

// The API's JSON shapes are package api's; these are how the client shows
// them.

// label is a person's name for a sentence.
func label(s api.Subject) string {
	switch {
	case s.Name != "" && s.Email != "" && s.Name != s.Email:
		return fmt.Sprintf("%s <%s>", s.Name, s.Email)
	case s.Name != "":
		return s.Name
	case s.Email != "":
		return s.Email
	}
	return s.ID
}

// short is a name for a table cell.
func short(s api.Subject) string {
	if s.Email != "" {
		return s.Email
	}
	if s.Name != "" {
		return s.Name
	}
	return s.ID
}

// auditActor is who did an audited action, for a table cell.
func auditActor(e api.AuditEvent) string {
	a := e.Actor
	switch {
	case a.Email != "":
		return a.Email
	case a.Name != "":
		return a.Name
	case a.Subject != "":
		return a.Subject
	case a.ID != "":
		return a.Kind + ":" + a.ID
	}
	return a.Kind
}

// auditTarget is what an audited action was about: the stream and the ids.
func auditTarget(e api.AuditEvent) string {
	t := e.Target
	var parts []string
	if t.Service != "" || t.Env != "" {
		parts = append(parts, t.Service+"/"+t.Env)
	}
	for _, id := range []string{t.GrantID, t.RequestID, t.ReviewID, t.SourceID} {
		if id != "" {
			parts = append(parts, id)
		}
	}
	return strings.Join(parts, " ")
}

// splitStream parses "service/env".
func splitStream(s string) (service, env string, ok bool) {
	service, env, ok = strings.Cut(s, "/")
	if !ok || service == "" || env == "" || strings.Contains(env, "/") {
		return "", "", false
	}
	return service, env, true
}
