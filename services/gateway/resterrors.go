package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// restMarshaler is grpc-gateway's JSON marshaler (proto field names,
// unknown fields refused) whose decoder says which field of a request body
// is wrong, by its snake_case path ("defaults.default_overlap_for_new_task_suites"),
// instead of protojson's camelCase leaf name.
type restMarshaler struct {
	runtime.JSONPb
}

// NewDecoder reads the whole body (bounded by limitBody) and decodes it.
func (m *restMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return io.EOF // an empty body: the request message stays empty
		}
		if msg, ok := v.(proto.Message); ok {
			// protojson itself: one pass over the body (JSONPb scans it
			// once more first), and it refuses anything after the object,
			// which JSONPb ignores (a proxy in front could read a second
			// value another way).
			err = m.UnmarshalOptions.Unmarshal(b, msg)
		} else {
			err = m.JSONPb.Unmarshal(b, v)
		}
		if err != nil {
			if trailingData(b) {
				return serviceerror.NewInvalidArgument("body", "must be one JSON object, with nothing after it")
			}
			return bodyError(b, err)
		}
		return nil
	})
}

// trailingData reports whether b holds anything but white space after its
// first JSON value (which is valid JSON).
func trailingData(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	var first json.RawMessage
	if dec.Decode(&first) != nil {
		return false // the value itself is wrong: decoding said so
	}
	return len(bytes.TrimSpace(b[dec.InputOffset():])) > 0
}

// protojson's errors carry the position of the fault: "(line 3:17)".
var protoPosition = regexp.MustCompile(`\(line (\d+):(\d+)\)`)

// bodyError turns a decoding error into an InvalidArgument naming the
// field at the position protojson reports, in snake_case; the whole body
// ("body") when the JSON itself is broken.
func bodyError(body []byte, err error) error {
	// protojson quotes the bytes it stopped at as they are: a body that is
	// not UTF-8 would make an error text that cannot be marshalled.
	msg := strings.ToValidUTF8(err.Error(), "\uFFFD")
	reason := strings.TrimSpace(strings.TrimPrefix(protoPosition.ReplaceAllString(msg, ""), "proto:"))
	reason = strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(reason), ": "), " : ", ": ")
	// Broken JSON is the whole body's fault. protojson also calls a
	// value of the wrong kind where a message or a list belongs a "syntax
	// error" (unexpected token): for valid JSON that is the field's.
	if errors.Is(err, io.ErrUnexpectedEOF) || !json.Valid(body) {
		return serviceerror.NewInvalidArgument("body", "is not valid JSON: %s", reason)
	}
	field := "body"
	if m := protoPosition.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		if path := jsonPathAt(body, offsetOf(body, line, col)); path != "" {
			field = path
		}
	}
	if strings.Contains(reason, "syntax error") {
		reason = strings.TrimSpace(strings.TrimPrefix(reason, "syntax error:")) + " (the field holds a value of the wrong kind)"
	}
	return serviceerror.NewInvalidArgument(field, "%s", camelToSnakeInText(reason))
}

// offsetOf turns a 1-based line and column into a byte offset.
func offsetOf(b []byte, line, col int) int {
	off := 0
	for l := 1; l < line && off < len(b); l++ {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return len(b)
		}
		off += i + 1
	}
	return min(off+col-1, len(b))
}

// jsonPathAt returns the path of the member whose key or value holds byte
// offset o of b ("intervals[1].reward", keys in snake_case); "" when none
// does.
func jsonPathAt(b []byte, o int) string {
	type frame struct {
		array   bool
		key     string
		index   int
		wantKey bool
	}
	var stack []frame
	pathOf := func() string {
		var sb strings.Builder
		for _, f := range stack {
			switch {
			case f.array:
				fmt.Fprintf(&sb, "[%d]", f.index)
			case f.key != "":
				if sb.Len() > 0 {
					sb.WriteByte('.')
				}
				sb.WriteString(camelToSnake(f.key))
			}
		}
		return sb.String()
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return pathOf()
		}
		top := len(stack) - 1
		isKey := false
		if k, ok := tok.(string); ok && top >= 0 && !stack[top].array && stack[top].wantKey {
			stack[top].key, stack[top].wantKey, isKey = k, false, true
		}
		if int(dec.InputOffset()) > o {
			return pathOf()
		}
		if isKey {
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, frame{array: true})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:top]
			top--
		}
		// A value ended: an object's next token is a key, an array's the
		// next element.
		if top >= 0 {
			if stack[top].array {
				stack[top].index++
			} else {
				stack[top].wantKey = true
			}
		}
	}
}

