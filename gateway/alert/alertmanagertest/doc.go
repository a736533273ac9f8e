// Package alertmanagertest starts a real Prometheus Alertmanager (Debian's
// prometheus-alertmanager) for tests: on a free loopback port, gossip off,
// stopped when the test ends. Under CI=true a missing binary fails the
// test; elsewhere it skips loudly.
package alertmanagertest
