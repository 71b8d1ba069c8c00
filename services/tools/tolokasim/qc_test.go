package tolokasim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// qcPool opens a pool with the given quality_control.configs JSON.
func (h *harness) qcPool(configs string) string {
	h.t.Helper()
	var cfgs any
	if err := json.Unmarshal([]byte(configs), &cfgs); err != nil {
		h.t.Fatal(err)
	}
	return h.openPool(func(p map[string]any) { p["quality_control"] = map[string]any{"configs": cfgs} })
}

// userRestrictions lists the account's restrictions of userID as
// "scope until" strings.
func (h *harness) userRestrictions(userID string) []string {
	h.t.Helper()
	r := h.expect(h.do("GET", "/api/v1/user-restrictions?user_id="+userID, testKey, nil), http.StatusOK)
	var out []string
	for _, it := range r.obj(h.t)["items"].([]any) {
		m := it.(map[string]any)
		until, _ := m["will_expire"].(string)
		out = append(out, m["scope"].(string)+" "+until)
	}
	return out
}

// skillValue is userID's value of skill, or "" when unset.
func (h *harness) skillValue(skill, userID string) string {
	h.t.Helper()
	r := h.expect(h.do("GET", "/api/v1/user-skills?user_id="+userID+"&skill_id="+skill, testKey, nil), http.StatusOK)
	items := r.obj(h.t)["items"].([]any)
	if len(items) == 0 {
		return ""
	}
	return fmt.Sprint(items[0].(map[string]any)["value"])
}

