package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/loggate/loggate/cmd/loggate/internal/cli"
	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default so a second one kills.
	go func() { <-ctx.Done(); stop() }()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	code, print := exitcode.Of(err)
	if print {
		fmt.Fprintln(os.Stderr, "loggate:", err)
	}
	os.Exit(code)
}

const topUsage = `loggate — access-controlled debug log gateway

Server:
  loggate serve [--dev] [flags]        run the gateway (serve --help for flags)
  loggate policy test [DIR]            run the Rego unit tests of a policy directory
  loggate policy eval --input FILE     show the decision for an input document
  loggate audit verify --data DIR      verify the audit trail offline
  loggate audit witness --server URL --state FILE   check the trail only grew since the last run
  loggate keys generate | add | rotate-backlog   log backlog encryption keys
  loggate doctor [serve flags]         check a configuration: exit 0 ok, 1 failure, 2 warnings

Client:
  loggate login --server URL           sign in (device code or browser)
  loggate streams | whoami | logout
  loggate request SVC/ENV --for 30m --reason "..." [--break-glass] [--wait]
  loggate tail GRANT|SVC/ENV [--level L] [--grep RE] [--output json]
  loggate requests | approve | deny | cancel | wait | grants | revoke | extend
  loggate audit search | timeline      (security)
  loggate source create | list | revoke (loggate-admins)
  loggate ship --token-file F --service S --env E [FILE|-]
  loggate completion bash|zsh|fish
  loggate version

Run 'loggate COMMAND --help' for a command's flags and examples.
Exit codes: 0 ok, 1 error, 2 usage, 3 denied, 4 expired/revoked, 130 interrupted.
`

// run is the whole binary, testable: it never calls os.Exit.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return &exitcode.Error{Code: exitcode.Usage}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout, stderr, nil)
	case "policy":
		return runPolicy(ctx, rest, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, getenv, stdout, stderr)
	case "doctor":
		return runDoctor(ctx, rest, getenv, stdout, stderr)
	case "audit":
		if len(rest) > 0 && rest[0] == "verify" {
			return runAuditVerify(ctx, rest[1:], getenv, stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "witness" {
			return runAuditWitness(ctx, rest[1:], getenv, stdout, stderr)
		}
		return cli.Run(ctx, cli.Env{Getenv: getenv, Stdin: stdin, Stdout: stdout, Stderr: stderr, Version: version}, args)
	case "version", "--version":
		fmt.Fprintln(stdout, "loggate", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, topUsage)
		return nil
	default:
		return cli.Run(ctx, cli.Env{Getenv: getenv, Stdin: stdin, Stdout: stdout, Stderr: stderr, Version: version}, args)
	}
}
