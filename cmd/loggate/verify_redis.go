package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/cluster"
)

// runAuditVerifyRedis is `loggate audit verify --redis URL`: it checks the
// audit chain the replicas share (gapless seqs, prev_hash links, hashes,
// the chain head, the Merkle tree root against the latest signed
// checkpoint, whose signature is checked with keyFile, the replicas'
// --audit-signing-key-file, when given) and prints the report like the
// file-based check.
func runAuditVerifyRedis(ctx context.Context, url, keyFile string, asJSON bool, stdout io.Writer) error {
	var key ed25519.PrivateKey
	if keyFile != "" {
		var err error
		if key, err = cluster.LoadSigningKey(keyFile); err != nil {
			return err
		}
	}
	rep, err := cluster.VerifyURL(ctx, url, redisPrefix, key)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		fmt.Fprintf(stdout, "events: %d (last seq %d), chain head: %d\n", rep.Events, rep.LastSeq, rep.Head)
		fmt.Fprintf(stdout, "last hash: %s\n", rep.Root)
		if rep.Spooled > 0 {
			fmt.Fprintf(stdout, "appended late from a replica's spool: %d (their details.spooled_at says when they were spooled)\n", rep.Spooled)
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "PROBLEM %-10s seq %d: %s\n", p.Kind, p.Seq, p.Detail)
		}
		if rep.MoreProblems > 0 {
			fmt.Fprintf(stdout, "... and %d more problems\n", rep.MoreProblems)
		}
	}
	if err == nil && !rep.OK() {
		err = fmt.Errorf("%d problems", len(rep.Problems)+rep.MoreProblems)
	}
	if err != nil {
		if !asJSON {
			fmt.Fprintln(stdout, "FAILED:", err)
		}
		return &exitcode.Error{Code: exitcode.Failure}
	}
	if !asJSON {
		if key == nil {
			fmt.Fprintln(stdout, "checkpoint signature not checked (pass --audit-signing-key-file)")
		}
		fmt.Fprintln(stdout, "OK: shared audit trail intact")
	}
	return nil
}
