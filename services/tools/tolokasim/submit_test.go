package tolokasim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSubmitDedupeByRetryID(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	h.startAssignment(poolID, "u1")
	h.srv.SetUser("u1", UserState{TopPerformer: true})

	first := h.expect(h.submit(map[string]any{"pool_id": json.Number(poolID), "user_id": "u1", "retry_id": "r-1", "reward": json.Number("10.52")}), http.StatusOK)
	// The Toloker's state changes and the retry carries a different reward:
	// the duplicate still gets the first answer and records nothing.
	h.srv.SetUser("u1", UserState{Restricted: true})
	again := h.expect(h.submit(map[string]any{"pool_id": json.Number(poolID), "user_id": "u1", "retry_id": "r-1", "reward": json.Number("99")}), http.StatusOK)
	if diff := cmp.Diff(string(first.body), string(again.body)); diff != "" {
		t.Errorf("duplicate answer differs (-first +again):\n%s", diff)
	}
	want := `{"speed_quality_balance_match":true,"restriction_match":false,"filter_match":true}`
	if string(first.body) != want {
		t.Errorf("answer %s, want %s", first.body, want)
	}
	rep := h.srv.Ledger(LedgerFilter{PoolID: poolID})
	if rep.Count != 1 || rep.DuplicatesRefused != 1 || rep.RewardTotal.String() != "10.52" {
		t.Errorf("ledger count %d duplicates %d total %s, want 1 1 10.52", rep.Count, rep.DuplicatesRefused, rep.RewardTotal)
	}

	// Same retry_id in another pool is a different submit.
	pool2 := h.openPool(nil)
	h.startAssignment(pool2, "u1")
	h.expect(h.submit(map[string]any{"pool_id": pool2, "user_id": "u1", "retry_id": "r-1", "reward": json.Number("1")}), http.StatusOK)
	if rep := h.srv.Ledger(LedgerFilter{}); rep.Count != 2 {
		t.Errorf("ledger count %d, want 2", rep.Count)
	}
}

func TestSubmitSessionAndExactTotals(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	a := h.startAssignment(poolID, "u1")
	rewards := []string{"0.1", "0.2", "10.52"}
	for i, rw := range rewards {
		body := map[string]any{
			"pool_id": poolID, "user_id": "u1", "reward": json.Number(rw), "quality": json.Number("0.21"),
			"custom_log": `{"ip":"1.2.3.4"}`, "start_time": "2024-08-22T14:00:00Z", "end_time": "2024-08-22T14:15:00Z",
			"golden_tasks_count": 2, "training_tasks_count": 3, "real_tasks_count": 4,
			"close_session": i == len(rewards)-1,
		}
		h.expect(h.submit(body), http.StatusOK)
		h.clock.Advance(time.Second)
	}
	rep := h.srv.Ledger(LedgerFilter{UserID: "u1"})
	if rep.Count != 3 || rep.RewardTotal.String() != "10.82" {
		t.Errorf("count %d total %s, want 3 10.82", rep.Count, rep.RewardTotal)
	}
	e := rep.Entries[0]
	if e.Quality != "0.21" || e.CustomLog != `{"ip":"1.2.3.4"}` || e.RealTasksCount != 4 || e.AssignmentID != a.ID || e.Account != testAcct {
		t.Errorf("entry = %+v", e)
	}

	got := h.expect(h.do("GET", "/api/v1/assignments/"+a.ID, testKey, nil), http.StatusOK)
	m := got.obj(t)
	if m["status"] != AssignmentSubmitted || m["submitted"] != FormatTime(h.clock.Now().Add(-time.Second)) {
		t.Errorf("after close_session: %s", got.body)
	}
	if !strings.Contains(string(got.body), `"reward":10.82`) {
		t.Errorf("assignment reward is not the exact session sum: %s", got.body)
	}

	// The admin ledger renders the total as a string.
	r := h.expect(h.do("GET", "/_admin/ledger?pool_id="+poolID+"&user_id=u1", "", nil), http.StatusOK).obj(t)
	if r["reward_total"] != "10.82" || r["count"] != float64(3) {
		t.Errorf("admin ledger total %v count %v", r["reward_total"], r["count"])
	}

	// The session is over: further submits need a new assignment.
	res := h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": "u1", "reward": json.Number("1")}), http.StatusConflict)
	if got := res.code(t); got != CodeConflictState {
		t.Errorf("code %q, want %q", got, CodeConflictState)
	}
}

