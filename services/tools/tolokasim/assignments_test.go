package tolokasim

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var assignmentIDPattern = regexp.MustCompile(`^[0-9a-f]{10}--[0-9a-f]{24}$`)

func TestGetAssignment(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	a := h.startAssignment(poolID, "toloker-1")
	if !assignmentIDPattern.MatchString(a.ID) {
		t.Errorf("assignment id %q does not look like Toloka's", a.ID)
	}
	r := h.expect(h.do("GET", "/api/v1/assignments/"+a.ID, testKey, nil), http.StatusOK)
	got := r.obj(t)
	want := map[string]any{
		"id":            a.ID,
		"task_suite_id": a.TaskSuiteID,
		"pool_id":       poolID,
		"user_id":       "toloker-1",
		"status":        AssignmentActive,
		"reward":        float64(0),
		"tasks":         []any{},
		"solutions":     []any{},
		"created":       FormatTime(h.clock.Now()),
		"owner":         map[string]any{"id": testAcct, "myself": true, "company_id": testAcct},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("assignment (-want +got):\n%s", diff)
	}
	h.expect(h.do("GET", "/api/v1/assignments/"+a.ID, otherKey, nil), http.StatusNotFound)
	h.expect(h.do("GET", "/api/v1/assignments/0000000001--000000000000000000000000", testKey, nil), http.StatusNotFound)

	// The admin API creates the same kind of assignment.
	r = h.expect(h.do("POST", "/_admin/assignments", "", map[string]any{"pool_id": json.Number(poolID), "user_id": "toloker-2"}), http.StatusCreated)
	if got := r.obj(t); got["user_id"] != "toloker-2" || got["status"] != AssignmentActive {
		t.Errorf("admin assignment = %s", r.body)
	}
}

func TestCreateAssignmentPreconditions(t *testing.T) {
	h := newHarness(t, nil)
	closedPool := h.createPool(testKey, h.createProject(testKey), nil)
	openPool := h.openPool(nil)
	h.startAssignment(openPool, "busy")

	cases := []struct {
		name     string
		poolID   string
		userID   string
		wantCode string
	}{
		{"closed pool", closedPool, "u", CodeInappropriateStatus},
		{"unknown pool", "424242", "u", CodeDoesNotExist},
		{"already active", openPool, "busy", CodeThereIsActiveAssignment},
		{"no user", openPool, "", CodeValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.srv.CreateAssignment(tc.poolID, tc.userID)
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("err = %v, want *Error", err)
			}
			if e.Code != tc.wantCode {
				t.Errorf("code %q, want %q", e.Code, tc.wantCode)
			}
		})
	}
}

