package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/loggate/loggate/gateway/cluster"
)

// runAuditVerifyRedis is `loggate audit verify --redis URL`: it checks the
// audit chain the replicas share (gapless seqs, prev_hash links, hashes,
// the chain head) and prints the report like the file-based check.
func runAuditVerifyRedis(ctx context.Context, url string, asJSON bool, stdout io.Writer) error {
	rep, err := cluster.VerifyURL(ctx, url, redisPrefix)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		fmt.Fprintf(stdout, "events: %d (last seq %d), chain head: %d\n", rep.Events, rep.LastSeq, rep.Head)
		fmt.Fprintf(stdout, "last hash: %s\n", rep.Root)
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
		return &exitCodeError{code: exitError}
	}
	if !asJSON {
		fmt.Fprintln(stdout, "OK: shared audit trail intact")
	}
	return nil
}