func TestSubmitFlags(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	projectOf := func(poolID string) string {
		return h.expect(h.do("GET", "/api/v1/pools/"+poolID, testKey, nil), http.StatusOK).obj(t)["project_id"].(string)
	}
	otherPool := h.openPool(nil)

	type flags = SubmitResponse
	cases := []struct {
		name  string
		state UserState
		setup func(t *testing.T, user string)
		want  flags
	}{
		{"default", UserState{}, nil, flags{false, false, true}},
		{"top performer", UserState{TopPerformer: true}, nil, flags{true, false, true}},
		{"filtered out", UserState{FilteredOut: true}, nil, flags{false, false, false}},
		{"restricted", UserState{Restricted: true}, nil, flags{false, true, true}},
		{"restriction on the pool", UserState{}, func(t *testing.T, user string) {
			h.expect(h.do("PUT", "/api/v1/user-restrictions", testKey, map[string]any{"scope": "POOL", "user_id": user, "pool_id": poolID}), http.StatusOK)
		}, flags{false, true, true}},
		{"restriction on the project", UserState{}, func(t *testing.T, user string) {
			h.expect(h.do("PUT", "/api/v1/user-restrictions", testKey, map[string]any{"scope": "PROJECT", "user_id": user, "project_id": projectOf(poolID)}), http.StatusOK)
		}, flags{false, true, true}},
		{"restriction on all projects", UserState{}, func(t *testing.T, user string) {
			h.expect(h.do("PUT", "/api/v1/user-restrictions", testKey, map[string]any{"scope": "ALL_PROJECTS", "user_id": user, "private_comment": "spam"}), http.StatusOK)
		}, flags{false, true, true}},
		{"restriction on another pool", UserState{}, func(t *testing.T, user string) {
			h.expect(h.do("PUT", "/api/v1/user-restrictions", testKey, map[string]any{"scope": "POOL", "user_id": user, "pool_id": otherPool}), http.StatusOK)
		}, flags{false, false, true}},
		{"expired restriction", UserState{}, func(t *testing.T, user string) {
			h.expect(h.do("PUT", "/api/v1/user-restrictions", testKey, map[string]any{
				"scope": "ALL_PROJECTS", "user_id": user, "will_expire": FormatTime(h.clock.Now().Add(-time.Second))}), http.StatusOK)
		}, flags{false, false, true}},
		{"restriction by another requester", UserState{}, func(t *testing.T, user string) {
			h.expect(h.do("PUT", "/api/v1/user-restrictions", otherKey, map[string]any{"scope": "ALL_PROJECTS", "user_id": user}), http.StatusOK)
		}, flags{false, false, true}},
		{"deleted restriction", UserState{}, func(t *testing.T, user string) {
			r := h.expect(h.do("PUT", "/api/v1/user-restrictions", testKey, map[string]any{"scope": "POOL", "user_id": user, "pool_id": poolID}), http.StatusOK)
			id := r.obj(t)["id"].(string)
			h.expect(h.do("DELETE", "/api/v1/user-restrictions/"+id, testKey, nil), http.StatusNoContent)
			h.expect(h.do("DELETE", "/api/v1/user-restrictions/"+id, testKey, nil), http.StatusNotFound)
		}, flags{false, false, true}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			user := "flag-user-" + string(rune('a'+i))
			h.startAssignment(poolID, user)
			h.srv.SetUser(user, tc.state)
			if tc.setup != nil {
				tc.setup(t, user)
			}
			var got SubmitResponse
			r := h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": user, "reward": json.Number("0.5")}), http.StatusOK)
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("flags (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("admin user state", func(t *testing.T) {
		h.expect(h.do("PUT", "/_admin/users/admin-user", "", map[string]any{"restricted": true, "top_performer": true}), http.StatusOK)
		if diff := cmp.Diff(UserState{Restricted: true, TopPerformer: true}, h.srv.User("admin-user")); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		h.expect(h.do("PUT", "/_admin/users/admin-user", "", map[string]any{"banned": true}), http.StatusBadRequest)
	})
}

func TestSubmitPreconditions(t *testing.T) {
	h := newHarness(t, nil)
	openPool := h.openPool(nil)
	closedPool := h.createPool(testKey, h.createProject(testKey), nil)
	rivalPool := h.createPool(otherKey, h.createProject(otherKey), nil)
	h.startAssignment(openPool, "active")

	cases := []struct {
		name       string
		poolID     string
		user       string
		wantStatus int
		wantCode   string
	}{
		{"ok", openPool, "active", http.StatusOK, ""},
		{"closed pool", closedPool, "active", http.StatusConflict, CodeInappropriateStatus},
		{"another account's pool", rivalPool, "active", http.StatusNotFound, CodeDoesNotExist},
		{"unknown pool", "987654", "active", http.StatusNotFound, CodeDoesNotExist},
		{"no active assignment", openPool, "stranger", http.StatusConflict, CodeConflictState},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.srv.Ledger(LedgerFilter{}).Count
			r := h.submit(map[string]any{"pool_id": tc.poolID, "user_id": tc.user, "reward": json.Number("1")})
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.wantStatus, r.body)
			}
			after := h.srv.Ledger(LedgerFilter{}).Count
			if tc.wantCode == "" {
				if after != before+1 {
					t.Errorf("ledger grew by %d, want 1", after-before)
				}
				return
			}
			if got := r.code(t); got != tc.wantCode {
				t.Errorf("code %q, want %q", got, tc.wantCode)
			}
			if after != before {
				t.Errorf("refused submit was recorded")
			}
		})
	}
}

