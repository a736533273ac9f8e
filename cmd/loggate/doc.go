// Command loggate is the access-controlled debug log gateway and its client.
//
// This package is the only place that reads flags, the environment and the
// configuration file, wires the packages together, and calls os.Exit.
// `loggate serve` runs the gateway; the other subcommands are tools for
// operators (policy test, audit verify) and the engineer's client.
package main
