package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// sinkSeqs returns the seqs in an audit sink file, in file order.
func sinkSeqs(t *testing.T, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v struct {
			Seq int64 `json:"seq"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, v.Seq)
	}
	return out
}

func TestReplicasRunAuditSinksOneAtATime(t *testing.T) {
	url, _ := redistest.FromEnvOrStart(t)
	keys, auditKey := sharedKeyFile(t), sharedAuditKeyFile(t)
	dir := t.TempDir()
	files := []string{filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "b.ndjson")}
	common := []string{"--redis", url, "--dev-source-token", replicaSourceToken, "--session-key-file", keys,
		"--audit-signing-key-file", auditKey}
	a := startGateway(t, append(common, "--audit-sink-file", files[0])...)
	b := startGateway(t, append(common, "--audit-sink-file", files[1], "--issuer", a.url+"/dev/oidc")...)
	replicas := []*gatewayT{a, b}

	// A third writer on the shared trail, so events keep coming whichever
	// replica is stopped.
	rc := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(url, "redis://")})
	defer rc.Close()
	w := trailWriter(t, rc, auditKey)
	appendEvents := func(from, n int) int64 {
		var last int64
		for i := range n {
			ev, err := w.Append(t.Context(), audit.Event{Action: "test.event", Outcome: audit.OutcomeSuccess,
				Actor: audit.Actor{Kind: audit.ActorSystem, Subject: "test"}, Reason: fmt.Sprint(from + i)})
			if err != nil {
				t.Fatal(err)
			}
			last = ev.Seq
		}
		return last
	}
	// waitAll waits until seqs 1..head are in the files, and returns how
	// often each was delivered and by how many events each file grew.
	waitAll := func(head int64) (map[int64]int, []int) {
		t.Helper()
		var got map[int64]int
		var per []int
		var missing int64
		if !within(30*time.Second, 20*time.Millisecond, func() bool {
			got, per = map[int64]int{}, make([]int, len(files))
			for i, f := range files {
				for _, s := range sinkSeqs(t, f) {
					got[s]++
					per[i]++
				}
			}
			missing = 0
			for s := int64(1); s <= head; s++ {
				if got[s] == 0 {
					missing++
				}
			}
			return missing == 0
		}) {
			t.Fatalf("%d of %d audit events never reached a sink file", missing, head)
		}
		return got, per
	}

	got, per := waitAll(appendEvents(0, 10))
	for s, n := range got {
		if n != 1 {
			t.Errorf("seq %d delivered %d times, want once", s, n)
		}
	}
	leader := 0
	if per[0] == 0 {
		leader = 1
	}
	if per[1-leader] != 0 {
		t.Fatalf("both replicas delivered while both were live: %v events", per)
	}

	// The leader stops (releasing the lease); the other resumes from the
	// shared cursor.
	replicas[leader].stop()
	got, per = waitAll(appendEvents(10, 10))
	for s, n := range got {
		if n != 1 {
			t.Errorf("seq %d delivered %d times after the hand-over, want once", s, n)
		}
	}
	if per[1-leader] == 0 {
		t.Errorf("replica %d delivered nothing after replica %d stopped", 1-leader, leader)
	}
}