// TestRulesActOnExternalSubmits applies each collector of seed 004 to the
// submits it reads, and each action's effect: restrictions with their
// expiry, skill values, rejections.
func TestRulesActOnExternalSubmits(t *testing.T) {
	const start = "2026-03-10T12:00:00Z"
	for _, tc := range []struct {
		name    string
		configs string
		submits []map[string]any
		// review rejects the first n assignments after the submits.
		review          int
		wantBans        []string
		wantSkill       [2]string // skill id, value
		wantRejected    int
		wantRestrictAns []bool // restriction_match of each answer, when given
	}{
		{
			name: "seed 004: golden set ban and skill",
			configs: `[{"collector_config": {"type": "GOLDEN_SET", "parameters": {"history_size": 10}}, "rules": [
				{"conditions": [{"key": "golden_set_answers_count", "operator": "GT", "value": 7}],
				 "action": {"type": "SET_SKILL_FROM_OUTPUT_FIELD", "parameters": {"skill_id": "42", "from_field": "golden_set_correct_answers_rate"}}},
				{"conditions": [{"key": "golden_set_answers_count", "operator": "GT", "value": 7}, {"key": "golden_set_correct_answers_rate", "operator": "LT", "value": 75}],
				 "action": {"type": "RESTRICTION_V2", "parameters": {"scope": "PROJECT", "duration_unit": "DAYS", "duration": 10, "private_comment": "Control tasks were not completed"}}}]}]`,
			submits:         repeat(9, map[string]any{"golden_tasks_count": 1, "quality": json.Number("0.5")}),
			wantBans:        []string{"PROJECT 2026-03-20T12:00:00.000"},
			wantSkill:       [2]string{"42", "50"},
			wantRestrictAns: []bool{false, false, false, false, false, false, false, false, true},
		},
		{
			name: "golden set, good work",
			configs: `[{"collector_config": {"type": "GOLDEN_SET"}, "rules": [
				{"conditions": [{"key": "golden_set_answers_count", "operator": "GT", "value": 7}, {"key": "golden_set_correct_answers_rate", "operator": "LT", "value": 75}],
				 "action": {"type": "RESTRICTION_V2", "parameters": {"scope": "PROJECT", "duration_unit": "PERMANENT"}}}]}]`,
			submits: repeat(9, map[string]any{"golden_tasks_count": 1, "quality": json.Number("0.8")}),
		},
		{
			name: "skipped in a row",
			configs: `[{"collector_config": {"type": "SKIPPED_IN_ROW_ASSIGNMENTS"}, "rules": [
				{"conditions": [{"key": "skipped_in_row_count", "operator": "GTE", "value": 3}],
				 "action": {"type": "RESTRICTION", "parameters": {"scope": "POOL", "duration_days": 1}}}]}]`,
			submits:  append(repeat(2, map[string]any{"skipped": true}), append(repeat(1, map[string]any{"skipped": false}), repeat(3, map[string]any{"skipped": true})...)...),
			wantBans: []string{"POOL 2026-03-11T12:00:00.000"},
		},
		{
			name: "skips broken by work",
			configs: `[{"collector_config": {"type": "SKIPPED_IN_ROW_ASSIGNMENTS"}, "rules": [
				{"conditions": [{"key": "skipped_in_row_count", "operator": "GTE", "value": 3}],
				 "action": {"type": "RESTRICTION", "parameters": {"scope": "POOL"}}}]}]`,
			submits: append(repeat(2, map[string]any{"skipped": true}), append(repeat(1, map[string]any{}), repeat(2, map[string]any{"skipped": true})...)...),
		},
		{
			name: "fast submits",
			configs: `[{"collector_config": {"type": "ASSIGNMENT_SUBMIT_TIME", "parameters": {"history_size": 5, "fast_submit_threshold_seconds": 20}}, "rules": [
				{"conditions": [{"key": "fast_submitted_count", "operator": "GTE", "value": 2}],
				 "action": {"type": "SET_SKILL", "parameters": {"skill_id": "7", "skill_value": 0}}}]}]`,
			submits: []map[string]any{
				{"start_time": start, "end_time": "2026-03-10T12:00:05Z"},
				{"start_time": start, "end_time": "2026-03-10T12:01:00Z"},
				{"start_time": start, "end_time": "2026-03-10T12:00:10Z"},
			},
			wantSkill: [2]string{"7", "0"},
		},
		{
			name: "income",
			configs: `[{"collector_config": {"type": "INCOME"}, "rules": [
				{"conditions": [{"key": "income_sum_for_last_24_hours", "operator": "GTE", "value": 1.5}],
				 "action": {"type": "RESTRICTION_V2", "parameters": {"scope": "ALL_PROJECTS", "duration_unit": "HOURS", "duration": 24}}}]}]`,
			submits:  []map[string]any{{"reward": json.Number("0.75")}, {"reward": json.Number("0.75")}},
			wantBans: []string{"ALL_PROJECTS 2026-03-11T12:00:00.000"},
		},
		{
			name: "answer count",
			configs: `[{"collector_config": {"type": "ANSWER_COUNT"}, "rules": [
				{"conditions": [{"key": "assignments_accepted_count", "operator": "GTE", "value": 3}],
				 "action": {"type": "SET_SKILL", "parameters": {"skill_id": "9", "skill_value": 100}}}]}]`,
			submits:   repeat(3, map[string]any{"real_tasks_count": 1}),
			wantSkill: [2]string{"9", "100"},
		},
		{
			name: "majority vote from quality",
			configs: `[{"collector_config": {"type": "MAJORITY_VOTE", "parameters": {"answer_threshold": 3}}, "rules": [
				{"conditions": [{"key": "total_answers_count", "operator": "GTE", "value": 10}],
				 "action": {"type": "SET_SKILL_FROM_OUTPUT_FIELD", "parameters": {"skill_id": "5", "from_field": "correct_answers_rate"}}}]}]`,
			submits:   []map[string]any{{"real_tasks_count": 10, "quality": json.Number("0.3")}},
			wantSkill: [2]string{"5", "30"},
		},
		{
			name: "golden set rejects all",
			configs: `[{"collector_config": {"type": "GOLDEN_SET"}, "rules": [
				{"conditions": [{"key": "golden_set_incorrect_answers_rate", "operator": "GT", "value": 50}],
				 "action": {"type": "REJECT_ALL_ASSIGNMENTS", "parameters": {"public_comment": "Poor control answers"}}}]}]`,
			submits:      []map[string]any{{"golden_tasks_count": 2, "quality": json.Number("0.2"), "close_session": true}},
			wantRejected: 1,
		},
		{
			name: "acceptance rate on review",
			configs: `[{"collector_config": {"type": "ACCEPTANCE_RATE"}, "rules": [
				{"conditions": [{"key": "total_assignments_count", "operator": "GTE", "value": 1}, {"key": "rejected_assignments_rate", "operator": "GTE", "value": 50}],
				 "action": {"type": "RESTRICTION_V2", "parameters": {"scope": "POOL", "duration_unit": "MINUTES", "duration": 30}}}]}]`,
			submits:      []map[string]any{{"close_session": true}},
			review:       1,
			wantBans:     []string{"POOL 2026-03-10T12:30:00.000"},
			wantRejected: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			poolID := h.qcPool(tc.configs)
			var answers []bool
			for i, sub := range tc.submits {
				body := map[string]any{"pool_id": poolID, "user_id": "u1", "reward": json.Number("0.01")}
				for k, v := range sub {
					body[k] = v
				}
				if _, err := h.srv.CreateAssignment(poolID, "u1"); err != nil && !strings.Contains(err.Error(), "already has ACTIVE") {
					t.Fatalf("submit %d: %v", i, err)
				}
				r := h.expect(h.submit(body), http.StatusOK)
				answers = append(answers, r.obj(t)["restriction_match"].(bool))
			}
			for _, a := range h.srv.assignmentsOf(poolID, "u1", AssignmentSubmitted)[:tc.review] {
				h.expect(h.do("PATCH", "/api/v1/assignments/"+a, testKey, map[string]any{"status": "REJECTED", "public_comment": "no"}), http.StatusOK)
			}
			if diff := cmp.Diff(tc.wantBans, h.userRestrictions("u1")); diff != "" {
				t.Errorf("restrictions (-want +got):\n%s", diff)
			}
			if tc.wantSkill[0] != "" {
				if got := h.skillValue(tc.wantSkill[0], "u1"); got != tc.wantSkill[1] {
					t.Errorf("skill %s = %q, want %q", tc.wantSkill[0], got, tc.wantSkill[1])
				}
			}
			if got := len(h.srv.assignmentsOf(poolID, "u1", AssignmentRejected)); got != tc.wantRejected {
				t.Errorf("%d rejected assignments, want %d", got, tc.wantRejected)
			}
			if tc.wantRestrictAns != nil {
				if diff := cmp.Diff(tc.wantRestrictAns, answers); diff != "" {
					t.Errorf("restriction_match answers (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func repeat(n int, m map[string]any) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = m
	}
	return out
}

// TestFiltersTrainingsAndRestrictionsGateModelledTolokers evaluates a
// pool's filter against the profiles tests set (filter_match, and no
// assignment where Toloka would not show the task), its training
// requirement and restrictions; a Toloker without a profile is not gated.
func TestFiltersTrainingsAndRestrictionsGateModelledTolokers(t *testing.T) {
	h := newHarness(t, nil)
	filter := map[string]any{"and": []any{
		map[string]any{"or": []any{
			map[string]any{"category": "profile", "key": "country", "operator": "EQ", "value": "RU"},
			map[string]any{"category": "profile", "key": "country", "operator": "EQ", "value": "KZ"}}},
		map[string]any{"category": "profile", "key": "languages", "operator": "IN", "value": "EN"},
		map[string]any{"category": "skill", "key": "42", "operator": "GTE", "value": 75},
	}}
	poolID := h.openPool(func(p map[string]any) { p["filter"] = filter })
	h.expect(h.do("PUT", "/api/v1/user-skills", testKey, map[string]any{"skill_id": "42", "user_id": "good", "value": 80}), http.StatusOK)
	h.expect(h.do("PUT", "/api/v1/user-skills", testKey, map[string]any{"skill_id": "42", "user_id": "weak", "value": 60}), http.StatusOK)
	profile := Profile{"country": "KZ", "languages": []any{"RU", "EN"}}
	for _, u := range []string{"good", "weak"} {
		h.srv.SetUser(u, UserState{Profile: profile})
	}
	h.srv.SetUser("elsewhere", UserState{Profile: Profile{"country": "DE", "languages": []any{"EN"}}})
	for _, tc := range []struct {
		user string
		ok   bool
	}{{"good", true}, {"weak", false}, {"elsewhere", false}, {"unmodelled", true}} {
		_, err := h.srv.CreateAssignment(poolID, tc.user)
		if (err == nil) != tc.ok {
			t.Errorf("CreateAssignment(%s) = %v, want ok %v", tc.user, err, tc.ok)
		}
	}
	// The skill drops: the next submit is filtered out.
	r := h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": "good", "reward": json.Number("0.01")}), http.StatusOK)
	if !r.obj(t)["filter_match"].(bool) {
		t.Errorf("filter_match false for a matching Toloker")
	}
	h.expect(h.do("PUT", "/api/v1/user-skills", testKey, map[string]any{"skill_id": "42", "user_id": "good", "value": 70}), http.StatusOK)
	r = h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": "good", "reward": json.Number("0.01")}), http.StatusOK)
	if r.obj(t)["filter_match"].(bool) {
		t.Errorf("filter_match true after the skill dropped below the filter")
	}

	// A training requirement: only Tolokers who passed get the task.
	tr := h.expect(h.do("POST", "/api/v1/trainings", testKey, map[string]any{"project_id": h.createProject(testKey), "private_name": "T",
		"inherited_instructions": true, "training_tasks_in_task_suite_count": 3}), http.StatusCreated).obj(t)["id"].(string)
	gated := h.openPool(func(p map[string]any) {
		p["quality_control"] = map[string]any{"training_requirement": map[string]any{"training_pool_id": tr, "training_passing_skill_value": 80}}
	})
	h.srv.SetUser("trained", UserState{Profile: Profile{}, Trainings: map[string]float64{tr: 90}})
	h.srv.SetUser("failed", UserState{Profile: Profile{}, Trainings: map[string]float64{tr: 60}})
	h.srv.SetUser("untrained", UserState{Profile: Profile{}})
	for _, tc := range []struct {
		user string
		ok   bool
	}{{"trained", true}, {"failed", false}, {"untrained", false}} {
		if _, err := h.srv.CreateAssignment(gated, tc.user); (err == nil) != tc.ok {
			t.Errorf("CreateAssignment(gated, %s) = %v, want ok %v", tc.user, err, tc.ok)
		}
	}
	// A restricted modelled Toloker gets no assignment.
	h.expect(h.do("PUT", "/api/v1/user-restrictions", testKey, map[string]any{"scope": "POOL", "pool_id": gated, "user_id": "trained2"}), http.StatusOK)
	h.srv.SetUser("trained2", UserState{Profile: Profile{}, Trainings: map[string]float64{tr: 100}})
	if _, err := h.srv.CreateAssignment(gated, "trained2"); err == nil {
		t.Errorf("a restricted Toloker started an assignment")
	}
}

// TestSpeedQualityBalanceMatchIsComputed ranks Tolokers by the mean quality
// of their submits.
func TestSpeedQualityBalanceMatchIsComputed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		balance map[string]any
		want    map[string]bool
	}{
		{"top half", map[string]any{"type": "TOP_PERCENTAGE_BY_QUALITY", "percent": 50}, map[string]bool{"a": true, "b": true, "c": false, "d": false}},
		{"best one", map[string]any{"type": "BEST_CONCURRENT_USERS_BY_QUALITY", "count": 1}, map[string]bool{"a": true, "b": false, "c": false, "d": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			poolID := h.openPool(func(p map[string]any) { p["speed_quality_balance"] = tc.balance })
			quality := map[string]string{"a": "0.9", "b": "0.8", "c": "0.3", "d": "0.2"}
			for _, u := range []string{"a", "b", "c", "d"} {
				h.startAssignment(poolID, u)
				h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": u, "reward": json.Number("0.01"), "quality": json.Number(quality[u])}), http.StatusOK)
			}
			got := map[string]bool{}
			for _, u := range []string{"a", "b", "c", "d"} {
				r := h.expect(h.submit(map[string]any{"pool_id": poolID, "user_id": u, "reward": json.Number("0.01"), "quality": json.Number(quality[u])}), http.StatusOK)
				got[u] = r.obj(t)["speed_quality_balance_match"].(bool)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("speed_quality_balance_match (-want +got):\n%s", diff)
			}
		})
	}
	h := newHarness(t, nil)
	r := h.do("POST", "/api/v1/pools", testKey, func() map[string]any {
		p := h.validPool(h.createProject(testKey))
		p["speed_quality_balance"] = map[string]any{"type": "TOP_PERCENTAGE_BY_QUALITY", "percent": 15}
		return p
	}())
	if r.status != http.StatusBadRequest {
		t.Errorf("percent 15 = %d, want 400", r.status)
	}
}

// TestTrainingsAndCloseForUpdate serves /trainings apart from /pools and
// closes pools and trainings for update (last_close_reason FOR_UPDATE).
func TestTrainingsAndCloseForUpdate(t *testing.T) {
	h := newHarness(t, nil)
	prj := h.createProject(testKey)
	r := h.expect(h.do("POST", "/api/v1/trainings", testKey, map[string]any{"project_id": prj, "private_name": "T",
		"inherited_instructions": true, "training_tasks_in_task_suite_count": 3, "retry_training_after_days": 2}), http.StatusCreated)
	tr := r.obj(t)["id"].(string)
	h.expect(h.do("GET", "/api/v1/pools/"+tr, testKey, nil), http.StatusNotFound)
	h.expect(h.do("POST", "/api/v1/trainings", testKey, map[string]any{"project_id": prj, "private_name": "T"}), http.StatusBadRequest)
	op := h.expect(h.do("POST", "/api/v1/trainings/"+tr+"/open", testKey, nil), http.StatusAccepted).obj(t)
	if op["type"] != "TRAINING.OPEN" {
		t.Errorf("operation %v", op)
	}
	h.expect(h.do("POST", "/api/v1/trainings/"+tr+"/close-for-update", testKey, nil), http.StatusAccepted)
	got := h.expect(h.do("GET", "/api/v1/trainings/"+tr, testKey, nil), http.StatusOK).obj(t)
	if got["status"] != "CLOSED" || got["last_close_reason"] != "FOR_UPDATE" {
		t.Errorf("training after close-for-update = %v", got)
	}
	poolID := h.openPool(nil)
	h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/close-for-update", testKey, nil), http.StatusAccepted)
	if p := h.expect(h.do("GET", "/api/v1/pools/"+poolID, testKey, nil), http.StatusOK).obj(t); p["last_close_reason"] != "FOR_UPDATE" {
		t.Errorf("pool after close-for-update = %v", p)
	}
	h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/close-for-update", testKey, nil), http.StatusNoContent)
	h.clock.Advance(time.Second)
}

// TestSkillsAPI creates, reads and lists skills and lists and deletes
// Tolokers' values.
func TestSkillsAPI(t *testing.T) {
	h := newHarness(t, nil)
	sk := h.expect(h.do("POST", "/api/v1/skills", testKey, map[string]any{"name": "rate", "public_name": map[string]any{"EN": "Rate"}}), http.StatusCreated).obj(t)
	id := sk["id"].(string)
	if sk["hidden"] != true || sk["name"] != "rate" {
		t.Errorf("skill %v", sk)
	}
	h.expect(h.do("GET", "/api/v1/skills/"+id, testKey, nil), http.StatusOK)
	h.expect(h.do("GET", "/api/v1/skills/"+id, otherKey, nil), http.StatusNotFound)
	h.expect(h.do("POST", "/api/v1/skills", testKey, map[string]any{}), http.StatusBadRequest)
	if n := len(h.expect(h.do("GET", "/api/v1/skills?name=rate", testKey, nil), http.StatusOK).obj(t)["items"].([]any)); n != 1 {
		t.Errorf("%d skills named rate", n)
	}
	us := h.expect(h.do("PUT", "/api/v1/user-skills", testKey, map[string]any{"skill_id": id, "user_id": "u1", "value": 75.5}), http.StatusOK).obj(t)
	h.expect(h.do("GET", "/api/v1/user-skills/"+us["id"].(string), testKey, nil), http.StatusOK)
	h.expect(h.do("DELETE", "/api/v1/user-skills/"+us["id"].(string), testKey, nil), http.StatusNoContent)
	h.expect(h.do("DELETE", "/api/v1/user-skills/"+us["id"].(string), testKey, nil), http.StatusNotFound)
	if v := h.skillValue(id, "u1"); v != "" {
		t.Errorf("value after delete %q", v)
	}
}

// toloka-api-facts.md, Trainings: "Archive needs it closed and its linked
// pools archived." A training still linked from an unarchived pool's
// quality_control.training_requirement is not archived (409
// UNARCHIVED_POOLS_CONFLICT naming the pool, as for a project); once the
// pool is archived, the training is.
func TestATrainingIsNotArchivedWhileAPoolLinksToIt(t *testing.T) {
	h := newHarness(t, nil)
	prj := h.createProject(testKey)
	tr := h.expect(h.do("POST", "/api/v1/trainings", testKey, map[string]any{"project_id": prj, "private_name": "T",
		"inherited_instructions": true, "training_tasks_in_task_suite_count": 3}), http.StatusCreated).obj(t)["id"].(string)
	pool := h.createPool(testKey, prj, func(b map[string]any) {
		b["quality_control"] = map[string]any{"training_requirement": map[string]any{
			"training_pool_id": tr, "training_passing_skill_value": 70}}
	})
	if st := h.expect(h.do("GET", "/api/v1/pools/"+pool, testKey, nil), http.StatusOK).obj(t)["status"]; st != "CLOSED" {
		t.Fatalf("linked pool status %v, want CLOSED (unarchived)", st)
	}
	r := h.do("POST", "/api/v1/trainings/"+tr+"/archive", testKey, nil)
	if r.status != http.StatusConflict {
		t.Fatalf("archive of a training linked from unarchived pool %s: status %d, want 409; body %s", pool, r.status, r.body)
	}
	if got := r.code(t); got != CodeUnarchivedPoolsConflict {
		t.Errorf("code %q, want %s", got, CodeUnarchivedPoolsConflict)
	}
	if got := r.obj(t)["payload"]; !cmp.Equal(got, map[string]any{"unarchived_pool_ids": []any{pool}}) {
		t.Errorf("payload %v, want unarchived_pool_ids [%s]", got, pool)
	}
	h.expect(h.do("POST", "/api/v1/pools/"+pool+"/archive", testKey, nil), http.StatusAccepted)
	h.expect(h.do("POST", "/api/v1/trainings/"+tr+"/archive", testKey, nil), http.StatusAccepted)
}

// toloka-api-facts.md, User restrictions: "private_comment (max 499)". A
// 500-character comment is refused with 400; 499 characters are taken.
func TestARestrictionPrivateCommentIsAtMost499Characters(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do("PUT", "/api/v1/user-restrictions", testKey, map[string]any{
		"scope": "ALL_PROJECTS", "user_id": "u1", "private_comment": strings.Repeat("x", 500)})
	if r.status != http.StatusBadRequest {
		t.Fatalf("500-char private_comment: status %d, want 400; body %s", r.status, r.body)
	}
	if got := r.fieldCodes(t)["private_comment"]; got != FieldStringTooLong {
		t.Errorf("500-char private_comment: field code %q, want %s", got, FieldStringTooLong)
	}
	h.expect(h.do("PUT", "/api/v1/user-restrictions", testKey, map[string]any{
		"scope": "ALL_PROJECTS", "user_id": "u1", "private_comment": strings.Repeat("ж", 499)}), http.StatusOK)
}
