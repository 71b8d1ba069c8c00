package gateway

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/rs/cors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refuseCrossOrigin answers 403 to a state-changing REST request (POST,
// PATCH, PUT, DELETE) that a browser sends from a web page on an origin
// CORSSettings does not allow. CORS alone does not stop it: a browser
// asks first (a preflight) only for requests that need it (a JSON
// Content-Type, an Authorization header), and sends a "simple" one (a
// text/plain or form body, no credentials) at once; with
// CROWDGATE_AUTH=off the API would act on it. Go's
// http.CrossOriginProtection decides what is cross-origin (Sec-Fetch-Site,
// else Origin against Host); requests without either (servers, curl) and
// safe methods pass, and so does an origin allowed (newCORS; nil: none).
// gateway.go applies it in front of the REST mux.
func refuseCrossOrigin(allowed *cors.Cors, h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cop.Check(r); err != nil && (allowed == nil || !allowed.OriginAllowed(r)) {
			writeRESTError(w, http.StatusForbidden, codes.PermissionDenied, "permission denied: a web page on this origin may not change anything here (CROWDGATE_CORS_ORIGINS lists the origins that may)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// headAsGet answers HEAD as GET without the body, as HTTP asks of every
// resource that answers GET (grpc-gateway routes GET only); not an export,
// which would stream every row to be dropped (405 there).
func headAsGet(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead || isExportPath(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		get := r.Clone(r.Context())
		get.Method = http.MethodGet
		h.ServeHTTP(headWriter{w}, get)
	})
}

// headWriter drops the body of a HEAD answer.
type headWriter struct{ http.ResponseWriter }

func (w headWriter) Write(b []byte) (int, error) { return len(b), nil }

// Unwrap lets http.ResponseController reach the connection.
func (w headWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// limitBody refuses request bodies larger than MaxRequestBytes: at once
// with 413 when Content-Length says so (before the body is read, so a
// client that waits for 100 Continue gets the answer rather than a reset
// connection), and by a MaxBytesReader otherwise (restErrorHandler
// answers 413 when it trips).
func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxRequestBytes {
			writeRESTError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, bodyTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		h.ServeHTTP(w, r)
	})
}

// bodyTooLarge is the answer to a body over MaxRequestBytes.
var bodyTooLarge = "invalid argument: body: must be at most " + strconv.Itoa(MaxRequestBytes>>20) + " MiB"

// writeRESTError writes an error answer in the REST API's form (a
// google.rpc.Status as JSON) without going through grpc-gateway, for the
// guards in front of it.
func writeRESTError(w http.ResponseWriter, httpStatus int, code codes.Code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_, _ = w.Write([]byte(`{"code":` + strconv.Itoa(int(code)) + `,"message":` + strconv.Quote(message) + `,"details":[]}`))
}

// writeRESTStatus writes st as grpc-gateway's error handler would (the
// same JSON, details included: an INVALID_ARGUMENT's BadRequest), without
// going through it, for the guards in front of it.
func writeRESTStatus(w http.ResponseWriter, httpStatus int, st *status.Status) {
	b, err := restJSON.Marshal(st.Proto())
	if err != nil {
		writeRESTError(w, httpStatus, st.Code(), st.Message())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(b)
}

// isExportPath reports whether p is an export route (export.go).
func isExportPath(p string) bool { return strings.HasSuffix(p, ":export") }
