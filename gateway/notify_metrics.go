package gateway

// NotificationAttempt counts one notification delivery attempt in
// loggate_notification_attempts_total by outcome (the notifier's word:
// "delivered", "retrying", "abandoned"). It is the notifier's OnAttempt
// hook; kind is accepted for that signature but not used as a label, to
// keep the series few.
func (s *Server) NotificationAttempt(kind, outcome string) {
	if outcome == "" {
		outcome = "unknown"
	}
	s.metrics.notifications.WithLabelValues(outcome).Inc()
}
