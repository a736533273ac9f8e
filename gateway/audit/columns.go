package audit

import (
	"encoding/json"
	"fmt"
	"time"
)

// recordFields is what the search columns copy from a record. It decodes
// with encoding/json, exactly as DecodeRecord does, so the fields are the
// ones a reader of the decoded event sees.
type recordFields struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Action    string    `json:"action"`
	Outcome   string    `json:"outcome"`
	RequestID string    `json:"request_id"`
	Actor     struct {
		Subject string `json:"subject"`
		Email   string `json:"email"`
	} `json:"actor"`
	Target struct {
		RequestID string `json:"request_id"`
		GrantID   string `json:"grant_id"`
		Service   string `json:"service"`
		Env       string `json:"env"`
	} `json:"target"`
}

// ColumnsOf returns the search columns a store must keep for ev.
func ColumnsOf(ev *Event) Columns {
	return Columns{ID: ev.ID, TimeNS: ev.Time.UnixNano(), Action: ev.Action, Outcome: ev.Outcome,
		ActorSubject: ev.Actor.Subject, ActorEmail: ev.Actor.Email, RequestID: ev.RequestID,
		TargetRequestID: ev.Target.RequestID, GrantID: ev.Target.GrantID, Service: ev.Target.Service, Env: ev.Target.Env}
}

// recordColumns decodes the columns a record implies.
func recordColumns(rec []byte) (Columns, error) {
	var f recordFields
	if err := json.Unmarshal(rec, &f); err != nil {
		return Columns{}, fmt.Errorf("decode record: %w", err)
	}
	return Columns{ID: f.ID, TimeNS: f.Time.UnixNano(), Action: f.Action, Outcome: f.Outcome,
		ActorSubject: f.Actor.Subject, ActorEmail: f.Actor.Email, RequestID: f.RequestID,
		TargetRequestID: f.Target.RequestID, GrantID: f.Target.GrantID, Service: f.Target.Service, Env: f.Target.Env}, nil
}

// columnDiff is one stored column that disagrees with its record.
type columnDiff struct {
	name        string
	stored, rec string
}

// diffColumns lists the columns of stored that differ from want, by the
// names the SQLite schema gives them.
func diffColumns(stored, want *Columns) []columnDiff {
	var out []columnDiff
	str := func(name, s, w string) {
		if s != w {
			out = append(out, columnDiff{name, s, w})
		}
	}
	str("id", stored.ID, want.ID)
	if stored.TimeNS != want.TimeNS {
		out = append(out, columnDiff{"time_ns", fmt.Sprint(stored.TimeNS), fmt.Sprint(want.TimeNS)})
	}
	str("action", stored.Action, want.Action)
	str("outcome", stored.Outcome, want.Outcome)
	str("actor_subject", stored.ActorSubject, want.ActorSubject)
	str("actor_email", stored.ActorEmail, want.ActorEmail)
	str("request_id", stored.RequestID, want.RequestID)
	str("target_request_id", stored.TargetRequestID, want.TargetRequestID)
	str("grant_id", stored.GrantID, want.GrantID)
	str("service", stored.Service, want.Service)
	str("env", stored.Env, want.Env)
	return out
}

// purgedColumnDiffs lists the columns retention must have emptied along
// with the record but did not (seq, id, time, action and outcome stay).
func purgedColumnDiffs(stored *Columns) []columnDiff {
	var out []columnDiff
	for _, c := range []struct{ name, v string }{
		{"actor_subject", stored.ActorSubject}, {"actor_email", stored.ActorEmail}, {"request_id", stored.RequestID},
		{"target_request_id", stored.TargetRequestID}, {"grant_id", stored.GrantID}, {"service", stored.Service},
		{"env", stored.Env},
	} {
		if c.v != "" {
			out = append(out, columnDiff{c.name, c.v, ""})
		}
	}
	return out
}

// recordColumnsFast is recordColumns with the fast path for canonical
// records; strings equal to like's are shared with it (like may be nil).
func recordColumnsFast(rec []byte, like *Columns) (Columns, error) {
	if c, ok := fastColumnsLike(rec, like); ok {
		return c, nil
	}
	return recordColumns(rec)
}
