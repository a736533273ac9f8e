package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/cluster"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/logs/seal"
)

const keysUsage = `Usage:
  loggate keys generate [--out FILE]      print a new backlog key file (or create FILE, mode 0600)
  loggate keys add FILE                   add a new newest key to FILE; the old keys stay to open old entries
  loggate keys rotate-backlog --data DIR --encryption-key-file FILE [--redis URL]
                                          re-seal the log backlog with the newest key

Rotation without downtime: 'keys add' the key file, restart the replicas
(new entries use the new key, old ones still open), 'keys rotate-backlog',
then delete the old key's line. On Redis, entries cannot be re-sealed in
place: rotate-backlog shows how many each key still seals; they age out
with --log-retention.
`

func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return &exitcode.Error{Code: exitcode.Usage}
	}
	switch args[0] {
	case "generate":
		return runKeysGenerate(args[1:], stdout, stderr)
	case "add":
		return runKeysAdd(args[1:], stderr)
	case "rotate-backlog":
		return runKeysRotate(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	return exitcode.Usagef("keys: unknown command %q (generate, add, rotate-backlog)", args[0])
}

func runKeysGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "create this file (mode 0600; an existing file is not overwritten)")
	if err := parseOpFlags(fs, args); err != nil {
		return err
	}
	text := seal.Generate()
	if *out != "" {
		if err := writeNewSecretFile(*out, text); err != nil {
			return fmt.Errorf("keys generate: %w", err)
		}
		return nil
	}
	// `keys generate > FILE`: the shell created FILE with its umask; a key
	// file is a secret, so tighten it to 0600 before writing the key.
	if f, ok := stdout.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if err := f.Chmod(0o600); err != nil {
				return fmt.Errorf("keys generate: make the output file private: %w", err)
			}
		}
	}
	_, err := stdout.Write(text)
	return err
}

func runKeysAdd(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := parseOpFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return exitcode.Usagef("keys add takes the key file, got %q", fs.Args())
	}
	path := fs.Arg(0)
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("keys add: %w", err)
	}
	text, id, err := seal.Prepend(old)
	if err != nil {
		return fmt.Errorf("keys add: %s: %w", path, err)
	}
	if err := replaceSecretFile(path, text); err != nil {
		return fmt.Errorf("keys add: %w", err)
	}
	fmt.Fprintf(stderr, "added key %s as the newest of %s; restart the replicas, then `loggate keys rotate-backlog`\n", id, path)
	return nil
}

func runKeysRotate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	privateUmask() // the re-sealed logs.db and its journal stay private, as serve makes them
	fs := flag.NewFlagSet("keys rotate-backlog", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./loggate-data", "data directory of the gateway (its logs.db)")
	keyFile := fs.String("encryption-key-file", getenv("LOGGATE_ENCRYPTION_KEY_FILE"), "backlog key file (or LOGGATE_ENCRYPTION_KEY)")
	redisURL := fs.String("redis", getenv("LOGGATE_REDIS"), "Redis URL: report the shared feed's key use instead")
	if err := parseOpFlags(fs, args); err != nil {
		return err
	}
	ring, err := loadBacklogKeys(*keyFile, getenv("LOGGATE_ENCRYPTION_KEY"))
	if err != nil {
		return err
	}
	if ring == nil {
		return exitcode.Usagef("keys rotate-backlog needs --encryption-key-file (or LOGGATE_ENCRYPTION_KEY)")
	}
	if *redisURL != "" {
		return rotateFeed(ctx, *redisURL, ring, stdout)
	}
	path := filepath.Join(*data, "logs.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("keys rotate-backlog: %w", err)
	}
	b, err := logs.OpenSQLiteBacklog(ctx, path, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.UseKeys(ctx, ring); err != nil {
		return backlogKeyError(err)
	}
	rep, err := b.Reseal(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d entries re-sealed with key %s, %d already were", path, rep.Resealed, ring.NewestID(), rep.Current)
	if rep.Withheld > 0 {
		fmt.Fprintf(stdout, ", %d do not open (left as they are)", rep.Withheld)
	}
	fmt.Fprintln(stdout)
	if rep.Withheld > 0 {
		return errors.New("keys rotate-backlog: some entries do not open; see the log above")
	}
	return nil
}

func rotateFeed(ctx context.Context, redisURL string, ring *seal.Ring, stdout io.Writer) error {
	client, err := cluster.Dial(redisURL)
	if err != nil {
		return exitcode.Usagef("--redis: %v", err)
	}
	defer client.Close()
	f, err := cluster.NewFeed(cluster.FeedConfig{Client: client, Prefix: redisPrefix, Keys: ring})
	if err != nil {
		return err
	}
	use, err := f.KeyUse(ctx)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(use))
	for id := range use {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fmt.Fprintln(stdout, "Redis stream entries cannot be re-sealed in place; they age out with --log-retention.")
	for _, id := range ids {
		switch {
		case id == "":
			fmt.Fprintf(stdout, "in clear: %d entries\n", use[id])
		case id == ring.NewestID():
			fmt.Fprintf(stdout, "key %s (newest): %d entries\n", id, use[id])
		case ring.Has(id):
			fmt.Fprintf(stdout, "key %s: %d entries (keep it in the file until they are gone)\n", id, use[id])
		default:
			fmt.Fprintf(stdout, "key %s: %d entries, NOT in the key file (they cannot be read)\n", id, use[id])
		}
	}
	return nil
}

// parseFlags parses a subcommand's flags, mapping -h and errors to exit codes.
func parseOpFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitcode.Error{Code: exitcode.OK}
		}
		return &exitcode.Error{Code: exitcode.Usage, Err: err}
	}
	return nil
}

// writeNewSecretFile creates path with mode 0600 and writes b, refusing to
// replace an existing file; nothing is left behind on failure.
func writeNewSecretFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// replaceSecretFile atomically replaces path with b (mode 0600).
func replaceSecretFile(path string, b []byte) error {
	tmp := path + ".new"
	os.Remove(tmp)
	if err := writeNewSecretFile(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
