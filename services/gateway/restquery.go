package gateway

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// strictQuery is grpc-gateway's query parser made as strict as the body's
// decoding: a parameter that names no field of the request (a typo:
// ?stat=DEAD would list every state) is INVALID_ARGUMENT naming it, as an
// unknown field of a body is, instead of being ignored; and a value that
// does not parse is INVALID_ARGUMENT naming its parameter, in words
// ("must be an integer") rather than Go's. Fields are named by their proto
// or JSON names, nested with dots, as grpc-gateway reads them; a field the
// path binds keeps the path's value. gateway.go passes it with
// runtime.SetQueryParameterParser.
type strictQuery struct{ runtime.DefaultQueryParser }

// mapKeyParam is a map field's parameter: field[key].
var mapKeyParam = regexp.MustCompile(`^(.*)\[(.*)\]$`)

// Parse sets msg's fields from values, one parameter at a time.
func (q *strictQuery) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	seen := make(map[string]string, len(values))
	for key, vs := range values {
		name, mapKey := key, ""
		if m := mapKeyParam.FindStringSubmatch(key); m != nil {
			name, mapKey = m[1], "["+m[2]+"]"
		}
		fd, path := queryField(msg.ProtoReflect().Descriptor(), strings.Split(name, "."))
		if fd == nil {
			return serviceerror.NewInvalidArgument(key, "is not a parameter of this request")
		}
		if other, ok := seen[path+mapKey]; ok {
			return serviceerror.NewInvalidArgument(key, "names the same field as %s", other)
		}
		seen[path+mapKey] = key
		if !fd.IsList() && !fd.IsMap() && len(vs) > 1 {
			return serviceerror.NewInvalidArgument(key, "must be given once")
		}
		if err := q.DefaultQueryParser.Parse(msg, url.Values{key: vs}, filter); err != nil {
			return serviceerror.NewInvalidArgument(key, "%s", valueProblem(fd, err))
		}
	}
	return nil
}

// queryField finds the field a dotted parameter names, by proto or JSON
// name, through singular message fields; it returns nil when there is
// none, and the field's path in proto names.
func queryField(md protoreflect.MessageDescriptor, segs []string) (protoreflect.FieldDescriptor, string) {
	var fd protoreflect.FieldDescriptor
	names := make([]string, 0, len(segs))
	for i, s := range segs {
		if md == nil {
			return nil, ""
		}
		fields := md.Fields()
		if fd = fields.ByTextName(s); fd == nil {
			if fd = fields.ByJSONName(s); fd == nil {
				return nil, ""
			}
		}
		names = append(names, string(fd.Name()))
		if i < len(segs)-1 {
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return nil, ""
			}
			md = fd.Message()
		}
	}
	return fd, strings.Join(names, ".")
}

// valueProblem says what a parameter's value must be, from its field.
func valueProblem(fd protoreflect.FieldDescriptor, err error) string {
	if fd.IsMap() {
		fd = fd.MapValue()
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return "must be an integer"
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return "must be a whole number"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "must be a number"
	case protoreflect.BoolKind:
		return "must be true or false"
	case protoreflect.EnumKind:
		return "must be a value of " + string(fd.Enum().FullName())
	case protoreflect.MessageKind:
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			return "must be an RFC 3339 time, such as 2026-01-02T15:04:05Z"
		case "google.protobuf.Duration":
			return "must be a duration in seconds, such as 3.5s"
		case "google.protobuf.FieldMask":
			return "must be field names separated by commas"
		}
	}
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "parsing ") {
		msg = after
	}
	return camelToSnakeInText(msg)
}
