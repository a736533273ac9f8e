// Package ingest turns the bodies log shippers send into normalised
// logs.Entry values: NDJSON or JSON arrays (Vector http sink, Fluent Bit
// json_lines), OTLP/HTTP logs (protobuf and JSON) and the Loki push API (JSON
// and snappy-compressed protobuf).
//
// It owns body reading (Content-Encoding, size limits after decompression),
// decoding, level and time normalisation and attribute flattening. Every
// decode error caused by the body is a client error (IsClientError, 400),
// except ErrTooLarge (413) and ErrUnsupportedMediaType (415); a body with one
// bad record is rejected whole.
//
// It must not publish, redact or authorise anything: the caller redacts the
// entries (gateway/redact) and hands them to the hub. It keeps no state
// between calls.
package ingest
