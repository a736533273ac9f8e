package ingest

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Loki's logproto.PushRequest, decoded by hand (Loki itself is AGPL):
//
//	PushRequest   { repeated StreamAdapter streams = 1; }
//	StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//	EntryAdapter  { google.protobuf.Timestamp timestamp = 1; string line = 2;
//	                repeated LabelPairAdapter structuredMetadata = 3; }
//	LabelPairAdapter { string name = 1; string value = 2; }
//	Timestamp     { int64 seconds = 1; int32 nanos = 2; }

func protoErr(where string, err error) error {
	return badBody("loki", "invalid protobuf: "+where, err)
}

// protoFields calls fn for each field of a message; fn gets the field
// number, wire type and, for length-delimited fields, the bytes, for
// varints the value; fn ignores (returns nil for) fields it does not know.
func protoFields(b []byte, where string, fn func(num protowire.Number, typ protowire.Type, data []byte, v uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protoErr(where, protowire.ParseError(n))
		}
		b = b[n:]
		var data []byte
		var v uint64
		switch typ {
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protoErr(where, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, data, v); err != nil {
			return err
		}
	}
	return nil
}

func wantType(where string, got, want protowire.Type) error {
	if got != want {
		return protoErr(where, fmt.Errorf("wire type %d, want %d", got, want))
	}
	return nil
}

func lokiProto(b []byte) ([]lokiStream, error) {
	var out []lokiStream
	err := protoFields(b, "PushRequest", func(num protowire.Number, typ protowire.Type, data []byte, _ uint64) error {
		if num != 1 {
			return nil
		}
		if err := wantType("PushRequest.streams", typ, protowire.BytesType); err != nil {
			return err
		}
		st, err := lokiProtoStream(data, len(out))
		if err != nil {
			return err
		}
		out = append(out, st)
		return nil
	})
	return out, err
}

func lokiProtoStream(b []byte, idx int) (lokiStream, error) {
	var st lokiStream
	haveLabels := false
	where := fmt.Sprintf("streams[%d]", idx)
	err := protoFields(b, where, func(num protowire.Number, typ protowire.Type, data []byte, _ uint64) error {
		switch num {
		case 1:
			if err := wantType(where+".labels", typ, protowire.BytesType); err != nil {
				return err
			}
			labels, err := ParseLabels(string(data))
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			st.labels, haveLabels = labels, true
		case 2:
			if err := wantType(where+".entries", typ, protowire.BytesType); err != nil {
				return err
			}
			e, err := lokiProtoEntry(data, where)
			if err != nil {
				return err
			}
			st.entries = append(st.entries, e)
		}
		return nil
	})
	if err == nil && !haveLabels && len(st.entries) > 0 {
		err = &StreamError{Record: where}
	}
	return st, err
}

func lokiProtoEntry(b []byte, where string) (lokiEntry, error) {
	var e lokiEntry
	where += ".entries"
	err := protoFields(b, where, func(num protowire.Number, typ protowire.Type, data []byte, _ uint64) error {
		switch num {
		case 1:
			if err := wantType(where+".timestamp", typ, protowire.BytesType); err != nil {
				return err
			}
			var sec, nsec int64
			err := protoFields(data, where+".timestamp", func(num protowire.Number, typ protowire.Type, _ []byte, v uint64) error {
				switch num {
				case 1:
					sec = int64(v)
				case 2:
					nsec = int64(int32(v))
				default:
					return nil
				}
				return wantType(where+".timestamp", typ, protowire.VarintType)
			})
			if err != nil {
				return err
			}
			if sec < 0 || nsec < 0 || nsec >= 1e9 {
				return protoErr(where, fmt.Errorf("invalid timestamp %d.%09d", sec, nsec))
			}
			if sec != 0 || nsec != 0 {
				e.ts = time.Unix(sec, nsec).UTC()
			}
		case 2:
			if err := wantType(where+".line", typ, protowire.BytesType); err != nil {
				return err
			}
			e.line = string(data)
		case 3:
			if err := wantType(where+".structuredMetadata", typ, protowire.BytesType); err != nil {
				return err
			}
			var name, value string
			err := protoFields(data, where+".structuredMetadata", func(num protowire.Number, typ protowire.Type, d []byte, _ uint64) error {
				switch num {
				case 1:
					name = string(d)
				case 2:
					value = string(d)
				default:
					return nil
				}
				return wantType(where+".structuredMetadata", typ, protowire.BytesType)
			})
			if err != nil {
				return err
			}
			if e.meta == nil {
				e.meta = make(map[string]string)
			}
			e.meta[name] = value
		}
		return nil
	})
	return e, err
}
