package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"

	"github.com/loggate/loggate/gateway/api"
)

// listing is what a list command shows: pages of path, decoded as T, as a
// table in the --output format.
type listing[T any] struct {
	path  string
	query url.Values // nil: none
	limit int        // items at most; 0: every page
	empty string     // said on stderr instead of an empty text table; "": the empty table
	table func(items []T, raws []json.RawMessage) *table
}

// show fetches the listing as the signed-in user and writes it to stdout.
func (l listing[T]) show(ctx context.Context, c *cli, fs *flag.FlagSet, format string) error {
	a, err := c.session(ctx, fs)
	if err != nil {
		return err
	}
	items, raws, err := listAs[T](ctx, a, l.path, l.query, l.limit)
	if err != nil {
		return err
	}
	if len(items) == 0 && l.empty != "" && (format == "text" || format == "table") {
		fmt.Fprintln(c.stderr, l.empty)
		return nil
	}
	return l.table(items, raws).write(c.stdout, format)
}

// listAs is listAll decoded into T, with the raw items kept for JSON output.
func listAs[T any](ctx context.Context, a *apiClient, path string, q url.Values, limit int) ([]T, []json.RawMessage, error) {
	raws, err := a.listAll(ctx, path, q, limit)
	if err != nil {
		return nil, nil, err
	}
	items, err := decodeEach[T](raws)
	return items, raws, err
}

// decodeEach decodes raw items into T, keeping the raw form for JSON output.
func decodeEach[T any](raws []json.RawMessage) ([]T, error) {
	out := make([]T, 0, len(raws))
	for _, r := range raws {
		var v T
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("unexpected item from the server: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// listAll fetches pages of path (with query q) until limit items (0: all
// pages, at most 100 of them).
func (a *apiClient) listAll(ctx context.Context, path string, q url.Values, limit int) ([]json.RawMessage, error) {
	var out []json.RawMessage
	if q == nil {
		q = url.Values{}
	}
	for range 100 {
		var page api.List[json.RawMessage]
		u := path
		if enc := q.Encode(); enc != "" {
			u += "?" + enc
		}
		if err := a.do(ctx, http.MethodGet, u, nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if page.NextCursor == "" || (limit > 0 && len(out) >= limit) {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
