package gateway

import (
	"context"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/code"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/requester/export"
)

// The REST side of the ExportService's streams (services/requester/export):
// GET /v1/pools/{pool_id}/{submissions,sessions,tolokers}:export answer
// JSON Lines (the default) or CSV (Accept: text/csv), one line per row as
// the rows arrive, in constant memory.
//
// How it fits grpc-gateway, which forwards a server stream by marshaling
// each message with the marshaler chosen by the exact Accept value:
//
//   - exportMiddleware (a runtime middleware) negotiates Accept onto one of
//     the two registered marshalers, puts the request's exportState in its
//     context, lifts the server's read deadline and makes the write
//     deadline roll with the rows (an export may run far longer than
//     WriteTimeout, but a reader that stops for WriteTimeout is cut off);
//   - exportRewriter (runtime.WithForwardResponseRewriter) marks the first
//     row, so the CSV marshaler writes the header line before it;
//   - exportStreamError (runtime.WithStreamErrorHandler) sees a stream's
//     failure. Before any row (a bad pool_id or cursor, another tenant's
//     pool, a key without the scope) the answer is the usual REST error:
//     its status and the same JSON body as every other route
//     (restErrorHandler), written by the middleware once the stream has
//     returned. After rows, the status (200) is sent already, so the
//     failure ends the body in band: a JSON line {"error":{...}} or a CSV
//     record "#error,CODE,message"; the client resumes from the last
//     row's cursor.
//
// The two marshalers are the mux's for their Accept values on every route:
// their ContentType is the export format's only for an export's rows, and
// application/json for anything else (another route's answer, an error).
//
// A stream that ends without a row (an empty pool, a cursor at the end)
// makes grpc-gateway write nothing, not even a Content-Type: the
// middleware then answers 200 with the format's type, and in CSV the
// header line alone.

// exportMuxOptions are the REST mux's options for the exports, after the
// others (its middleware runs after restRouteMiddleware). rest is the mux
// being built (the middleware answers errors through it).
func exportMuxOptions(rest **runtime.ServeMux) []runtime.ServeMuxOption {
	return []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(export.MIMENDJSON, &exportMarshaler{restMarshaler: *restJSON}),
		runtime.WithMarshalerOption(export.MIMECSV, &exportMarshaler{restMarshaler: *restJSON, csv: true}),
		runtime.WithForwardResponseRewriter(exportRewriter),
		runtime.WithStreamErrorHandler(exportStreamError),
		runtime.WithMiddlewares(exportMiddleware(rest)),
	}
}

// exportState is one export request's progress.
type exportState struct {
	mu      sync.Mutex
	started bool           // a row was forwarded
	failed  *status.Status // the stream failed before any row
}

type exportStateKey struct{}

func exportStateOf(ctx context.Context) *exportState {
	s, _ := ctx.Value(exportStateKey{}).(*exportState)
	return s
}

// exportRow is a stream message on its way to an export marshaler.
type exportRow struct {
	msg   proto.Message
	first bool
}

// isExportResponse reports whether m is a row of an export stream.
func isExportResponse(m proto.Message) bool {
	switch m.(type) {
	case *crowdgatev1.ExportSubmissionsResponse, *crowdgatev1.ExportSessionsResponse, *crowdgatev1.ExportTolokersResponse:
		return true
	}
	return false
}

// exportRewriter wraps an export's rows for the marshalers, marking the
// first; every other answer passes unchanged.
func exportRewriter(ctx context.Context, resp proto.Message) (any, error) {
	st := exportStateOf(ctx)
	if st == nil || !isExportResponse(resp) {
		return resp, nil
	}
	st.mu.Lock()
	first := !st.started
	st.started = true
	st.mu.Unlock()
	return exportRow{msg: resp, first: first}, nil
}

// exportStreamError converts a stream's error as restErrorHandler does
// (INVALID_ARGUMENT always names a field) and, before any row, keeps it for
// exportMiddleware to answer as a plain REST error.
func exportStreamError(ctx context.Context, err error) *status.Status {
	st := status.Convert(err)
	if st.Code() == codes.InvalidArgument && !hasBadRequest(st) {
		st = serviceerror.ToStatus(invalidArgument(st.Message()))
	}
	if s := exportStateOf(ctx); s != nil {
		s.mu.Lock()
		if !s.started {
			s.failed = st
		}
		s.mu.Unlock()
	}
	return st
}

// negotiateExport picks the export encoding an Accept header asks for:
// CSV when it names text/csv with a quality (q) above 0 and at least that
// of any JSON type or wildcard it names, JSON Lines otherwise.
func negotiateExport(accept []string) string {
	csv, other := 0.0, 0.0
	for _, a := range accept {
		for part := range strings.SplitSeq(a, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
					q = 0
				}
			}
			switch mt {
			case export.MIMECSV:
				csv = max(csv, q)
			case export.MIMENDJSON, "application/json", "application/*", "*/*":
				other = max(other, q)
			}
		}
	}
	if csv > 0 && csv >= other {
		return export.MIMECSV
	}
	return export.MIMENDJSON
}

// exportWriteWindow is how long an export waits for its reader between
// rows before the connection is cut.
const exportWriteWindow = 60 * time.Second

