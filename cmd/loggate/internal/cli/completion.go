package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

func completionCommand() *command {
	return &command{
		name:    "completion",
		summary: "print a shell completion script",
		usage:   "loggate completion bash|zsh|fish",
		help:    "Prints a completion script for commands, flags and common flag values.",
		example: `  source <(loggate completion bash)
  loggate completion zsh > "${fpath[1]}/_loggate"
  loggate completion fish > ~/.config/fish/completions/loggate.fish`,
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("completion needs a shell: bash, zsh or fish")
			}
			spec := completionSpec()
			switch args[0] {
			case "bash":
				writeBashCompletion(c.stdout, spec, false)
			case "zsh":
				writeBashCompletion(c.stdout, spec, true)
			case "fish":
				writeFishCompletion(c.stdout, spec)
			default:
				return exitcode.Usagef("completion supports bash, zsh and fish, not %q", args[0])
			}
			return nil
		},
	}
}

// compCommand is what completion knows about one command.
type compCommand struct {
	name    string // "tail" or "audit search"
	summary string
	flags   []string
}

// completionSpec lists every command (client and server) with its flags.
func completionSpec() []compCommand {
	var out []compCommand
	for _, cmd := range commands() {
		fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
		cmd.declare(fs)
		cc := compCommand{name: cmd.name, summary: cmd.summary}
		fs.VisitAll(func(f *flag.Flag) { cc.flags = append(cc.flags, "--"+f.Name) })
		out = append(out, cc)
	}
	out = append(out,
		compCommand{name: "serve", summary: "run the gateway"},
		compCommand{name: "policy", summary: "test or evaluate policies"},
		compCommand{name: "audit verify", summary: "verify the audit trail offline", flags: []string{"--data"}},
		compCommand{name: "audit witness", summary: "check from outside that the audit trail only grew",
			flags: []string{"--server", "--state", "--token-file", "--max-age", "--timeout"}},
		compCommand{name: "version", summary: "print the version"},
		compCommand{name: "help", summary: "show help"})
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// flagValueLists are the fixed values some flags take.
func flagValueLists() map[string]string {
	return map[string]string{
		"--level":   "trace debug info warn error fatal",
		"--output":  "text json csv table",
		"--color":   "auto always never",
		"--flow":    "auto device browser",
		"--outcome": "success denied error",
		"--state":   "pending approved denied cancelled lapsed",
	}
}

func topWords(spec []compCommand) (top []string, subs map[string][]string) {
	subs = map[string][]string{}
	seen := map[string]bool{}
	for _, c := range spec {
		first, sub, nested := strings.Cut(c.name, " ")
		if nested {
			subs[first] = append(subs[first], sub)
		}
		if !seen[first] {
			seen[first] = true
			top = append(top, first)
		}
	}
	return top, subs
}

func writeBashCompletion(w io.Writer, spec []compCommand, zsh bool) {
	top, subs := topWords(spec)
	if zsh {
		fmt.Fprint(w, "#compdef loggate\n# zsh completion for loggate (uses bash completion compatibility)\nautoload -U +X bashcompinit && bashcompinit\n")
	} else {
		fmt.Fprint(w, "# bash completion for loggate\n")
	}
	fmt.Fprintf(w, `_loggate() {
  local cur prev cmd flags
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W %q -- "$cur") )
    return
  fi
  cmd="${COMP_WORDS[1]}"
  case "$cmd" in
`, strings.Join(top, " "))
	groups := make([]string, 0, len(subs))
	for g := range subs {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		fmt.Fprintf(w, "    %s)\n      if [ \"$COMP_CWORD\" -eq 2 ]; then COMPREPLY=( $(compgen -W %q -- \"$cur\") ); return; fi\n      cmd=\"%s ${COMP_WORDS[2]}\";;\n",
			g, strings.Join(subs[g], " "), g)
	}
	fmt.Fprint(w, "    completion) COMPREPLY=( $(compgen -W \"bash zsh fish\" -- \"$cur\") ); return;;\n  esac\n  case \"$prev\" in\n")
	values := flagValueLists()
	names := make([]string, 0, len(values))
	for f := range values {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		fmt.Fprintf(w, "    %s) COMPREPLY=( $(compgen -W %q -- \"$cur\") ); return;;\n", f, values[f])
	}
	fmt.Fprint(w, "  esac\n  case \"$cmd\" in\n")
	for _, c := range spec {
		if len(c.flags) > 0 {
			fmt.Fprintf(w, "    %q) flags=%q;;\n", c.name, strings.Join(c.flags, " "))
		}
	}
	fmt.Fprint(w, `  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "$flags --help" -- "$cur") )
    return
  fi
  COMPREPLY=( $(compgen -f -- "$cur") )
}
complete -F _loggate loggate
`)
}

func writeFishCompletion(w io.Writer, spec []compCommand) {
	fmt.Fprint(w, "# fish completion for loggate\ncomplete -c loggate -f\n")
	top, subs := topWords(spec)
	values := flagValueLists()
	summaries := map[string]string{}
	for _, c := range spec {
		summaries[c.name] = c.summary
	}
	for _, t := range top {
		desc := summaries[t]
		if desc == "" && len(subs[t]) > 0 {
			desc = strings.Join(subs[t], ", ")
		}
		fmt.Fprintf(w, "complete -c loggate -n __fish_use_subcommand -a %s -d %s\n", t, fishQuote(desc))
	}
	for _, c := range spec {
		first, sub, nested := strings.Cut(c.name, " ")
		cond := "__fish_seen_subcommand_from " + first
		if nested {
			fmt.Fprintf(w, "complete -c loggate -n '%s; and not __fish_seen_subcommand_from %s' -a %s -d %s\n",
				cond, strings.Join(subs[first], " "), sub, fishQuote(c.summary))
			cond += "; and __fish_seen_subcommand_from " + sub
		}
		for _, f := range c.flags {
			line := fmt.Sprintf("complete -c loggate -n '%s' -l %s", cond, strings.TrimPrefix(f, "--"))
			if vals, ok := values[f]; ok {
				line += " -x -a " + fishQuote(vals)
			}
			fmt.Fprintln(w, line)
		}
	}
	fmt.Fprint(w, "complete -c loggate -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n")
}

func fishQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }
