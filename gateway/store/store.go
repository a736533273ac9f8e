package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Kinds of record.
const (
	KindRequest = "request"
	KindGrant   = "grant"
	KindReview  = "review"
	KindSource  = "source"
)

// Record is one stored document with the fields it is indexed by.
type Record struct {
	Kind    string
	ID      string
	State   string
	Owner   string // requester or holder id; empty when not owned
	Service string
	Env     string
	Lookup  string // secondary unique-ish key (a source token hash)
	Created time.Time
	Doc     []byte
}

// Query selects records of one kind, newest first.
type Query struct {
	Kind    string
	State   string // empty: any
	Owner   string // empty: any
	Service string
	Env     string
	Lookup  string
	// Limit is the page size; zero means 100, and it is capped at 1000.
	Limit int
	// Cursor continues a previous page; empty starts at the newest.
	Cursor string
}

// Tx reads and writes records inside one atomic unit.
type Tx interface {
	Get(ctx context.Context, kind, id string) (Record, error)
	Put(ctx context.Context, rec Record) error
}

// Backend is a storage engine: SQLite on one machine, Redis for replicas.
type Backend interface {
	// Update runs fn atomically: either every Put lands or none does. It may
	// run fn more than once when it loses a race, so fn must be repeatable.
	Update(ctx context.Context, fn func(Tx) error) error
	Get(ctx context.Context, kind, id string) (Record, error)
	List(ctx context.Context, q Query) ([]Record, string, error)
	Ping(ctx context.Context) error
	Close() error
}

// Store is the typed face of a Backend.
type Store struct {
	b Backend
}

// New wraps a backend.
func New(b Backend) *Store { return &Store{b: b} }

// Ping reports whether the backend is reachable.
func (s *Store) Ping(ctx context.Context) error { return s.b.Ping(ctx) }

// Close closes the backend.
func (s *Store) Close() error { return s.b.Close() }

// Txn is a typed transaction.
type Txn struct {
	ctx context.Context
	tx  Tx
}

// Update runs fn in one atomic transaction.
func (s *Store) Update(ctx context.Context, fn func(*Txn) error) error {
	return s.b.Update(ctx, func(tx Tx) error { return fn(&Txn{ctx: ctx, tx: tx}) })
}

func decode[T any](rec Record) (T, error) {
	var v T
	if err := json.Unmarshal(rec.Doc, &v); err != nil {
		return v, fmt.Errorf("decode %s %s: %w", rec.Kind, rec.ID, err)
	}
	return v, nil
}

func getTyped[T any](ctx context.Context, get func(context.Context, string, string) (Record, error), kind, id string) (T, error) {
	rec, err := get(ctx, kind, id)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode[T](rec)
}

func listTyped[T any](ctx context.Context, b Backend, q Query) ([]T, string, error) {
	recs, next, err := b.List(ctx, q)
	if err != nil {
		return nil, "", err
	}
	out := make([]T, 0, len(recs))
	for _, rec := range recs {
		v, err := decode[T](rec)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, next, nil
}

func requestRecord(r *Request) (Record, error) {
	doc, err := json.Marshal(r)
	return Record{Kind: KindRequest, ID: r.ID, State: r.State, Owner: r.Requester.ID,
		Service: r.Service, Env: r.Env, Created: r.CreatedAt, Doc: doc}, err
}

func grantRecord(g *Grant) (Record, error) {
	doc, err := json.Marshal(g)
	return Record{Kind: KindGrant, ID: g.ID, State: g.State, Owner: g.Holder.ID,
		Service: g.Service, Env: g.Env, Created: g.IssuedAt, Doc: doc}, err
}

func reviewRecord(r *Review) (Record, error) {
	doc, err := json.Marshal(r)
	return Record{Kind: KindReview, ID: r.ID, State: r.State, Owner: r.Requester.ID,
		Service: r.Service, Env: r.Env, Created: r.CreatedAt, Doc: doc}, err
}

func sourceRecord(s *Source) (Record, error) {
	doc, err := json.Marshal(s)
	state := "active"
	if !s.RevokedAt.IsZero() {
		state = "revoked"
	}
	return Record{Kind: KindSource, ID: s.ID, State: state, Lookup: s.TokenHash, Created: s.CreatedAt, Doc: doc}, err
}

// Typed reads inside a transaction.

func (t *Txn) Request(id string) (Request, error) {
	return getTyped[Request](t.ctx, t.tx.Get, KindRequest, id)
}
func (t *Txn) Grant(id string) (Grant, error) { return getTyped[Grant](t.ctx, t.tx.Get, KindGrant, id) }
func (t *Txn) Review(id string) (Review, error) {
	return getTyped[Review](t.ctx, t.tx.Get, KindReview, id)
}
func (t *Txn) Source(id string) (Source, error) {
	return getTyped[Source](t.ctx, t.tx.Get, KindSource, id)
}

// PutRequest writes a request.
func (t *Txn) PutRequest(r *Request) error { return t.put(requestRecord(r)) }

// PutGrant writes a grant.
func (t *Txn) PutGrant(g *Grant) error { return t.put(grantRecord(g)) }

// PutReview writes a review.
func (t *Txn) PutReview(r *Review) error { return t.put(reviewRecord(r)) }

// PutSource writes a source.
func (t *Txn) PutSource(s *Source) error { return t.put(sourceRecord(s)) }

func (t *Txn) put(rec Record, err error) error {
	if err != nil {
		return fmt.Errorf("encode %s: %w", rec.Kind, err)
	}
	return t.tx.Put(t.ctx, rec)
}

// Typed reads outside a transaction.

func (s *Store) Request(ctx context.Context, id string) (Request, error) {
	return getTyped[Request](ctx, s.b.Get, KindRequest, id)
}
func (s *Store) Grant(ctx context.Context, id string) (Grant, error) {
	return getTyped[Grant](ctx, s.b.Get, KindGrant, id)
}
func (s *Store) Review(ctx context.Context, id string) (Review, error) {
	return getTyped[Review](ctx, s.b.Get, KindReview, id)
}
func (s *Store) Source(ctx context.Context, id string) (Source, error) {
	return getTyped[Source](ctx, s.b.Get, KindSource, id)
}

// SourceByTokenHash finds the source whose token hashes to h.
func (s *Store) SourceByTokenHash(ctx context.Context, h string) (Source, error) {
	recs, _, err := s.b.List(ctx, Query{Kind: KindSource, Lookup: h, Limit: 1})
	if err != nil {
		return Source{}, err
	}
	if len(recs) == 0 {
		return Source{}, ErrNotFound
	}
	return decode[Source](recs[0])
}

// Requests lists requests, newest first.
func (s *Store) Requests(ctx context.Context, q Query) ([]Request, string, error) {
	q.Kind = KindRequest
	return listTyped[Request](ctx, s.b, q)
}

// Grants lists grants, newest first.
func (s *Store) Grants(ctx context.Context, q Query) ([]Grant, string, error) {
	q.Kind = KindGrant
	return listTyped[Grant](ctx, s.b, q)
}

// Reviews lists reviews, newest first.
func (s *Store) Reviews(ctx context.Context, q Query) ([]Review, string, error) {
	q.Kind = KindReview
	return listTyped[Review](ctx, s.b, q)
}

// Sources lists sources, newest first.
func (s *Store) Sources(ctx context.Context, q Query) ([]Source, string, error) {
	q.Kind = KindSource
	return listTyped[Source](ctx, s.b, q)
}
