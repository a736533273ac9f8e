package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
)

// streamList collects repeated --stream service/env.
type streamList []map[string]string

func (s *streamList) String() string { return "" }
func (s *streamList) Set(v string) error {
	for _, one := range strings.Split(v, ",") {
		service, env, ok := splitStream(strings.TrimSpace(one))
		if !ok {
			return fmt.Errorf("%q is not SERVICE/ENV (use * for any)", one)
		}
		*s = append(*s, map[string]string{"service": service, "env": env})
	}
	return nil
}

func sourceCreateCommand() *command {
	return &command{
		name:    "source create",
		summary: "create an ingest source and its token (loggate-admins)",
		usage:   "loggate source create --name NAME --stream SERVICE/ENV [--stream ...] [--token-out FILE]",
		help: `Creates an ingest source allowed to write the given streams and prints its
token once; the server keeps only a hash. With --token-out the token is written
to FILE (mode 0600) instead of the terminal. Give it to the shipper with
` + "`loggate ship --token-file FILE`" + ` or LOGGATE_SOURCE_TOKEN.`,
		example: `  loggate source create --name checkout-prod --stream checkout/prod --token-out checkout.token
  loggate source create --name all-staging --stream '*/staging'`,
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.String("name", "", "a name for the source (required)")
			fs.Var(&streamList{}, "stream", "`SERVICE/ENV` the source may write (repeatable, * for any)")
			fs.String("token-out", "", "write the token to this file (mode 0600) instead of printing it")
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			name := strings.TrimSpace(flagString(fs, "name"))
			streams := *fs.Lookup("stream").Value.(*streamList)
			if name == "" || len(streams) == 0 || len(args) > 0 {
				return exitcode.Usagef("source create needs --name and at least one --stream SERVICE/ENV")
			}
			src, err := sessionDo[api.Source](ctx, c, fs, http.MethodPost, "/api/v1/sources", map[string]any{"name": name, "streams": streams})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Created source %s (%s) for %s.\n", src.ID, src.Name, sourceStreams(src))
			if out := flagString(fs, "token-out"); out != "" {
				if err := os.WriteFile(out, []byte(src.Token+"\n"), 0o600); err != nil {
					return fmt.Errorf("write token to %s: %w (the source exists; revoke it with `loggate source revoke %s`)", out, err, src.ID)
				}
				fmt.Fprintf(c.stdout, "Token written to %s; it is not shown again.\n", out)
				return nil
			}
			fmt.Fprintf(c.stdout, "Token (shown once; store it as a secret):\n%s\n", src.Token)
			return nil
		},
	}
}

func sourceStreams(src api.Source) string {
	var parts []string
	for _, st := range src.Streams {
		parts = append(parts, st.Service+"/"+st.Env)
	}
	return strings.Join(parts, ", ")
}

func sourceListCommand() *command {
	return &command{
		name:    "source list",
		summary: "list ingest sources (loggate-admins)",
		usage:   "loggate source list [--output text|json|csv]",
		help:    "Lists ingest sources with their streams; tokens are never shown again.",
		example: "  loggate source list",
		flags:   addServerFlags,
		outputs: []string{"text", "json", "csv"},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			format := flagString(fs, "output")
			return listing[api.Source]{path: "/api/v1/sources", table: sourcesTable}.show(ctx, c, fs, format)
		},
	}
}

func sourcesTable(srcs []api.Source, raws []json.RawMessage) *table {
	t := &table{header: []string{"ID", "NAME", "STREAMS", "STATE", "CREATED", "CREATED_BY"}}
	for i, s := range srcs {
		state := "active"
		if s.RevokedAt != nil {
			state = "revoked"
		}
		t.add(raws[i], s.ID, s.Name, sourceStreams(s), state, fmtTime(s.CreatedAt), orDash(s.CreatedBy))
	}
	return t
}

func sourceRevokeCommand() *command {
	return &command{
		name:    "source revoke",
		summary: "revoke an ingest source's token (loggate-admins)",
		usage:   "loggate source revoke SOURCE",
		help:    "Revokes a source: its token is refused from now on.",
		example: "  loggate source revoke src_01HXYZ",
		flags:   addServerFlags,
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("source revoke needs a source id: loggate source revoke SOURCE")
			}
			src, err := sessionDo[api.Source](ctx, c, fs, http.MethodPost, "/api/v1/sources/"+pathEscape(args[0])+"/revoke", map[string]string{})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Revoked source %s (%s); its token is refused from now on.\n", src.ID, src.Name)
			return nil
		},
	}
}
