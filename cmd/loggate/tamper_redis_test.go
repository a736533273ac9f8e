package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// The shared (Redis) trail tampered from outside: a real redis-server, the
// real binary serving with --redis, and the attacker writing to Redis.
// Redis keeps no search columns; its index (audit:ids), chain head and
// tree hashes play their part.
func TestTamperRedisTrailFromOutside(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	root := t.TempDir()
	keyFile := sharedAuditKeyFile(t)
	state := filepath.Join(root, "witness.json")
	c := startTrailChild(t, filepath.Join(root, "data"), "--redis", srv.URL(), "--session-key-file", sharedKeyFile(t),
		"--audit-signing-key-file", keyFile)
	c.activity(3)
	verify := func() (string, int) {
		return runLoggate(t, nil, "audit", "verify", "--redis", srv.URL(), "--audit-signing-key-file", keyFile)
	}
	witness := func() (string, int) {
		return runLoggate(t, nil, "audit", "witness", "--server", c.g.url, "--state", state)
	}
	if out, code := verify(); code != 0 {
		t.Fatalf("the untouched shared trail: exit %d\n%s", code, out)
	}
	if out, code := witness(); code != 0 {
		t.Fatalf("first witness run: exit %d\n%s", code, out)
	}
	keys := []string{redisPrefix + "audit", redisPrefix + "audit:head", redisPrefix + "audit:ids", redisPrefix + "audit:tree"}
	pristine := dumpKeys(t, rc, keys)

	stream := redisPrefix + "audit"
	rebuild := func(mutate func([]redis.XMessage) []redis.XMessage) {
		ms, err := rc.XRange(ctx, stream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		ms = mutate(ms)
		rc.Del(ctx, stream)
		for _, m := range ms {
			if err := rc.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: m.ID, Values: m.Values}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name   string
		tamper func()
	}{
		{"record changed", func() {
			rebuild(func(ms []redis.XMessage) []redis.XMessage {
				ms[4].Values["r"] = strings.Replace(ms[4].Values["r"].(string), `"action":"`, `"action":"x`, 1)
				return ms
			})
		}},
		{"row deleted", func() {
			rebuild(func(ms []redis.XMessage) []redis.XMessage { return append(ms[:4:4], ms[5:]...) })
		}},
		{"two rows swapped", func() {
			rebuild(func(ms []redis.XMessage) []redis.XMessage {
				ms[3].Values, ms[4].Values = ms[4].Values, ms[3].Values
				return ms
			})
		}},
		{"tail truncated", func() {
			rebuild(func(ms []redis.XMessage) []redis.XMessage { return ms[:len(ms)-2] })
		}},
		{"id index changed", func() { rc.HSet(ctx, redisPrefix+"audit:ids", firstID(t, rc), 2) }},
		{"tree hash changed", func() { rc.HSet(ctx, redisPrefix+"audit:tree", "3", strings.Repeat("x", 32)) }},
		{"chain head changed", func() { rc.HSet(ctx, redisPrefix+"audit:head", "hash", strings.Repeat("0", 64)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer restoreKeys(t, rc, pristine)
			tc.tamper()
			if out, code := verify(); code != 1 || !strings.Contains(out, "PROBLEM") {
				t.Errorf("verify --redis after %s: exit %d, want 1 and a problem\n%s", tc.name, code, out)
			}
		})
	}
	if out, code := verify(); code != 0 {
		t.Fatalf("the restored shared trail: exit %d\n%s", code, out)
	}

	// (f) An older copy of Redis' data put back (an old RDB or AOF): a
	// valid trail, verify passes, the witness reports the rollback.
	c.activity(3)
	if out, code := witness(); code != 0 {
		t.Fatalf("witness after growth: exit %d\n%s", code, out)
	}
	grown := dumpKeys(t, rc, keys)
	restoreKeys(t, rc, pristine)
	if out, code := verify(); code != 0 {
		t.Errorf("verify alone on the older copy: exit %d (it is a valid trail)\n%s", code, out)
	}
	if out, code := witness(); code != 1 || !strings.Contains(out, "rollback") {
		t.Errorf("witness on the older copy: exit %d, want 1 and rollback\n%s", code, out)
	}
	restoreKeys(t, rc, grown)

	// (g) History rewritten and re-signed with the replicas' key.
	a := trailWriter(t, rc, keyFile)
	var buf bytes.Buffer
	if err := a.Export(ctx, &buf, "ndjson", audit.Query{}); err != nil {
		t.Fatal(err)
	}
	rc.Del(ctx, keys...)
	dec := json.NewDecoder(&buf)
	for i := 0; dec.More(); i++ {
		var ev audit.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			ev.Actor.Email = "someone-else@example.com"
		}
		ev.ID, ev.Seq, ev.PrevHash, ev.Hash = "", 0, "", ""
		if _, err := a.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if out, code := verify(); code != 0 {
		t.Errorf("verify alone on the rewritten trail: exit %d (it is consistent)\n%s", code, out)
	}
	if out, code := witness(); code != 1 || !strings.Contains(out, "fork") {
		t.Errorf("witness on the rewritten trail: exit %d, want 1 and fork\n%s", code, out)
	}
	restoreKeys(t, rc, grown)
	if out, code := witness(); code != 0 {
		t.Errorf("witness on the untouched trail at the end: exit %d\n%s", code, out)
	}
	c.stop()
	_ = os.Remove(state)
}

func firstID(t *testing.T, rc *redis.Client) string {
	t.Helper()
	ids, err := rc.HKeys(context.Background(), redisPrefix+"audit:ids").Result()
	if err != nil || len(ids) == 0 {
		t.Fatalf("id index: %v, %d ids", err, len(ids))
	}
	return ids[0]
}

// dumpKeys snapshots keys as an old RDB would hold them.
func dumpKeys(t *testing.T, rc *redis.Client, keys []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range keys {
		v, err := rc.Dump(context.Background(), k).Result()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

func restoreKeys(t *testing.T, rc *redis.Client, snap map[string]string) {
	t.Helper()
	ctx := context.Background()
	for k, v := range snap {
		rc.Del(ctx, k)
		if v == "" {
			continue
		}
		if err := rc.Restore(ctx, k, 0, v).Err(); err != nil {
			t.Fatal(err)
		}
	}
}