func TestAssignmentTransitions(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(func(p map[string]any) { p["assignment_max_duration_seconds"] = 60 })
	n := 0
	// in returns an assignment in the given status.
	in := func(t *testing.T, status string) string {
		t.Helper()
		n++
		user := "toloker-" + strings.Repeat("x", n)
		a := h.startAssignment(poolID, user)
		switch status {
		case AssignmentActive:
		case AssignmentExpired:
			// Expire it by moving the clock past its deadline, then check.
			h.clock.Advance(61 * time.Second)
			if got, _ := h.srv.GetAssignment(a.ID); got.Status != AssignmentExpired {
				t.Fatalf("status %s, want EXPIRED", got.Status)
			}
		default:
			h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": user, "reward": json.Number("1"), "close_session": true}), http.StatusOK)
			switch status {
			case AssignmentAccepted:
				h.expect(h.do("PATCH", "/api/v1/assignments/"+a.ID, testKey, map[string]any{"status": "ACCEPTED"}), http.StatusOK)
			case AssignmentRejected:
				h.expect(h.do("PATCH", "/api/v1/assignments/"+a.ID, testKey, map[string]any{"status": "REJECTED", "public_comment": "no"}), http.StatusOK)
			}
		}
		return a.ID
	}

	long := strings.Repeat("é", maxPublicCommentRunes)
	cases := []struct {
		name       string
		from       string
		patch      map[string]any
		wantStatus int
		wantCode   string
	}{
		{"submitted to accepted", AssignmentSubmitted, map[string]any{"status": "ACCEPTED"}, http.StatusOK, ""},
		{"submitted to accepted with comment", AssignmentSubmitted, map[string]any{"status": "ACCEPTED", "public_comment": "Well done"}, http.StatusOK, ""},
		{"submitted to rejected", AssignmentSubmitted, map[string]any{"status": "REJECTED", "public_comment": "Boxes are off"}, http.StatusOK, ""},
		{"rejected to accepted", AssignmentRejected, map[string]any{"status": "ACCEPTED", "public_comment": "Fixed"}, http.StatusOK, ""},
		{"comment of 2048 characters", AssignmentSubmitted, map[string]any{"status": "REJECTED", "public_comment": long}, http.StatusOK, ""},
		{"active to accepted", AssignmentActive, map[string]any{"status": "ACCEPTED"}, http.StatusConflict, CodeInappropriateStatus},
		{"active to rejected", AssignmentActive, map[string]any{"status": "REJECTED", "public_comment": "x"}, http.StatusConflict, CodeInappropriateStatus},
		{"accepted to rejected", AssignmentAccepted, map[string]any{"status": "REJECTED", "public_comment": "x"}, http.StatusConflict, CodeInappropriateStatus},
		{"accepted to accepted", AssignmentAccepted, map[string]any{"status": "ACCEPTED"}, http.StatusConflict, CodeInappropriateStatus},
		{"rejected to rejected", AssignmentRejected, map[string]any{"status": "REJECTED", "public_comment": "x"}, http.StatusConflict, CodeInappropriateStatus},
		{"expired to accepted", AssignmentExpired, map[string]any{"status": "ACCEPTED"}, http.StatusConflict, CodeInappropriateStatus},
		{"reject without comment", AssignmentSubmitted, map[string]any{"status": "REJECTED"}, http.StatusBadRequest, CodeValidation},
		{"comment of 2049 characters", AssignmentSubmitted, map[string]any{"status": "REJECTED", "public_comment": long + "x"}, http.StatusBadRequest, CodeValidation},
		{"to submitted", AssignmentActive, map[string]any{"status": "SUBMITTED"}, http.StatusBadRequest, CodeValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := in(t, tc.from)
			r := h.do("PATCH", "/api/v1/assignments/"+id, testKey, tc.patch)
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.wantStatus, r.body)
			}
			got := r.obj(t)
			if tc.wantCode != "" {
				if got["code"] != tc.wantCode {
					t.Errorf("code %v, want %s", got["code"], tc.wantCode)
				}
				after, _ := h.srv.GetAssignment(id)
				if after.Status != tc.from {
					t.Errorf("refused patch changed status %s to %s", tc.from, after.Status)
				}
				return
			}
			if got["status"] != tc.patch["status"] {
				t.Errorf("status %v, want %v", got["status"], tc.patch["status"])
			}
			stamp := map[any]string{"ACCEPTED": "accepted", "REJECTED": "rejected"}[tc.patch["status"]]
			if got[stamp] != FormatTime(h.clock.Now()) {
				t.Errorf("%s = %v, want %s", stamp, got[stamp], FormatTime(h.clock.Now()))
			}
			if c, ok := tc.patch["public_comment"]; ok && got["public_comment"] != c {
				t.Errorf("public_comment = %v, want %v", got["public_comment"], c)
			}
		})
	}
	t.Run("another account", func(t *testing.T) {
		id := in(t, AssignmentSubmitted)
		h.expect(h.do("PATCH", "/api/v1/assignments/"+id, otherKey, map[string]any{"status": "ACCEPTED"}), http.StatusNotFound)
	})
}

func TestAssignmentExpiresByClock(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(func(p map[string]any) { p["assignment_max_duration_seconds"] = 60 })
	a := h.startAssignment(poolID, "slow")
	get := func() map[string]any {
		return h.expect(h.do("GET", "/api/v1/assignments/"+a.ID, testKey, nil), http.StatusOK).obj(t)
	}
	h.clock.Advance(59*time.Second + 999*time.Millisecond)
	if st := get()["status"]; st != AssignmentActive {
		t.Fatalf("just before the deadline: %v, want ACTIVE", st)
	}
	h.clock.Advance(time.Millisecond)
	got := get()
	if got["status"] != AssignmentExpired || got["expired"] != FormatTime(a.Created.Add(time.Minute)) {
		t.Fatalf("at the deadline: status %v expired %v", got["status"], got["expired"])
	}
	r := h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": "slow", "reward": json.Number("1")}), http.StatusConflict)
	if got := r.code(t); got != CodeConflictState {
		t.Errorf("submit after expiry: code %q, want %q", got, CodeConflictState)
	}
	// The Toloker can start again.
	b := h.startAssignment(poolID, "slow")
	if b.ID == a.ID {
		t.Error("new assignment reused the expired id")
	}
}

func TestListAssignments(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	var ids []string
	for _, u := range []string{"a", "b", "c"} {
		ids = append(ids, h.startAssignment(poolID, u).ID)
	}
	h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": "b", "reward": json.Number("1"), "close_session": true}), http.StatusOK)

	got, _ := listIDs(t, h, "/api/v1/assignments?pool_id="+poolID, testKey, 2)
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got, _ = listIDs(t, h, "/api/v1/assignments?status=SUBMITTED&pool_id="+poolID, testKey, 10)
	if diff := cmp.Diff([]string{ids[1]}, got); diff != "" {
		t.Errorf("SUBMITTED (-want +got):\n%s", diff)
	}
}