// exportMiddleware serves the :export routes (see above); other routes
// pass through.
func exportMiddleware(mux **runtime.ServeMux) runtime.Middleware {
	return func(next runtime.HandlerFunc) runtime.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
			if !strings.HasSuffix(r.URL.Path, ":export") {
				next(w, r, params)
				return
			}
			r.Header["Accept"] = []string{negotiateExport(r.Header.Values("Accept"))}
			st := &exportState{}
			r = r.WithContext(context.WithValue(r.Context(), exportStateKey{}, st))
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Time{})
			ew := &exportWriter{ResponseWriter: w, rc: rc, state: st}
			next(ew, r, params)
			if failed := ew.failedBeforeRows(); failed != nil {
				w.Header().Del("Transfer-Encoding")
				restErrorHandler(r.Context(), *mux, restJSON, w, r, failed.Err())
				return
			}
			if !ew.wrote {
				writeEmptyExport(w, r)
			}
		}
	}
}

// exportWriter swallows what grpc-gateway writes for a stream that failed
// before any row (the middleware answers it as a REST error instead), and
// rolls the write deadline forward as rows go out.
type exportWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	state    *exportState
	deadline time.Time
	wrote    bool // a status or a byte went out
}

func (w *exportWriter) failedBeforeRows() *status.Status {
	w.state.mu.Lock()
	defer w.state.mu.Unlock()
	return w.state.failed
}

func (w *exportWriter) WriteHeader(code int) {
	if w.failedBeforeRows() != nil {
		return
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *exportWriter) Write(b []byte) (int, error) {
	if w.failedBeforeRows() != nil {
		return len(b), nil
	}
	w.wrote = true
	if now := time.Now(); now.Add(exportWriteWindow).Sub(w.deadline) > time.Second {
		w.deadline = now.Add(exportWriteWindow)
		_ = w.rc.SetWriteDeadline(w.deadline)
	}
	return w.ResponseWriter.Write(b)
}

func (w *exportWriter) Flush() {
	if w.failedBeforeRows() != nil {
		return
	}
	_ = w.rc.Flush()
}

func (w *exportWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// exportMarshaler encodes an export's rows as JSON Lines or CSV. It only
// marshals (exports take no body), and an error before any row is never
// sent through it (exportMiddleware answers it).
type exportMarshaler struct {
	restMarshaler
	csv bool
}

// Delimiter: JSON Lines end each line with a newline; CSV records carry
// their own.
func (m *exportMarshaler) Delimiter() []byte {
	if m.csv {
		return nil
	}
	return []byte("\n")
}

// ContentType is the export format's only for an export's rows
// (exportRewriter wraps them). The marshalers are the mux's for their
// Accept values on every route, so anything else (another route's answer,
// any error, a 404 from routing) is JSON, labelled so.
func (m *exportMarshaler) ContentType(v any) string {
	if _, ok := v.(exportRow); !ok {
		return "application/json"
	}
	return exportContentType(m.csv)
}

// exportContentType is the Content-Type of an export in CSV or JSON Lines.
func exportContentType(csv bool) string {
	if csv {
		return "text/csv; charset=utf-8; header=present"
	}
	return export.MIMENDJSON
}

// exportRowTypes are the row messages of the export routes, by the last
// segment of their paths.
var exportRowTypes = map[string]proto.Message{
	"submissions:export": &crowdgatev1.ExportSubmissionsResponse{},
	"sessions:export":    &crowdgatev1.ExportSessionsResponse{},
	"tolokers:export":    &crowdgatev1.ExportTolokersResponse{},
}

// writeEmptyExport answers an export whose stream ended without a row and
// without an error: 200 with the negotiated format's Content-Type and, in
// CSV, the header line (README: "a header line, then one record per row").
func writeEmptyExport(w http.ResponseWriter, r *http.Request) {
	csv := r.Header.Get("Accept") == export.MIMECSV // negotiated by exportMiddleware
	w.Header().Set("Content-Type", exportContentType(csv))
	w.WriteHeader(http.StatusOK)
	if !csv {
		return
	}
	if row, ok := exportRowTypes[path.Base(r.URL.Path)]; ok {
		_, _ = w.Write(export.CSVHeader(row))
	}
}

func (m *exportMarshaler) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case map[string]any: // a stream chunk: {"result": row}
		if row, ok := v["result"].(exportRow); ok {
			if !m.csv {
				return export.JSONLine(row.msg)
			}
			b, err := export.CSVRow(row.msg)
			if err != nil {
				return nil, err
			}
			if row.first {
				b = append(export.CSVHeader(row.msg), b...)
			}
			return b, nil
		}
	case map[string]proto.Message: // a failure after rows: {"error": status}
		if st, ok := v["error"].(*spb.Status); ok {
			if m.csv {
				name, ok := code.Code_name[st.GetCode()]
				if !ok {
					name = strconv.Itoa(int(st.GetCode()))
				}
				return export.CSVError(name, st.GetMessage()), nil
			}
			b, err := export.JSONLine(st)
			if err != nil {
				return nil, err
			}
			return append(append([]byte(`{"error":`), b...), '}'), nil
		}
	}
	return m.restMarshaler.Marshal(v)
}
