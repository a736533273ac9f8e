// Package exitcode is the binary's exit-status contract (README "Exit
// codes"): the codes, and the error that carries one from a command, server
// or client, up to main's single os.Exit. It knows nothing of either side.
package exitcode
