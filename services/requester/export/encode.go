package export

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The REST encodings of an export stream (the gateway picks one by Accept).
//
// JSON Lines (application/x-ndjson): each row is the stream's response
// message as protojson with the proto field names, on one line:
// {"submission":{...},"cursor":"..."}. Amounts are JSON strings.
//
// CSV (text/csv): a header line, then one record per row. The columns are
// "cursor", then every field of the row message by its proto name, in
// field order; a nested message's fields (one level: flags, last_error,
// sessions) are columns of their own named "<field>.<sub-field>"; a
// timestamp is RFC 3339 in UTC with as many fraction digits as it has; an
// enum is its name; a repeated field is a JSON array (of strings, or of
// objects for messages); bytes are base64; an unset optional field or
// message is empty. Amounts are their decimal strings, unchanged.
//
// A text cell (a string field of the row) that starts with = + - @, a tab
// or a carriage return is written with a single quote in front, so a
// spreadsheet shows it as text instead of running it as a formula (OWASP's
// advice against CSV injection): retry_id, user_id, custom_log and
// last_error.message carry what Tolokers and the platform send. Amounts,
// numbers, times and enums never start so and are never changed; the
// cursor is written as it is, since a client passes it back unchanged (it
// is base64url the gateway made, with no formula in it). The message of
// the "#error" record is neutralised the same way.
const (
	MIMENDJSON = "application/x-ndjson"
	MIMECSV    = "text/csv"
)

// JSONOptions are the JSON Lines' protojson options (those of every REST
// answer: proto field names, unset fields present).
var JSONOptions = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// JSONLine encodes a response message as one JSON line, without the newline.
func JSONLine(m proto.Message) ([]byte, error) {
	b, err := JSONOptions.Marshal(m)
	if err != nil {
		return nil, err
	}
	// protojson may indent unpredictably; compact it onto one line.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// column is one CSV column: the path of fields from the response message.
type column struct {
	name string
	path []protoreflect.FieldDescriptor
	text bool // a string field of the row: neutralised (see textCell)
}

var columnCache sync.Map // protoreflect.FullName -> []column

// columns returns the CSV columns of a response message type: its cursor
// first, then the row's fields.
func columns(md protoreflect.MessageDescriptor) []column {
	if c, ok := columnCache.Load(md.FullName()); ok {
		return c.([]column)
	}
	var out []column
	var row protoreflect.FieldDescriptor
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.MessageKind {
			row = fd
		} else {
			out = append([]column{{name: string(fd.Name()), path: []protoreflect.FieldDescriptor{fd}}}, out...)
		}
	}
	if row != nil {
		out = append(out, flatten(row.Message(), "", []protoreflect.FieldDescriptor{row}, 0)...)
	}
	columnCache.Store(md.FullName(), out)
	return out
}

func flatten(md protoreflect.MessageDescriptor, prefix string, path []protoreflect.FieldDescriptor, depth int) []column {
	var out []column
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		p := append(append([]protoreflect.FieldDescriptor(nil), path...), fd)
		if depth == 0 && fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && !wellKnown(fd.Message()) {
			out = append(out, flatten(fd.Message(), prefix+string(fd.Name())+".", p, depth+1)...)
			continue
		}
		text := fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap()
		out = append(out, column{name: prefix + string(fd.Name()), path: p, text: text})
	}
	return out
}

func wellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf"
}

