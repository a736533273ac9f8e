package sink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/loggate/loggate/gateway/audit"
)

// CheckpointType is the "type" member that tells a pushed checkpoint from
// an audit event in every sink format (events carry no "type").
const CheckpointType = "audit.checkpoint"

// CheckpointSink is a Sink that can also take the trail's signed
// checkpoints, so that the receiver keeps an independent copy of them: one
// that whoever rewrites the trail and re-signs it with the stored key does
// not hold. Webhook, Syslog and File implement it.
type CheckpointSink interface {
	Sink
	// DeliverCheckpoint hands over one signed checkpoint. Like Deliver it
	// may be retried, so a receiver may see the same checkpoint twice
	// (deduplicate on CheckpointID).
	DeliverCheckpoint(ctx context.Context, cp audit.Checkpoint) error
}

// checkpointMessage is the JSON a receiver gets for a checkpoint: the
// checkpoint as GET /api/v1/audit/checkpoint serves it, with "type".
type checkpointMessage struct {
	Type string `json:"type"`
	audit.Checkpoint
}

// CheckpointJSON is cp as one JSON object with "type":"audit.checkpoint"
// and the members of GET /api/v1/audit/checkpoint (the signed note among
// them), without a newline.
func CheckpointJSON(cp audit.Checkpoint) []byte {
	b, _ := json.Marshal(checkpointMessage{Type: CheckpointType, Checkpoint: cp}) // plain fields: cannot fail
	return b
}

// CheckpointID names a checkpoint for deduplication: its size and the
// start of the SHA-256 of its signed note ("cp-1234-0123456789abcdef").
func CheckpointID(cp audit.Checkpoint) string {
	h := sha256.Sum256([]byte(cp.Note))
	return "cp-" + strconv.FormatInt(cp.Size, 10) + "-" + hex.EncodeToString(h[:8])
}

var (
	_ CheckpointSink = (*Webhook)(nil)
	_ CheckpointSink = (*Syslog)(nil)
	_ CheckpointSink = (*File)(nil)
)

// ReadCheckpoints returns the checkpoints pushed into a file sink's NDJSON
// (the lines with "type":"audit.checkpoint"), in file order, skipping the
// event lines. Signatures are not checked here. A line that is not JSON is
// an error naming it, except a torn last line.
func ReadCheckpoints(r io.Reader) ([]audit.Checkpoint, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []audit.Checkpoint
	var bad error
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if bad != nil {
			return nil, bad
		}
		var m checkpointMessage
		if err := json.Unmarshal(line, &m); err != nil {
			bad = fmt.Errorf("%w: audit sink file line %d is not JSON", audit.ErrInvalid, n)
			continue
		}
		if m.Type == CheckpointType && m.Note != "" {
			out = append(out, m.Checkpoint)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit sink file: %w", err)
	}
	return out, nil
}
