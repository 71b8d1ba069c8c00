package toloka

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

func TestParseTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2024-08-22T14:00:00", want: time.Date(2024, 8, 22, 14, 0, 0, 0, time.UTC)},
		{in: "2024-08-22T14:00:00.123", want: time.Date(2024, 8, 22, 14, 0, 0, 123_000_000, time.UTC)},
		{in: "2024-08-22T14:00:00.5", want: time.Date(2024, 8, 22, 14, 0, 0, 500_000_000, time.UTC)},
		{in: "2024-08-22T14:00:00Z", want: time.Date(2024, 8, 22, 14, 0, 0, 0, time.UTC)},
		{in: "2024-08-22T14:00:00.123Z", want: time.Date(2024, 8, 22, 14, 0, 0, 123_000_000, time.UTC)},
		{in: "2024-08-22T14:00:00z", want: time.Date(2024, 8, 22, 14, 0, 0, 0, time.UTC)},
		{in: "2024-08-22T16:00:00+02:00", want: time.Date(2024, 8, 22, 14, 0, 0, 0, time.UTC)},
		{in: "2020-09-01T13:00", want: time.Date(2020, 9, 1, 13, 0, 0, 0, time.UTC)},
		{in: "", want: time.Time{}},
		{in: "2024-08-22", wantErr: true},
		{in: "22.08.2024 14:00", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseTime(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseTime(%q): error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if !got.Time.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, want %v in UTC", tc.in, got.Time, tc.want)
		}
	}
}

func TestTimeJSON(t *testing.T) {
	t.Parallel()
	type doc struct {
		T  Time  `json:"t"`
		P  *Time `json:"p,omitempty"`
		NP *Time `json:"np,omitempty"`
	}
	p := NewTime(time.Date(2024, 8, 22, 16, 0, 0, 123_456_789, time.FixedZone("CEST", 2*3600)))
	b, err := json.Marshal(doc{T: NewTime(time.Date(2024, 8, 22, 14, 0, 0, 0, time.UTC)), P: &p})
	if err != nil {
		t.Fatal(err)
	}
	if diff := jsonDiff(t, `{"t":"2024-08-22T14:00:00","p":"2024-08-22T14:00:00.123"}`, b); diff != "" {
		t.Errorf("marshal (-want +got):\n%s", diff)
	}
	var got doc
	if err := json.Unmarshal([]byte(`{"t":null,"p":"2024-08-22T14:00:00.123Z"}`), &got); err != nil {
		t.Fatal(err)
	}
	if !got.T.IsZero() || got.P == nil || got.P.String() != "2024-08-22T14:00:00.123" {
		t.Errorf("unmarshal: %+v", got)
	}
	if b, _ := json.Marshal(Time{}); string(b) != "null" {
		t.Errorf("zero Time marshals as %s, want null", b)
	}
	if err := json.Unmarshal([]byte(`{"t":12}`), &got); err == nil {
		t.Error("a number parsed as a Time")
	}
}

func TestPoolResponseDecoding(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, reply(http.StatusOK, `{
		"id": "21", "project_id": "7", "private_name": "p", "status": "CLOSED", "last_close_reason": "FOR_UPDATE",
		"created": "2025-03-04T10:00:00.5", "last_started": "2025-03-04T11:00:00Z", "last_stopped": "2025-03-04T12:00:00",
		"type": "REGULAR", "reward_per_assignment": 0.0200, "will_expire": "2025-04-01T00:00:00",
		"owner": {"id": "o1", "myself": true, "company_id": "c1"},
		"filter": {"and": [{"category": "skill", "key": "224", "operator": "GTE", "value": 80}]},
		"quality_control": {"configs": [{"collector_config": {"type": "ASSIGNMENT_SUBMIT_TIME", "uuid": "u-1",
			"parameters": {"history_size": 5, "fast_submit_threshold_seconds": 20}},
			"rules": [{"conditions": [{"key": "fast_submitted_count", "operator": "GTE", "value": 3}],
			           "action": {"type": "RESTRICTION_V2", "parameters": {"scope": "POOL", "duration": 2, "duration_unit": "HOURS", "private_comment": "fast"}}}]}]},
		"speed_quality_balance": {"type": "TOP_PERCENTAGE_BY_QUALITY", "percent": 80}
	}`))
	got, err := h.account.GetPool(context.Background(), "21")
	if err != nil {
		t.Fatal(err)
	}
	ts := func(s string) *Time {
		v, err := ParseTime(s)
		if err != nil {
			t.Fatal(err)
		}
		return &v
	}
	want := &Pool{
		ID: "21", ProjectID: "7", PrivateName: "p", Status: PoolClosed, LastCloseReason: CloseForUpdate,
		Created: ts("2025-03-04T10:00:00.5"), LastStarted: ts("2025-03-04T11:00:00"), LastStopped: ts("2025-03-04T12:00:00"),
		Type: "REGULAR", RewardPerAssignment: dec("0.0200"), WillExpire: ts("2025-04-01T00:00:00"),
		Owner:  &Owner{ID: "o1", Myself: Ptr(true), CompanyID: "c1"},
		Filter: json.RawMessage(`{"and": [{"category": "skill", "key": "224", "operator": "GTE", "value": 80}]}`),
		QualityControl: &QualityControl{Configs: []QualityControlConfig{{
			CollectorConfig: &CollectorConfig{
				Type:       "ASSIGNMENT_SUBMIT_TIME",
				Parameters: &CollectorParameters{HistorySize: Ptr(5), Extra: Extra{"fast_submit_threshold_seconds": json.RawMessage("20")}},
				Extra:      Extra{"uuid": json.RawMessage(`"u-1"`)},
			},
			Rules: []Rule{{
				Conditions: []Condition{{Key: "fast_submitted_count", Operator: "GTE", Value: json.RawMessage("3")}},
				Action:     &Action{Type: "RESTRICTION_V2", Parameters: &ActionParameters{Scope: "POOL", Duration: Ptr(2), DurationUnit: "HOURS", PrivateComment: "fast"}},
			}},
		}}},
		Extra: Extra{"speed_quality_balance": json.RawMessage(`{"type": "TOP_PERCENTAGE_BY_QUALITY", "percent": 80}`)},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(rawEqual), decimalDigits); diff != "" {
		t.Errorf("pool (-want +got):\n%s", diff)
	}
	if got.RewardPerAssignment.String() != "0.0200" {
		t.Errorf("reward %s, want the digits Toloka sent", got.RewardPerAssignment)
	}
}

// decimalDigits compares Decimals by their exact digits ("0.020" differs
// from "0.02").
var decimalDigits = cmp.Comparer(func(a, b money.Decimal) bool { return a.String() == b.String() })

func rawEqual(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return string(a) == string(b)
	}
	return cmp.Equal(va, vb)
}

// TestRoundTripKeepsUnknownFields reads a project with fields this package
// does not model and writes it back: nothing is lost, and nothing Toloka
// sets is sent.
func TestRoundTripKeepsUnknownFields(t *testing.T) {
	t.Parallel()
	const stored = `{
		"id": "7", "status": "ACTIVE", "created": "2025-01-01T00:00:00", "owner": {"id": "o1"},
		"public_name": "n", "public_description": "d",
		"task_spec": {
			"input_spec": {"image": {"type": "url", "required": true, "hint": "shown"}},
			"output_spec": {"label": {"type": "string", "allowed_values": ["a", "b"]}},
			"view_spec": {"type": "tb", "config": "{\"view\":{}}", "lock": {"core": "1.0.0"}, "settings": {"showSkip": false}}
		},
		"assignments_issuing_type": "EXTERNAL",
		"assignments_issuing_view_config": {"redirect_url": "https://gate.example.com/start", "future_option": 1},
		"metadata": {"ptmik_partner_name": ["Acme"]},
		"new_top_level": {"x": [1, 2.50]}
	}`
	h := newHarness(t, nil, reply(http.StatusOK, stored), reply(http.StatusOK, `{"id":"7"}`))
	ctx := context.Background()
	p, err := h.account.GetProject(ctx, "7")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "7" || p.Status != ProjectActive || p.AssignmentsIssuingType != IssuingExternal ||
		p.AssignmentsIssuingViewConfig.RedirectURL != "https://gate.example.com/start" {
		t.Errorf("decoded %+v", p)
	}
	p.PublicName = "renamed"
	if _, err := h.account.UpdateProject(ctx, p.ID, p); err != nil {
		t.Fatal(err)
	}
	const want = `{
		"public_name": "renamed", "public_description": "d",
		"task_spec": {
			"input_spec": {"image": {"type": "url", "required": true, "hint": "shown"}},
			"output_spec": {"label": {"type": "string", "allowed_values": ["a", "b"]}},
			"view_spec": {"type": "tb", "config": "{\"view\":{}}", "lock": {"core": "1.0.0"}, "settings": {"showSkip": false}}
		},
		"assignments_issuing_type": "EXTERNAL",
		"assignments_issuing_view_config": {"redirect_url": "https://gate.example.com/start", "future_option": 1},
		"metadata": {"ptmik_partner_name": ["Acme"]},
		"new_top_level": {"x": [1, 2.50]}
	}`
	if diff := jsonDiff(t, want, h.fake.requests()[1].Body); diff != "" {
		t.Errorf("PUT body (-want +got):\n%s", diff)
	}
}

