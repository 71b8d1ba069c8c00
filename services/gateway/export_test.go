package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/requester/export"
)

func TestNegotiateExport(t *testing.T) {
	for accept, want := range map[string]string{
		"":                                 export.MIMENDJSON,
		"*/*":                              export.MIMENDJSON,
		"application/json":                 export.MIMENDJSON,
		"application/x-ndjson":             export.MIMENDJSON,
		"text/csv":                         export.MIMECSV,
		"text/csv; charset=utf-8":          export.MIMECSV,
		"application/json;q=0.5, text/csv": export.MIMECSV,
		"text/csv;q=0, application/json":   export.MIMENDJSON,
		"text/csv;q=0":                     export.MIMENDJSON,
		"text/csv;q=0.5, application/json": export.MIMENDJSON,
		"text/csv;q=0.9, */*;q=0.1":        export.MIMECSV,
		"*/*, text/csv":                    export.MIMECSV,
	} {
		if got := negotiateExport([]string{accept}); got != want {
			t.Errorf("Accept %q: %s, want %s", accept, got, want)
		}
	}
}

// A failure after rows ends the body in band: a JSON line {"error":...} or
// a CSV record #error; the first row of a CSV carries the header.
func TestExportMarshalerRowsAndInBandErrors(t *testing.T) {
	row := &crowdgatev1.ExportSubmissionsResponse{Cursor: "c", Submission: &crowdgatev1.Submission{Reward: "0.10"}}
	failure := map[string]proto.Message{"error": &spb.Status{Code: 14, Message: "unavailable: retry"}}
	nd := &exportMarshaler{restMarshaler: *restJSON}
	cs := &exportMarshaler{restMarshaler: *restJSON, csv: true}

	b, err := nd.Marshal(map[string]any{"result": exportRow{msg: row, first: true}})
	if err != nil || !strings.HasPrefix(string(b), `{"submission":`) || strings.Contains(string(b), "result") {
		t.Errorf("JSON line %s, %v", b, err)
	}
	b, _ = nd.Marshal(failure)
	if string(b) != `{"error":{"code":14,"message":"unavailable: retry","details":[]}}` {
		t.Errorf("JSON error line %s", b)
	}
	first, _ := cs.Marshal(map[string]any{"result": exportRow{msg: row, first: true}})
	next, _ := cs.Marshal(map[string]any{"result": exportRow{msg: row}})
	if lines := strings.Split(strings.TrimSuffix(string(first), "\n"), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "cursor,") {
		t.Errorf("first CSV row %q", first)
	}
	if strings.Count(string(next), "\n") != 1 {
		t.Errorf("next CSV row %q", next)
	}
	if b, _ := cs.Marshal(failure); string(b) != "#error,UNAVAILABLE,unavailable: retry\n" {
		t.Errorf("CSV error %q", b)
	}
	if nd.ContentType(failure) != "application/json" || !strings.HasPrefix(cs.ContentType(exportRow{msg: row}), "text/csv") || nd.ContentType(exportRow{msg: row}) != "application/x-ndjson" {
		t.Errorf("content types %s %s %s", nd.ContentType(failure), cs.ContentType(exportRow{msg: row}), nd.ContentType(exportRow{msg: row}))
	}
	// Another route's answer or error, through the marshaler its Accept
	// picked, is JSON.
	for _, v := range []any{row, &spb.Status{Code: 5}, nil} {
		if ct := cs.ContentType(v); ct != "application/json" {
			t.Errorf("CSV marshaler's content type for %T: %s, want application/json", v, ct)
		}
	}
}

// failingExports sends two rows of submissions then fails UNAVAILABLE, and
// fails Tolokers before any row with an INVALID_ARGUMENT naming cursor.
type failingExports struct {
	crowdgatev1.UnimplementedExportServiceServer
}

func (failingExports) ExportSubmissions(_ *crowdgatev1.ExportSubmissionsRequest, s crowdgatev1.ExportService_ExportSubmissionsServer) error {
	for _, r := range []string{"0.10", "10.52"} {
		if err := s.Send(&crowdgatev1.ExportSubmissionsResponse{Cursor: "c" + r, Submission: &crowdgatev1.Submission{Reward: r}}); err != nil {
			return err
		}
	}
	return serviceerror.ToStatus(storage.Unavailable(errors.New("redis went away"))).Err()
}

func (failingExports) ExportTolokers(*crowdgatev1.ExportTolokersRequest, crowdgatev1.ExportService_ExportTolokersServer) error {
	return serviceerror.ToStatus(serviceerror.NewInvalidArgument("cursor", "is not a cursor of this export")).Err()
}

// A stream that fails after rows ends its body in band, with status 200;
// one that fails before any row is a plain REST error.
func TestExportFailuresOverREST(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	crowdgatev1.RegisterExportServiceServer(srv, failingExports{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var rest *runtime.ServeMux
	rest = runtime.NewServeMux(append([]runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, restJSON),
		runtime.WithErrorHandler(restErrorHandler),
	}, exportMuxOptions(&rest)...)...)
	if err := crowdgatev1.RegisterExportServiceHandler(context.Background(), rest, conn); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(rest)
	t.Cleanup(web.Close)
	get := func(path, accept string) (int, string, string) {
		req, _ := http.NewRequest(http.MethodGet, web.URL+path, nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}

	code, _, body := get("/v1/pools/p1/submissions:export", "text/csv")
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if code != http.StatusOK || len(lines) != 4 || !strings.HasPrefix(lines[0], "cursor,") ||
		!strings.HasPrefix(lines[3], "#error,UNAVAILABLE,") {
		t.Errorf("CSV failing after 2 rows: %d\n%s", code, body)
	}
	code, _, body = get("/v1/pools/p1/submissions:export", "")
	lines = strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if code != http.StatusOK || len(lines) != 3 || !strings.HasPrefix(lines[2], `{"error":{"code":14,`) {
		t.Errorf("JSON Lines failing after 2 rows: %d\n%s", code, body)
	}
	for _, accept := range []string{"", "text/csv"} {
		code, ctype, body := get("/v1/pools/p1/tolokers:export", accept)
		if code != http.StatusBadRequest || ctype != "application/json" || !strings.HasPrefix(body, `{"code":3,`) ||
			!strings.Contains(body, `"field":"cursor"`) {
			t.Errorf("Accept %q, failing before any row: %d %s %s", accept, code, ctype, body)
		}
	}
}