func TestHonorAutoAccept(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HonorAutoAccept = true })
	auto := h.openPool(nil) // auto_accept_solutions defaults to true
	review := h.openPool(func(p map[string]any) {
		p["auto_accept_solutions"] = false
		p["auto_accept_period_day"] = 2
	})
	a := h.startAssignment(auto, "u")
	b := h.startAssignment(review, "u")
	for _, pool := range []string{auto, review} {
		h.expect(h.submit(map[string]any{"pool_id": pool, "user_id": "u", "reward": json.Number("1"), "close_session": true}), http.StatusOK)
	}
	if got, _ := h.srv.GetAssignment(a.ID); got.Status != AssignmentAccepted {
		t.Errorf("auto-accept pool: %s, want ACCEPTED", got.Status)
	}
	if got, _ := h.srv.GetAssignment(b.ID); got.Status != AssignmentSubmitted {
		t.Errorf("review pool: %s, want SUBMITTED", got.Status)
	}
	h.clock.Advance(48 * time.Hour)
	if got, _ := h.srv.GetAssignment(b.ID); got.Status != AssignmentAccepted {
		t.Errorf("review pool after 2 days: %s, want ACCEPTED", got.Status)
	}
}

// TestListAssignmentsAsTolokaDocumentsIt: GET /assignments needs pool_id,
// task_suite_id or task_id; filters by status (a comma list), user_id and
// submitted ranges; sorts by any date, descending with "-"; pages with
// sort=id and id_gt.
func TestListAssignmentsAsTolokaDocumentsIt(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	otherPool := h.openPool(nil)
	var ids []string
	for i, u := range []string{"a", "b", "c", "d"} {
		ids = append(ids, h.startAssignment(poolID, u).ID)
		if i < 3 { // d stays ACTIVE
			h.clock.Advance(time.Minute)
			h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": u, "reward": json.Number("1"), "close_session": true}), http.StatusOK)
		}
	}
	h.startAssignment(otherPool, "a")
	submitted := func(i int) string {
		a, err := h.srv.GetAssignment(ids[i])
		if err != nil {
			t.Fatal(err)
		}
		return FormatTime(a.Submitted)
	}
	h.expect(h.do("PATCH", "/api/v1/assignments/"+ids[2], testKey, map[string]any{"status": "REJECTED", "public_comment": "no"}), http.StatusOK)

	// One of pool_id, task_suite_id, task_id is required.
	if codes := h.do("GET", "/api/v1/assignments?status=SUBMITTED", testKey, nil).fieldCodes(t); codes["pool_id"] != FieldValueRequired {
		t.Errorf("no pool_id: field codes %v, want pool_id VALUE_REQUIRED", codes)
	}
	list := func(query string) []string {
		t.Helper()
		body := h.expect(h.do("GET", "/api/v1/assignments?"+query, testKey, nil), http.StatusOK).obj(t)
		var out []string
		for _, it := range body["items"].([]any) {
			out = append(out, it.(map[string]any)["id"].(string))
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"pool_id=" + poolID, ids},
		{"pool_id=" + poolID + "&status=SUBMITTED", []string{ids[0], ids[1]}},
		{"pool_id=" + poolID + "&status=SUBMITTED,REJECTED", ids[:3]},
		{"pool_id=" + poolID + "&status=ACTIVE&user_id=d", []string{ids[3]}},
		{"pool_id=" + poolID + "&user_id=a", []string{ids[0]}},
		{"pool_id=" + poolID + "&submitted_gte=" + submitted(1), []string{ids[1], ids[2]}},
		{"pool_id=" + poolID + "&submitted_lt=" + submitted(1), []string{ids[0]}},
		{"pool_id=" + poolID + "&submitted_gt=" + submitted(0) + "&submitted_lte=" + submitted(1), []string{ids[1]}},
		{"pool_id=" + poolID + "&status=SUBMITTED,REJECTED&sort=-submitted", []string{ids[2], ids[1], ids[0]}},
		{"pool_id=" + poolID + "&sort=-id&limit=2", []string{ids[3], ids[2]}},
		{"pool_id=" + poolID + "&sort=id&id_gt=" + ids[1], []string{ids[2], ids[3]}},
		{"pool_id=" + poolID + "&rejected_gte=" + submitted(0), []string{ids[2]}},
	} {
		if diff := cmp.Diff(tc.want, list(tc.query)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.query, diff)
		}
	}
	// Toloka's paging: sort=id, id_gt=<last>, while has_more.
	got, pages := listIDs(t, h, "/api/v1/assignments?pool_id="+poolID, testKey, 3)
	if diff := cmp.Diff(ids, got); diff != "" || pages != 2 {
		t.Errorf("paged in %d pages (-want +got):\n%s", pages, diff)
	}
	for _, bad := range []string{"status=DONE", "sort=reward", "submitted_gte=yesterday", "limit=100001"} {
		if r := h.do("GET", "/api/v1/assignments?pool_id="+poolID+"&"+bad, testKey, nil); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", bad, r.status, r.body)
		}
	}
	// Another account sees none of them.
	if r := h.expect(h.do("GET", "/api/v1/assignments?pool_id="+poolID, otherKey, nil), http.StatusOK); len(r.obj(t)["items"].([]any)) != 0 {
		t.Errorf("another account lists %s", r.body)
	}
}