func TestAssignmentDecoding(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, reply(http.StatusOK, `{
		"id": "00022cfa46--637cf4098ccdeb4a260737de", "task_suite_id": "ts1", "pool_id": "21", "user_id": "1a2b3c4d56781a2b3c4d5678",
		"status": "SUBMITTED", "reward": 10.520, "tasks": [{"id": "t1", "input_values": {"job_id": "42"}}],
		"solutions": [{"output_values": {"result": "ok"}}], "mixed": false,
		"created": "2024-08-22T14:00:00", "submitted": "2024-08-22T14:15:00.250",
		"owner": {"id": "o1", "myself": true}, "automerged": false
	}`))
	a, err := h.account.GetAssignment(context.Background(), "00022cfa46--637cf4098ccdeb4a260737de")
	if err != nil {
		t.Fatal(err)
	}
	if a.UserID != "1a2b3c4d56781a2b3c4d5678" || a.Reward.String() != "10.520" || a.Status != AssignmentSubmitted ||
		a.Submitted.String() != "2024-08-22T14:15:00.250" || string(a.Extra["automerged"]) != "false" {
		t.Errorf("decoded %+v", a)
	}
}

func TestExternalSubmitJSONRoundTrip(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 8, 22, 14, 0, 0, 0, time.UTC)
	end := time.Date(2024, 8, 22, 14, 15, 0, 250_000_000, time.UTC)
	in := ExternalSubmit{PoolID: "123", UserID: "u1", RetryID: "r", Reward: money.MustParse("10.520"), Quality: dec("0.5"),
		StartTime: &start, EndTime: &end, RealTasksCount: Ptr(4)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out ExternalSubmit
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out, decimalDigits); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"pool_id":"77","user_id":"u","reward":1}`), &out); err != nil || out.PoolID != "77" {
		t.Errorf("string pool_id: %v, %q", err, out.PoolID)
	}
}

// An object's members the struct does not model are kept in Extra, and
// only those: a value is skipped whole whatever it holds (nested objects
// with other names, strings with quotes, braces and escapes), and a name
// the struct knows only without regard to case is kept as Toloka sent it.
func TestUnmarshalWithExtraKeepsOnlyUnmodelledMembers(t *testing.T) {
	t.Parallel()
	type doc struct {
		A string          `json:"a"`
		B json.RawMessage `json:"b,omitempty"`
		N *float64        `json:"n,omitempty"`
	}
	tests := []struct {
		in   string
		want Extra
	}{
		{in: `{"a":"x"}`},
		{in: ` { "a" : "x" , "n" : -1.5e3 } `},
		{in: `{"a":"x","b":{"zz":[1,{"yy":"}]"}],"q":"\"{"},"n":2}`},
		{in: `{"b":["a","\\",{"c":null}],"a":"\\\"}"}`},
		{in: `{"a":"x","extra":{"k":[1,2]},"n":1}`, want: Extra{"extra": json.RawMessage(`{"k":[1,2]}`)}},
		{in: `{"a":"x","last":true}`, want: Extra{"last": json.RawMessage(`true`)}},
		{in: `{"b":{"x":{"y":[{},[]]}},"zz":1}`, want: Extra{"zz": json.RawMessage(`1`)}},
		{in: `{"a":"q\"}","b":"\\","zz":null}`, want: Extra{"zz": json.RawMessage(`null`)}},
		{in: `{"A":"x"}`, want: Extra{"A": json.RawMessage(`"x"`)}},
		{in: `{"\u0061":"x"}`}, // "a", written with an escape
		{in: `{}`},
		{in: `null`},
	}
	known := jsonNames(reflect.TypeFor[doc]())
	for _, tc := range tests {
		// The names are read without a second decode exactly when every
		// one is modelled as written (null and escaped names take the
		// general path).
		fast := tc.want == nil && tc.in != `null` && !strings.Contains(tc.in, `\u0061`)
		if got := onlyKnown([]byte(tc.in), known); got != fast {
			t.Errorf("%s: onlyKnown = %v, want %v", tc.in, got, fast)
		}
		var d doc
		got, err := unmarshalWithExtra([]byte(tc.in), &d)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: Extra (-want +got):\n%s", tc.in, diff)
		}
	}
}
