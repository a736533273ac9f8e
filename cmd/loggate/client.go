package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

// runClient runs the engineer's client commands (login, request, tail, ...).
func runClient(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := &cli{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr, openBrowser: openSystemBrowser}
	return c.run(ctx, args)
}

// cli is one invocation of a client command with everything it touches
// from the outside world, so tests can replace any of it.
type cli struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	// openBrowser opens a URL for the loopback login. Tests play the browser.
	openBrowser func(ctx context.Context, url string) error
	// now is the clock; nil means time.Now.
	now func() time.Time
	// pollEvery is how often `request --wait` polls; zero means 2s.
	pollEvery time.Duration
	// httpClient is used for every API call; nil means a 30s-timeout client.
	httpClient *http.Client
	// interactive reports whether stdin is a terminal (for questions);
	// nil means: check the real stdin.
	interactive func() bool
}

func (c *cli) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// command is one client subcommand.
type command struct {
	name    string
	summary string
	usage   string // first line(s) of help: the synopsis
	help    string // what it does, flags are appended
	example string
	run     func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error
	flags   func(fs *flag.FlagSet) // declares the flags; may be nil
}

// commands is the client command table, keyed by name ("audit search" for
// nested commands).
func commands() map[string]*command {
	list := []*command{
		loginCommand(), logoutCommand(), whoamiCommand(),
		streamsCommand(), requestCommand(), waitCommand(), requestsCommand(), approveCommand(), denyCommand(),
		cancelCommand(), grantsCommand(), revokeCommand(), extendCommand(), tailCommand(),
		auditSearchCommand(), auditTimelineCommand(),
		sourceCreateCommand(), sourceListCommand(), sourceRevokeCommand(),
		shipCommand(), completionCommand(),
	}
	m := make(map[string]*command, len(list))
	for _, cmd := range list {
		m[cmd.name] = cmd
	}
	return m
}

const clientUsageHeader = `loggate — the engineer's client

Sign in:
  login, logout, whoami
Ask and look:
  streams, request, wait, requests, grants, tail, extend
Approve and end:
  approve, deny, cancel, revoke
Security and admins:
  audit search, audit timeline, source create|list|revoke
Sources:
  ship
Other:
  completion bash|zsh|fish, version

Run 'loggate COMMAND --help' for a command's flags and examples.
Exit codes: 0 ok, 1 error, 2 usage, 3 denied, 4 expired/revoked, 130 interrupted.
`

func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, clientUsageHeader)
		return &exitCodeError{code: exitUsage}
	}
	cmds := commands()
	name, rest := args[0], args[1:]
	if isGroup(name) {
		if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help" {
			fmt.Fprint(c.stdout, groupHelp(cmds, name))
			if len(rest) == 0 {
				return &exitCodeError{code: exitUsage}
			}
			return nil
		}
		name, rest = name+" "+rest[0], rest[1:]
	}
	cmd := cmds[name]
	if cmd == nil {
		return usageError("unknown command %q (run 'loggate help')", name)
	}
	fs := flag.NewFlagSet("loggate "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	positional, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(c.stdout, commandHelp(cmd, fs))
		return nil
	}
	if err != nil {
		return usageError("%s: %v (run 'loggate %s --help')", cmd.name, err, cmd.name)
	}
	return cmd.run(c, ctx, fs, positional)
}

// isGroup reports whether name only holds subcommands.
func isGroup(name string) bool { return name == "audit" || name == "source" }

func groupHelp(cmds map[string]*command, group string) string {
	var names []string
	for n := range cmds {
		if strings.HasPrefix(n, group+" ") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: loggate %s COMMAND\n\nCommands:\n", group)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-16s %s\n", strings.TrimPrefix(n, group+" "), cmds[n].summary)
	}
	if group == "audit" {
		fmt.Fprintf(&b, "  %-16s %s\n", "verify", "verify the audit trail offline (operators)")
		fmt.Fprintf(&b, "  %-16s %s\n", "witness", "check from outside that the trail only grew (cron, CI)")
	}
	fmt.Fprintf(&b, "\nRun 'loggate %s COMMAND --help' for flags and examples.\n", group)
	return b.String()
}

// commandHelp renders a command's --help: synopsis, description, flags, examples.
func commandHelp(cmd *command, fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n%s\n", cmd.usage, strings.TrimSpace(cmd.help))
	var flags []string
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line = fmt.Sprintf("%-28s %s", line, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		flags = append(flags, line)
	})
	if len(flags) > 0 {
		fmt.Fprintf(&b, "\nFlags:\n%s\n", strings.Join(flags, "\n"))
	}
	if cmd.example != "" {
		fmt.Fprintf(&b, "\nExamples:\n%s\n", strings.TrimRight(cmd.example, "\n"))
	}
	return b.String()
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("request checkout/prod --for 30m"). "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// flag stops at "--" or the first non-flag; tell them apart.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (c *cli) stdinInteractive() bool {
	if c.interactive != nil {
		return c.interactive()
	}
	return isTerminal(c.stdin)
}