func TestSubmitValidation(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	h.startAssignment(poolID, "u")
	base := func() map[string]any {
		return map[string]any{"pool_id": json.Number(poolID), "user_id": "u", "reward": json.Number("1.5")}
	}
	cases := []struct {
		name string
		edit func(map[string]any)
		want map[string]string
	}{
		{"valid", func(map[string]any) {}, nil},
		{"pool_id as string", func(b map[string]any) { b["pool_id"] = poolID }, nil},
		{"reward 0", func(b map[string]any) { b["reward"] = json.Number("0") }, nil},
		{"quality bounds", func(b map[string]any) { b["quality"] = json.Number("1") }, nil},
		{"missing pool_id", func(b map[string]any) { delete(b, "pool_id") }, map[string]string{"pool_id": FieldValueRequired}},
		{"pool_id not a number", func(b map[string]any) { b["pool_id"] = "pool-7" }, map[string]string{"pool_id": FieldIntegerExpected}},
		{"pool_id float", func(b map[string]any) { b["pool_id"] = json.Number("7.5") }, map[string]string{"pool_id": FieldIntegerExpected}},
		{"missing user_id", func(b map[string]any) { delete(b, "user_id") }, map[string]string{"user_id": FieldValueRequired}},
		{"missing reward", func(b map[string]any) { delete(b, "reward") }, map[string]string{"reward": FieldValueRequired}},
		{"negative reward", func(b map[string]any) { b["reward"] = json.Number("-0.01") }, map[string]string{"reward": FieldValueLessThanMin}},
		{"reward as string", func(b map[string]any) { b["reward"] = "1.5" }, map[string]string{"reward": FieldFloatExpected}},
		{"quality above 1", func(b map[string]any) { b["quality"] = json.Number("1.01") }, map[string]string{"quality": FieldValueGreaterThanMax}},
		{"quality below 0", func(b map[string]any) { b["quality"] = json.Number("-0.5") }, map[string]string{"quality": FieldValueLessThanMin}},
		{"negative count", func(b map[string]any) { b["real_tasks_count"] = -1 }, map[string]string{"real_tasks_count": FieldValueLessThanMin}},
		{"custom_log object", func(b map[string]any) { b["custom_log"] = map[string]any{} }, map[string]string{"custom_log": FieldStringExpected}},
		{"custom_log not JSON", func(b map[string]any) { b["custom_log"] = "not json" }, map[string]string{"custom_log": FieldJSONExpected}},
		{"bad start_time", func(b map[string]any) { b["start_time"] = "noon" }, map[string]string{"start_time": FieldInvalidDateTime}},
		{"end before start", func(b map[string]any) {
			b["start_time"], b["end_time"] = "2024-08-22T14:15:00", "2024-08-22T14:00:00"
		}, map[string]string{"end_time": FieldInvalidValue}},
		{"close_session not bool", func(b map[string]any) { b["close_session"] = "yes" }, map[string]string{"close_session": FieldBooleanExpected}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := base()
			tc.edit(body)
			r := h.submit(body)
			if tc.want == nil {
				h.expect(r, http.StatusOK)
				return
			}
			if diff := cmp.Diff(tc.want, r.fieldCodes(t)); diff != "" {
				t.Errorf("(-want +got):\n%s\nbody %s", diff, r.body)
			}
		})
	}
}

func TestUserSkills(t *testing.T) {
	h := newHarness(t, nil)
	r := h.expect(h.do("PUT", "/api/v1/user-skills", testKey, map[string]any{"skill_id": "42", "user_id": "u", "value": json.Number("85.5"), "reason": "exam"}), http.StatusOK)
	first := r.obj(t)
	if first["value"] != 85.5 || first["skill_id"] != "42" || first["id"] == "" {
		t.Errorf("skill = %s", r.body)
	}
	r = h.expect(h.do("PUT", "/api/v1/user-skills", testKey, map[string]any{"skill_id": "42", "user_id": "u", "value": 90}), http.StatusOK)
	if got := r.obj(t); got["id"] != first["id"] || got["value"] != float64(90) {
		t.Errorf("update = %s, want same id with value 90", r.body)
	}
	for _, v := range []string{"-1", "100.5"} {
		if got := h.do("PUT", "/api/v1/user-skills", testKey, map[string]any{"skill_id": "42", "user_id": "u", "value": json.Number(v)}).fieldCodes(t); len(got) != 1 || got["value"] == "" {
			t.Errorf("value %s: payload %v, want a value error", v, got)
		}
	}
}

