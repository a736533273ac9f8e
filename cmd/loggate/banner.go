package main

import (
	"fmt"
	"io"
	"sort"
)

// printBanner tells a newcomer everything needed to try loggate.
func printBanner(w io.Writer, c *serveConfig, r *running) {
	fmt.Fprintf(w, "\nloggate is running at %s\n", r.URL)
	if !c.Dev {
		fmt.Fprintf(w, "  sign in: %s/login\n\n", r.URL)
		return
	}
	u := r.URL
	fmt.Fprintf(w, `
Development mode: built-in identity provider at %[1]s/dev/oidc (client id "loggate").
Demo users (password = user name):
  alice  engineers                         asks for access
  bob    engineers, sre-leads, oncall      approves prod, may break glass
  carol  security, loggate-admins          reads the audit trail

Open %[1]s in a browser and sign in, or use the API:

  # a token (password grant; development only)
  TOKEN=$(curl -s %[1]s/dev/oidc/token -d grant_type=password -d client_id=loggate \
      -d username=alice -d password=alice -d scope='openid profile email groups' | jq -r .id_token)
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/api/v1/me
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/api/v1/streams
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/api/v1/requests \
      -d '{"service":"checkout","env":"staging","duration":"15m","reason":"INC-1234 checkout errors"}'
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/api/v1/grants
  LOGGATE_TOKEN=$TOKEN go run ./cmd/loggate tail GRANT_ID --server %[1]s   # WebSocket: %[2]s/api/v1/grants/GRANT_ID/tail
  # as bob:   curl -s -X POST -H "Authorization: Bearer $BOB" %[1]s/api/v1/requests/REQ_ID/approve -d '{"comment":"ok"}'
  # as carol: curl -s -H "Authorization: Bearer $CAROL" '%[1]s/api/v1/audit?limit=20'

Demo log sources (checkout/staging and checkout/prod), tokens for POST /api/v1/ingest:
`, u, wsURL(u))
	streams := make([]string, 0, len(r.SourceTokens))
	for s := range r.SourceTokens {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	for _, s := range streams {
		fmt.Fprintf(w, "  %-18s %s\n", s, r.SourceTokens[s])
	}
	if len(streams) > 0 {
		fmt.Fprintf(w, `
  curl -s -H "Authorization: Bearer %[2]s" '%[1]s/api/v1/ingest?service=checkout&env=%[3]s' \
      --data-binary '{"message":"hello from curl","level":"warn"}'

`, u, r.SourceTokens[streams[0]], streamEnv(streams[0]))
	}
}

func wsURL(u string) string {
	if len(u) > 5 && u[:5] == "https" {
		return "wss" + u[5:]
	}
	return "ws" + u[4:]
}

func streamEnv(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return s[i+1:]
		}
	}
	return s
}
