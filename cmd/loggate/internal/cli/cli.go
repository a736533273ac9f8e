package cli

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

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// Env is what a client command touches of the outside world, so the binary
// passes the real things and tests replace any of them. Zero fields take the
// real thing.
type Env struct {
	Getenv         func(string) string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Version is sent in the User-Agent; empty means "dev".
	Version string
	// OpenBrowser opens a URL for the loopback login; nil opens the system
	// browser. Tests play the browser.
	OpenBrowser func(ctx context.Context, url string) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PollEvery is how often `request --wait` polls; zero means 2s.
	PollEvery time.Duration
	// HTTPClient is used for every API call; nil means a 30s-timeout client.
	HTTPClient *http.Client
	// Interactive reports whether stdin is a terminal (for questions); nil
	// means: check the real stdin.
	Interactive func() bool
}

// Run runs one of the engineer's client commands (login, request, tail, ...);
// args start with the command's name. The error carries the exit code
// (package exitcode).
func Run(ctx context.Context, env Env, args []string) error {
	return fromEnv(env).run(ctx, args)
}

// LoadConfig reads the config file `loggate login` writes (a missing file is
// an empty Config); SaveConfig writes it, mode 0600.
func LoadConfig(env Env) (Config, error) { return fromEnv(env).loadConfig() }

// SaveConfig: see LoadConfig.
func SaveConfig(env Env, cfg Config) error { return fromEnv(env).saveConfig(cfg) }

func fromEnv(env Env) *cli {
	c := &cli{getenv: env.Getenv, stdin: env.Stdin, stdout: env.Stdout, stderr: env.Stderr, version: env.Version,
		openBrowser: env.OpenBrowser, now: env.Now, pollEvery: env.PollEvery, httpClient: env.HTTPClient,
		interactive: env.Interactive}
	if c.openBrowser == nil {
		c.openBrowser = openSystemBrowser
	}
	if c.version == "" {
		c.version = "dev"
	}
	return c
}

// cli is one invocation of a client command: Env, unpacked.
type cli struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
	version        string
	openBrowser    func(ctx context.Context, url string) error
	now            func() time.Time
	pollEvery      time.Duration
	httpClient     *http.Client
	interactive    func() bool
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
	// outputs are --output's formats, the first the default; the value is
	// checked before run. Nil: the command declares its own --output, if any.
	outputs []string
}

// declare declares cmd's flags on fs.
func (cmd *command) declare(fs *flag.FlagSet) {
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	if n := len(cmd.outputs); n > 0 {
		usage := cmd.outputs[0]
		if n > 1 {
			usage = strings.Join(cmd.outputs[:n-1], ", ") + " or " + cmd.outputs[n-1]
		}
		fs.String("output", cmd.outputs[0], usage)
	}
}

// commands is the client command table, keyed by name ("audit search" for
// nested commands).
func commands() map[string]*command {
	list := []*command{
		loginCommand(), logoutCommand(), whoamiCommand(),
		streamsCommand(), requestCommand(), waitCommand(), requestsCommand(), approveCommand(), denyCommand(),
		cancelCommand(), grantsCommand(), revokeCommand(), extendCommand(), tailCommand(),
		auditSearchCommand(), auditTimelineCommand(), auditReplayCommand(),
		sourceCreateCommand(), sourceListCommand(), sourceRevokeCommand(),
		alertsCommand(), alertsShowCommand(), alertsRulesCommand(),
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
  audit search, audit timeline, source create|list|revoke,
  alerts, alerts show, alerts rules
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
		return &exitcode.Error{Code: exitcode.Usage}
	}
	cmds := commands()
	name, rest := args[0], args[1:]
	if isGroup(name) {
		if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help" {
			fmt.Fprint(c.stdout, groupHelp(cmds, name))
			if len(rest) == 0 {
				return &exitcode.Error{Code: exitcode.Usage}
			}
			return nil
		}
		name, rest = name+" "+rest[0], rest[1:]
	} else if len(rest) > 0 && cmds[name+" "+rest[0]] != nil { // "alerts" lists; "alerts show" is its subcommand
		name, rest = name+" "+rest[0], rest[1:]
	}
	cmd := cmds[name]
	if cmd == nil {
		return exitcode.Usagef("unknown command %q (run 'loggate help')", name)
	}
	fs := flag.NewFlagSet("loggate "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.declare(fs)
	positional, err := parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(c.stdout, commandHelp(cmd, fs))
		return nil
	}
	if err != nil {
		return exitcode.Usagef("%s: %v (run 'loggate %s --help')", cmd.name, err, cmd.name)
	}
	if len(cmd.outputs) > 0 {
		if err := checkOutput(flagString(fs, "output"), cmd.outputs...); err != nil {
			return err
		}
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