// TestUserRestrictionsListAndDecideTheFlag: restrictions are listed with
// Toloka's filters, read by id and deleted; restriction_match comes from
// them only. The admin API's "restricted" is Toloka's own platform ban, a
// SYSTEM restriction every requester sees.
func TestUserRestrictionsListAndDecideTheFlag(t *testing.T) {
	h := newHarness(t, nil)
	poolID := h.openPool(nil)
	projectID := h.expect(h.do("GET", "/api/v1/pools/"+poolID, testKey, nil), http.StatusOK).obj(t)["project_id"].(string)
	put := func(key string, body map[string]any) string {
		t.Helper()
		return h.expect(h.do("PUT", "/api/v1/user-restrictions", key, body), http.StatusOK).obj(t)["id"].(string)
	}
	onPool := put(testKey, map[string]any{"scope": "POOL", "user_id": "u1", "pool_id": poolID, "private_comment": "spam"})
	onProject := put(testKey, map[string]any{"scope": "PROJECT", "user_id": "u2", "project_id": projectID})
	everywhere := put(testKey, map[string]any{"scope": "ALL_PROJECTS", "user_id": "u1", "will_expire": "2030-01-01T00:00:00"})
	put(otherKey, map[string]any{"scope": "ALL_PROJECTS", "user_id": "u1"})
	list := func(query string) []string {
		t.Helper()
		body := h.expect(h.do("GET", "/api/v1/user-restrictions?"+query, testKey, nil), http.StatusOK).obj(t)
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
		{"", []string{onPool, onProject, everywhere}},
		{"user_id=u1", []string{onPool, everywhere}},
		{"scope=PROJECT", []string{onProject}},
		{"project_id=" + projectID, []string{onProject}},
		{"pool_id=" + poolID, []string{onPool}},
		{"user_id=u1&scope=POOL", []string{onPool}},
		{"sort=-id&limit=1", []string{everywhere}},
		{"sort=id&id_gt=" + onPool, []string{onProject, everywhere}},
	} {
		if diff := cmp.Diff(tc.want, list(tc.query)); diff != "" {
			t.Errorf("?%s (-want +got):\n%s", tc.query, diff)
		}
	}
	got := h.expect(h.do("GET", "/api/v1/user-restrictions/"+onPool, testKey, nil), http.StatusOK).obj(t)
	if got["scope"] != "POOL" || got["user_id"] != "u1" || got["pool_id"] != poolID || got["private_comment"] != "spam" || got["created"] == nil {
		t.Errorf("GET by id = %v", got)
	}
	if r := h.do("GET", "/api/v1/user-restrictions?scope=EVERYWHERE", testKey, nil); r.status != http.StatusBadRequest {
		t.Errorf("unknown scope: %d, want 400", r.status)
	}

	// The flag follows the restrictions, and only them.
	h.startAssignment(poolID, "u1")
	h.startAssignment(poolID, "u3")
	flag := func(user string) bool {
		t.Helper()
		var resp SubmitResponse
		r := h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": user, "reward": json.Number("0.01")}), http.StatusOK)
		if err := json.Unmarshal(r.body, &resp); err != nil {
			t.Fatal(err)
		}
		return resp.RestrictionMatch
	}
	if !flag("u1") || flag("u3") {
		t.Errorf("restriction_match u1 %v u3 %v, want true false", flag("u1"), flag("u3"))
	}
	for _, id := range []string{onPool, everywhere} {
		h.expect(h.do("DELETE", "/api/v1/user-restrictions/"+id, testKey, nil), http.StatusNoContent)
	}
	if flag("u1") {
		t.Error("restriction_match after every restriction of u1 was deleted")
	}

	// Toloka's own ban (the admin API's "restricted") is a SYSTEM
	// restriction: listed for every requester, and it sets the flag.
	h.srv.SetUser("u3", UserState{Restricted: true})
	if !flag("u3") {
		t.Error("a SYSTEM restriction does not set restriction_match")
	}
	body := h.expect(h.do("GET", "/api/v1/user-restrictions?user_id=u3", otherKey, nil), http.StatusOK).obj(t)
	if items := body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["scope"] != "SYSTEM" {
		t.Errorf("another requester lists %v, want u3's SYSTEM restriction", items)
	}
	if !h.srv.User("u3").Restricted {
		t.Error("User does not report the SYSTEM restriction")
	}
	h.srv.SetUser("u3", UserState{})
	if flag("u3") || len(list("user_id=u3")) != 0 {
		t.Error("lifting Toloka's own ban left a restriction")
	}
}