// camelToSnake writes a JSON name as its proto field name
// ("assignmentMaxDurationSeconds" -> "assignment_max_duration_seconds").
func camelToSnake(s string) string {
	var sb strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				sb.WriteByte('_')
			}
			sb.WriteRune(unicode.ToLower(r))
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// camelNames finds protojson's "field <jsonName>" in a message.
var camelNames = regexp.MustCompile(`field "?([a-z][A-Za-z0-9]*)"?`)

func camelToSnakeInText(s string) string {
	return camelNames.ReplaceAllStringFunc(s, func(m string) string {
		sub := camelNames.FindStringSubmatch(m)
		return strings.Replace(m, sub[1], camelToSnake(sub[1]), 1)
	})
}

// queryFieldError matches grpc-gateway's query and path parameter errors.
var queryFieldError = regexp.MustCompile(`^parsing field "([^"]+)": (.*)$`)

// restErrorHandler is grpc-gateway's error handler after two repairs, so
// REST says what gRPC says: every INVALID_ARGUMENT carries a BadRequest
// naming the field (grpc-gateway's own decoding errors have none), and an
// answer with a RetryInfo (UNAVAILABLE, RESOURCE_EXHAUSTED) carries
// Retry-After.
func restErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	st := status.Convert(err)
	if st.Code() == codes.InvalidArgument && strings.HasSuffix(st.Message(), "http: request body too large") {
		// A chunked body over the bound (limitBody's MaxBytesReader).
		writeRESTError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, bodyTooLarge)
		return
	}
	if st.Code() == codes.InvalidArgument && !hasBadRequest(st) {
		st = serviceerror.ToStatus(invalidArgument(st.Message()))
	}
	if st.Code() == codes.Unauthenticated {
		// grpc-gateway would copy the message into WWW-Authenticate,
		// which must name a scheme (RFC 9110, 6750).
		w = bearerChallenge{w}
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			secs := int(ri.GetRetryDelay().AsDuration().Seconds() + 0.999)
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, st.Err())
}

func hasBadRequest(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.BadRequest); ok {
			return true
		}
	}
	return false
}

// invalidArgument reads the field out of an INVALID_ARGUMENT message that
// has no BadRequest detail: one formatted by serviceerror ("invalid
// argument: FIELD: REASON", from restMarshaler), or grpc-gateway's own
// ("parsing field "page_size": ...").
func invalidArgument(msg string) error {
	if rest, ok := strings.CutPrefix(msg, "invalid argument: "); ok {
		if field, reason, ok := strings.Cut(rest, ": "); ok && !strings.ContainsAny(field, " \"") {
			return serviceerror.NewInvalidArgument(field, "%s", reason)
		}
	}
	if m := queryFieldError.FindStringSubmatch(msg); m != nil {
		return serviceerror.NewInvalidArgument(m[1], "%s", m[2])
	}
	return serviceerror.NewInvalidArgument("body", "%s", camelToSnakeInText(msg))
}

// bearerChallenge sets WWW-Authenticate to the bearer scheme's challenge
// when the answer is written, over what grpc-gateway put there.
type bearerChallenge struct{ http.ResponseWriter }

func (w bearerChallenge) WriteHeader(code int) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="crowdgate"`)
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w bearerChallenge) Unwrap() http.ResponseWriter { return w.ResponseWriter }
