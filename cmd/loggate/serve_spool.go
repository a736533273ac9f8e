package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/audit"
)

// openSpool opens this replica's audit spool (--data/audit-spool: closing
// events the trail could not take, appended once it is back) and the
// directory of live views' saved counts (--data/views).
func openSpool(c *serveConfig, trail audit.Appender, log *slog.Logger) (*audit.Spool, *audit.ViewCountsDir, error) {
	if c.ViewCountsInterval < 0 {
		return nil, nil, exitcode.Usagef("--view-counts-interval must not be negative")
	}
	spool, err := audit.OpenSpool(audit.SpoolConfig{Dir: filepath.Join(c.Data, "audit-spool"), Trail: trail,
		Logger: log.With("component", "audit-spool")})
	if err != nil {
		return nil, nil, fmt.Errorf("audit spool: %w", err)
	}
	views, err := audit.OpenViewCountsDir(filepath.Join(c.Data, "views"))
	if err != nil {
		spool.Close()
		return nil, nil, err
	}
	return spool, views, nil
}