// Columns returns the CSV column names of a response message type (the
// README lists them).
func Columns(m proto.Message) []string {
	cs := columns(m.ProtoReflect().Descriptor())
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// CSVHeader is the header record of a response message type's CSV.
func CSVHeader(m proto.Message) []byte {
	return csvRecord(Columns(m))
}

// CSVRow encodes a response message as one CSV record (with its newline).
func CSVRow(m proto.Message) ([]byte, error) {
	cs := columns(m.ProtoReflect().Descriptor())
	rec := make([]string, len(cs))
	for i, c := range cs {
		v, err := cell(m.ProtoReflect(), c.path)
		if err != nil {
			return nil, err
		}
		if c.text {
			v = textCell(v)
		}
		rec[i] = v
	}
	return csvRecord(rec), nil
}

// CSVError is the record that ends a CSV export that failed after rows
// were sent: "#error", the gRPC code's name and the message. Its first
// field is never a cursor, so a reader tells it from a row.
func CSVError(code, message string) []byte {
	return csvRecord([]string{"#error", code, textCell(message)})
}

// formulaStarts are the first characters that make a spreadsheet read a
// cell as a formula (OWASP, CSV injection).
const formulaStarts = "=+-@\t\r"

// textCell neutralises a text cell that a spreadsheet would run as a
// formula by putting a single quote in front of it; any other is returned
// unchanged.
func textCell(v string) string {
	if v != "" && strings.IndexByte(formulaStarts, v[0]) >= 0 {
		return "'" + v
	}
	return v
}

func csvRecord(fields []string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(fields)
	w.Flush()
	return b.Bytes()
}

// cell is the text of the field at path, "" when a message on the way or an
// optional field is unset.
func cell(m protoreflect.Message, path []protoreflect.FieldDescriptor) (string, error) {
	for _, fd := range path[:len(path)-1] {
		if !m.Has(fd) {
			return "", nil
		}
		m = m.Get(fd).Message()
	}
	fd := path[len(path)-1]
	if fd.HasPresence() && !m.Has(fd) {
		return "", nil
	}
	v := m.Get(fd)
	switch {
	case fd.IsList():
		if v.List().Len() == 0 {
			return "[]", nil
		}
		return listJSON(fd, v.List())
	case fd.IsMap():
		return mapJSON(fd, v.Map())
	}
	return scalar(fd, v)
}

func scalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) (string, error) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String(), nil
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool()), nil
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name()), nil
		}
		return strconv.Itoa(int(v.Enum())), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10), nil
	case protoreflect.FloatKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 32), nil
	case protoreflect.DoubleKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), nil
	case protoreflect.BytesKind:
		return base64.StdEncoding.EncodeToString(v.Bytes()), nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		msg := v.Message()
		if fd.Message().FullName() == "google.protobuf.Timestamp" {
			f := msg.Descriptor().Fields()
			t := time.Unix(msg.Get(f.ByName("seconds")).Int(), msg.Get(f.ByName("nanos")).Int()).UTC()
			return t.Format(time.RFC3339Nano), nil
		}
		b, err := JSONOptions.Marshal(msg.Interface())
		if err != nil {
			return "", err
		}
		var out bytes.Buffer
		if err := json.Compact(&out, b); err != nil {
			return "", err
		}
		return out.String(), nil
	}
	return v.String(), nil
}

func listJSON(fd protoreflect.FieldDescriptor, l protoreflect.List) (string, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range l.Len() {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := elemJSON(&b, fd, l.Get(i)); err != nil {
			return "", err
		}
	}
	b.WriteByte(']')
	return b.String(), nil
}

func mapJSON(fd protoreflect.FieldDescriptor, m protoreflect.Map) (string, error) {
	obj := map[string]json.RawMessage{}
	var err error
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		var b bytes.Buffer
		if err = elemJSON(&b, fd.MapValue(), v); err != nil {
			return false
		}
		obj[k.String()] = b.Bytes()
		return true
	})
	if err != nil {
		return "", err
	}
	out, err := json.Marshal(obj)
	return string(out), err
}

// elemJSON writes one element of a repeated field or map as JSON: strings
// (every scalar, as the CSV shows it) or objects (messages).
func elemJSON(b *bytes.Buffer, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	s, err := scalar(fd, v)
	if err != nil {
		return err
	}
	if fd.Kind() == protoreflect.MessageKind && fd.Message().FullName() != "google.protobuf.Timestamp" {
		b.WriteString(s)
		return nil
	}
	q, err := json.Marshal(s)
	if err != nil {
		return err
	}
	b.Write(q)
	return nil
}
