package gateway

import (
	"math"
	"net/http"
	"strconv"

	"github.com/loggate/loggate/gateway/api"
)

// Defaults of the per-client limit on the unauthenticated audit endpoints
// (checkpoint, keys, consistency): a witness run makes two or three calls,
// so 2 a second with a burst of 20 never slows one, while a flood from one
// address (or one IPv6 /64) costs the trail at most 2 proofs a second. Each
// proof is bounded work already (about 2·log2(size) indexed reads).
const (
	defaultPublicRate  = 2.0
	defaultPublicBurst = 20.0
)

// publicLimited answers 429 with Retry-After (whole seconds, at least 1)
// and a JSON error once the client's bucket is empty. Clients are keyed as
// refusals are aggregated (burstAddr): an IPv4 address or an IPv6 /64.
func (s *Server) publicLimited(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := s.publicLimiter.take(burstAddr(clientAddrFrom(r.Context())))
		if !ok {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(max(wait.Seconds(), 1))), 10))
			writeJSON(w, http.StatusTooManyRequests, api.Error{Code: api.CodeRateLimited,
				Message: "too many requests to the public audit endpoints from this address"})
			return
		}
		h.ServeHTTP(w, r)
	})
}
