package tolokasim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCreatePoolValidation(t *testing.T) {
	h := newHarness(t, nil)
	projectID := h.createProject(testKey)
	rivalProject := h.createProject(otherKey)
	now := h.clock.Now()

	set := func(path string, v any) func(map[string]any) {
		return func(p map[string]any) {
			keys := strings.Split(path, ".")
			m := p
			for _, k := range keys[:len(keys)-1] {
				next, ok := m[k].(map[string]any)
				if !ok {
					next = map[string]any{}
					m[k] = next
				}
				m = next
			}
			m[keys[len(keys)-1]] = v
		}
	}
	del := func(k string) func(map[string]any) { return func(p map[string]any) { delete(p, k) } }
	num := func(s string) json.Number { return json.Number(s) }
	dynOverlap := func(maxOverlap any, minConfidence any) map[string]any {
		return map[string]any{"type": "BASIC", "max_overlap": maxOverlap, "min_confidence": minConfidence,
			"answer_weight_skill_id": "42", "fields": []any{map[string]any{"name": "result"}}}
	}
	pricing := func(intervals ...map[string]any) map[string]any {
		list := make([]any, len(intervals))
		for i, iv := range intervals {
			list[i] = iv
		}
		return map[string]any{"type": "SKILL", "skill_id": "1289", "intervals": list}
	}
	interval := func(from, to int, reward string) map[string]any {
		return map[string]any{"from": from, "to": to, "reward_per_assignment": num(reward)}
	}
	mixer := func(real, golden, training any) map[string]any {
		return map[string]any{"real_tasks_count": real, "golden_tasks_count": golden, "training_tasks_count": training}
	}

	cases := []struct {
		name string
		edit func(map[string]any)
		want map[string]string // nil: 201
	}{
		{"valid", func(map[string]any) {}, nil},
		// Required fields.
		{"missing project_id", del("project_id"), map[string]string{"project_id": FieldValueRequired}},
		{"missing private_name", del("private_name"), map[string]string{"private_name": FieldValueRequired}},
		{"missing may_contain_adult_content", del("may_contain_adult_content"), map[string]string{"may_contain_adult_content": FieldValueRequired}},
		{"missing will_expire", del("will_expire"), map[string]string{"will_expire": FieldValueRequired}},
		{"missing reward_per_assignment", del("reward_per_assignment"), map[string]string{"reward_per_assignment": FieldValueRequired}},
		{"missing defaults", del("defaults"), map[string]string{"defaults": FieldValueRequired}},
		{"missing default overlap", set("defaults", map[string]any{}), map[string]string{"defaults.default_overlap_for_new_task_suites": FieldValueRequired}},
		{"missing assignment_max_duration_seconds", del("assignment_max_duration_seconds"), map[string]string{"assignment_max_duration_seconds": FieldValueRequired}},
		// Types.
		{"adult content as string", set("may_contain_adult_content", "no"), map[string]string{"may_contain_adult_content": FieldBooleanExpected}},
		{"reward as string", set("reward_per_assignment", "0.05"), map[string]string{"reward_per_assignment": FieldFloatExpected}},
		{"reward with exponent", set("reward_per_assignment", num("5e-2")), map[string]string{"reward_per_assignment": FieldInvalidValue}},
		{"duration as float", set("assignment_max_duration_seconds", num("60.5")), map[string]string{"assignment_max_duration_seconds": FieldIntegerExpected}},
		// Project reference.
		{"unknown project", set("project_id", "999999"), map[string]string{"project_id": FieldEntityDoesNotExist}},
		{"another account's project", set("project_id", rivalProject), map[string]string{"project_id": FieldEntityDoesNotExist}},
		{"numeric project_id", set("project_id", num(projectID)), nil},
		// will_expire.
		{"will_expire in the past", set("will_expire", FormatTime(now.Add(-time.Minute))), map[string]string{"will_expire": FieldDateOutOfRange}},
		{"will_expire now", set("will_expire", FormatTime(now)), map[string]string{"will_expire": FieldDateOutOfRange}},
		{"will_expire minutes only", set("will_expire", now.Add(time.Hour).Format("2006-01-02T15:04")), nil},
		{"will_expire with millis", set("will_expire", FormatTime(now.Add(time.Hour))), nil},
		{"will_expire with Z", set("will_expire", now.Add(time.Hour).Format("2006-01-02T15:04:05Z")), nil},
		{"will_expire garbage", set("will_expire", "next week"), map[string]string{"will_expire": FieldInvalidDateTime}},
		// reward_per_assignment >= 0.01.
		{"reward 0.01", set("reward_per_assignment", num("0.01")), nil},
		{"reward 0.009", set("reward_per_assignment", num("0.009")), map[string]string{"reward_per_assignment": FieldValueLessThanMin}},
		{"reward 0", set("reward_per_assignment", num("0")), map[string]string{"reward_per_assignment": FieldValueLessThanMin}},
		// assignment_max_duration_seconds >= 5.
		{"duration 5", set("assignment_max_duration_seconds", 5), nil},
		{"duration 4", set("assignment_max_duration_seconds", 4), map[string]string{"assignment_max_duration_seconds": FieldValueLessThanMin}},
		{"default overlap 0", set("defaults.default_overlap_for_new_task_suites", 0), map[string]string{"defaults.default_overlap_for_new_task_suites": FieldValueLessThanMin}},
		// auto_accept_period_day 1..21.
		{"auto accept 1 day", set("auto_accept_period_day", 1), nil},
		{"auto accept 21 days", set("auto_accept_period_day", 21), nil},
		{"auto accept 0 days", set("auto_accept_period_day", 0), map[string]string{"auto_accept_period_day": FieldValueLessThanMin}},
		{"auto accept 22 days", set("auto_accept_period_day", 22), map[string]string{"auto_accept_period_day": FieldValueGreaterThanMax}},
		// auto_close_after_complete_delay_seconds 0..259200.
		{"auto close 0", set("auto_close_after_complete_delay_seconds", 0), nil},
		{"auto close 259200", set("auto_close_after_complete_delay_seconds", 259200), nil},
		{"auto close 259201", set("auto_close_after_complete_delay_seconds", 259201), map[string]string{"auto_close_after_complete_delay_seconds": FieldValueGreaterThanMax}},
		{"auto close -1", set("auto_close_after_complete_delay_seconds", -1), map[string]string{"auto_close_after_complete_delay_seconds": FieldValueLessThanMin}},
		// priority -100..100.
		{"priority -100", set("priority", -100), nil},
		{"priority 100", set("priority", 100), nil},
		{"priority -101", set("priority", -101), map[string]string{"priority": FieldValueLessThanMin}},
		{"priority 101", set("priority", 101), map[string]string{"priority": FieldValueGreaterThanMax}},
		// training_passing_skill_value 0..100.
		{"training skill 0", set("quality_control.training_requirement.training_passing_skill_value", 0), nil},
		{"training skill 100", set("quality_control.training_requirement.training_passing_skill_value", 100), nil},
		{"training skill -1", set("quality_control.training_requirement.training_passing_skill_value", -1),
			map[string]string{"quality_control.training_requirement.training_passing_skill_value": FieldValueLessThanMin}},
		{"training skill 101", set("quality_control.training_requirement.training_passing_skill_value", 101),
			map[string]string{"quality_control.training_requirement.training_passing_skill_value": FieldValueGreaterThanMax}},
		// captcha_frequency.
		{"captcha LOW", set("quality_control.captcha_frequency", "LOW"), nil},
		{"captcha HIGH", set("quality_control.captcha_frequency", "HIGH"), nil},
		{"captcha NEVER", set("quality_control.captcha_frequency", "NEVER"), map[string]string{"quality_control.captcha_frequency": FieldUnknownEnumValue}},
		// dynamic_overlap_config.
		{"dynamic overlap valid", set("dynamic_overlap_config", dynOverlap(5, num("0.9"))), nil},
		{"max_overlap 2", set("dynamic_overlap_config", dynOverlap(2, num("0"))), nil},
		{"max_overlap 1 (the default overlap)", set("dynamic_overlap_config", dynOverlap(1, num("0.9"))), map[string]string{"dynamic_overlap_config.max_overlap": FieldValueLessThanMin}},
		{"max_overlap 30000", set("dynamic_overlap_config", dynOverlap(30000, num("1"))), nil},
		{"max_overlap 0", set("dynamic_overlap_config", dynOverlap(0, num("0.9"))), map[string]string{"dynamic_overlap_config.max_overlap": FieldValueLessThanMin}},
		{"max_overlap 30001", set("dynamic_overlap_config", dynOverlap(30001, num("0.9"))), map[string]string{"dynamic_overlap_config.max_overlap": FieldValueGreaterThanMax}},
		{"min_confidence -0.1", set("dynamic_overlap_config", dynOverlap(5, num("-0.1"))), map[string]string{"dynamic_overlap_config.min_confidence": FieldValueLessThanMin}},
		{"min_confidence 1.01", set("dynamic_overlap_config", dynOverlap(5, num("1.01"))), map[string]string{"dynamic_overlap_config.min_confidence": FieldValueGreaterThanMax}},
		{"dynamic overlap without fields", set("dynamic_overlap_config", map[string]any{"type": "BASIC", "max_overlap": 3, "min_confidence": 0.5, "answer_weight_skill_id": "1"}),
			map[string]string{"dynamic_overlap_config.fields": FieldValueRequired}},
		// dynamic_pricing_config.
		{"pricing disjoint", set("dynamic_pricing_config", pricing(interval(0, 60, "0.03"), interval(61, 100, "0.04"))), nil},
		{"pricing overlapping", set("dynamic_pricing_config", pricing(interval(0, 60, "0.03"), interval(60, 100, "0.04"))),
			map[string]string{"dynamic_pricing_config.intervals[1].from": FieldInvalidValue}},
		{"pricing overlapping out of order", set("dynamic_pricing_config", pricing(interval(50, 100, "0.03"), interval(0, 50, "0.04"))),
			map[string]string{"dynamic_pricing_config.intervals[0].from": FieldInvalidValue}},
		{"pricing to 101", set("dynamic_pricing_config", pricing(interval(0, 101, "0.03"))),
			map[string]string{"dynamic_pricing_config.intervals[0].to": FieldValueGreaterThanMax}},
		{"pricing from -1", set("dynamic_pricing_config", pricing(interval(-1, 10, "0.03"))),
			map[string]string{"dynamic_pricing_config.intervals[0].from": FieldValueLessThanMin}},
		{"pricing from > to", set("dynamic_pricing_config", pricing(interval(70, 10, "0.03"))),
			map[string]string{"dynamic_pricing_config.intervals[0].to": FieldInvalidValue}},
		{"pricing without skill", set("dynamic_pricing_config", map[string]any{"type": "SKILL", "intervals": []any{}}),
			map[string]string{"dynamic_pricing_config.skill_id": FieldValueRequired}},
		// mixer_config.
		{"mixer zeros", set("mixer_config", mixer(0, 0, 0)), nil},
		{"mixer negative real", set("mixer_config", mixer(-1, 0, 0)), map[string]string{"mixer_config.real_tasks_count": FieldValueLessThanMin}},
		{"mixer negative golden", set("mixer_config", mixer(1, -1, 0)), map[string]string{"mixer_config.golden_tasks_count": FieldValueLessThanMin}},
		{"mixer missing training", set("mixer_config", map[string]any{"real_tasks_count": 1, "golden_tasks_count": 0}),
			map[string]string{"mixer_config.training_tasks_count": FieldValueRequired}},
		{"force delay 86400", func(p map[string]any) {
			m := mixer(1, 0, 0)
			m["force_last_assignment_delay_seconds"] = 86400
			p["mixer_config"] = m
		}, nil},
		{"force delay 86401", func(p map[string]any) {
			m := mixer(1, 0, 0)
			m["force_last_assignment_delay_seconds"] = 86401
			p["mixer_config"] = m
		}, map[string]string{"mixer_config.force_last_assignment_delay_seconds": FieldValueGreaterThanMax}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := h.validPool(projectID)
			tc.edit(body)
			r := h.do("POST", "/api/v1/pools", testKey, body)
			if tc.want == nil {
				h.expect(r, http.StatusCreated)
				return
			}
			if diff := cmp.Diff(tc.want, r.fieldCodes(t)); diff != "" {
				t.Errorf("payload codes (-want +got):\n%s\nbody %s", diff, r.body)
			}
		})
	}
}

func TestCreatePoolKeepsFields(t *testing.T) {
	h := newHarness(t, nil)
	projectID := h.createProject(testKey)
	body := `{"project_id": "` + projectID + `", "private_name": "P", "may_contain_adult_content": true,
		"will_expire": "2026-09-01T13:00", "reward_per_assignment": 0.020, "assignment_max_duration_seconds": 300,
		"defaults": {"default_overlap_for_new_task_suites": 3}, "filter": {"and": [{"category": "profile", "key": "languages", "operator": "IN", "value": "EN"}]},
		"auto_accept_solutions": false, "x_unknown": [1, "two"], "id": "forged", "status": "OPEN"}`
	r := h.expect(h.do("POST", "/api/v1/pools", testKey, body), http.StatusCreated)
	got := r.obj(t)
	for _, frag := range []string{`"reward_per_assignment":0.020`, `"will_expire":"2026-09-01T13:00"`, `"x_unknown":[1,"two"]`,
		`"filter":{"and":[{"category":"profile","key":"languages","operator":"IN","value":"EN"}]}`} {
		if !strings.Contains(string(r.body), frag) {
			t.Errorf("answer lacks %s: %s", frag, r.body)
		}
	}
	want := map[string]any{
		"status":     PoolClosed,
		"type":       "REGULAR",
		"project_id": projectID,
		"created":    FormatTime(h.clock.Now()),
	}
	for k, w := range want {
		if diff := cmp.Diff(w, got[k]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", k, diff)
		}
	}
	if got["id"] == "forged" {
		t.Error("client-sent id overrode the server's")
	}
	for _, k := range []string{"last_close_reason", "last_started", "last_stopped"} {
		if _, ok := got[k]; ok {
			t.Errorf("new pool has %s", k)
		}
	}
}

func TestPoolLifecycle(t *testing.T) {
	const delay = 10 * time.Second
	h := newHarness(t, func(c *Config) { c.OperationDelay = delay })
	poolID := h.createPool(testKey, h.createProject(testKey), nil)
	poolStatus := func() map[string]any {
		return h.expect(h.do("GET", "/api/v1/pools/"+poolID, testKey, nil), http.StatusOK).obj(t)
	}
	opStatus := func(id string) map[string]any {
		return h.expect(h.do("GET", "/api/v1/operations/"+id, testKey, nil), http.StatusOK).obj(t)
	}

	// Open: 202 PENDING, then RUNNING, then SUCCESS with the pool OPEN.
	submitted := h.clock.Now()
	op := h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/open", testKey, nil), http.StatusAccepted).obj(t)
	opID := op["id"].(string)
	if diff := cmp.Diff(map[string]any{
		"id": opID, "type": "POOL.OPEN", "status": OperationPending, "submitted": FormatTime(submitted),
		"progress": float64(0), "parameters": map[string]any{"pool_id": poolID},
	}, op); diff != "" {
		t.Errorf("open operation (-want +got):\n%s", diff)
	}
	if st := poolStatus()["status"]; st != PoolClosed {
		t.Errorf("pool status while PENDING = %v, want CLOSED", st)
	}
	// Asking again while it runs returns the same operation.
	again := h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/open", testKey, nil), http.StatusAccepted).obj(t)
	if again["id"] != opID {
		t.Errorf("repeated open gave operation %v, want %v", again["id"], opID)
	}
	// A different operation meanwhile is a conflict.
	r := h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/close", testKey, nil), http.StatusConflict)
	if got := r.code(t); got != CodeConflictState {
		t.Errorf("close during open: code %q, want %q", got, CodeConflictState)
	}

	h.clock.Advance(6 * time.Second)
	if o := opStatus(opID); o["status"] != OperationRunning || o["progress"] != float64(60) {
		t.Errorf("at 6s: status %v progress %v, want RUNNING 60", o["status"], o["progress"])
	}
	if st := poolStatus()["status"]; st != PoolClosed {
		t.Errorf("pool status while RUNNING = %v, want CLOSED", st)
	}
	h.clock.Advance(4 * time.Second)
	// The pool GET comes first: it must already see the completed operation.
	p := poolStatus()
	if p["status"] != PoolOpen || p["last_started"] != FormatTime(submitted.Add(delay)) {
		t.Errorf("after the delay: status %v last_started %v, want OPEN %s", p["status"], p["last_started"], FormatTime(submitted.Add(delay)))
	}
	o := opStatus(opID)
	if o["status"] != OperationSuccess || o["finished"] != FormatTime(submitted.Add(delay)) || o["progress"] != float64(100) {
		t.Errorf("operation after the delay = %v", o)
	}
	h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/open", testKey, nil), http.StatusNoContent)

	// Editing and archiving an open pool is refused.
	r = h.expect(h.do("PUT", "/api/v1/pools/"+poolID, testKey, h.validPool(p["project_id"].(string))), http.StatusConflict)
	assertInappropriate(t, r, PoolClosed)
	r = h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/archive", testKey, nil), http.StatusConflict)
	assertInappropriate(t, r, PoolClosed)

	// Close.
	closeOp := h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/close", testKey, nil), http.StatusAccepted).obj(t)
	if closeOp["type"] != "POOL.CLOSE" {
		t.Errorf("type = %v, want POOL.CLOSE", closeOp["type"])
	}
	h.clock.Advance(delay)
	p = poolStatus()
	if p["status"] != PoolClosed || p["last_close_reason"] != "MANUAL" || p["last_stopped"] != FormatTime(h.clock.Now()) {
		t.Errorf("after close: %v", p)
	}
	h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/close", testKey, nil), http.StatusNoContent)

	// Archive.
	h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/archive", testKey, nil), http.StatusAccepted)
	h.clock.Advance(delay)
	if st := poolStatus()["status"]; st != PoolArchived {
		t.Errorf("status = %v, want ARCHIVED", st)
	}
	h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/archive", testKey, nil), http.StatusNoContent)
	r = h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/open", testKey, nil), http.StatusConflict)
	assertInappropriate(t, r, PoolClosed)

	// Another account sees none of it.
	h.expect(h.do("GET", "/api/v1/operations/"+opID, otherKey, nil), http.StatusNotFound)
	h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/close", otherKey, nil), http.StatusNotFound)
}

func assertInappropriate(t *testing.T, r result, statuses ...string) {
	t.Helper()
	body := r.obj(t)
	if body["code"] != CodeInappropriateStatus {
		t.Fatalf("code %v, want %s; body %s", body["code"], CodeInappropriateStatus, r.body)
	}
	want := map[string]any{"appropriate_statuses": toAny(statuses)}
	if diff := cmp.Diff(want, body["payload"]); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func TestPoolExpiresAtWillExpire(t *testing.T) {
	h := newHarness(t, nil)
	expire := h.clock.Now().Add(time.Hour)
	poolID := h.openPool(func(p map[string]any) { p["will_expire"] = FormatTime(expire) })
	h.clock.Advance(time.Hour)
	p := h.expect(h.do("GET", "/api/v1/pools/"+poolID, testKey, nil), http.StatusOK).obj(t)
	if p["status"] != PoolClosed || p["last_close_reason"] != "EXPIRED" || p["last_stopped"] != FormatTime(expire) {
		t.Errorf("pool after will_expire = %v", p)
	}
	r := h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/open", testKey, nil), http.StatusConflict)
	if got := r.code(t); got != CodeConflictState {
		t.Errorf("reopen expired pool: code %q, want %q", got, CodeConflictState)
	}
}

func TestEditPool(t *testing.T) {
	h := newHarness(t, nil)
	projectID := h.createProject(testKey)
	poolID := h.createPool(testKey, projectID, nil)

	body := h.validPool(projectID)
	body["private_name"] = "Renamed"
	body["reward_per_assignment"] = json.Number("0.10")
	r := h.expect(h.do("PUT", "/api/v1/pools/"+poolID, testKey, body), http.StatusOK)
	if !strings.Contains(string(r.body), `"private_name":"Renamed"`) || !strings.Contains(string(r.body), `"reward_per_assignment":0.10`) {
		t.Errorf("edit not applied: %s", r.body)
	}
	other := h.createProject(testKey)
	body["project_id"] = other
	if diff := cmp.Diff(map[string]string{"project_id": FieldValueCannotBeChanged},
		h.do("PUT", "/api/v1/pools/"+poolID, testKey, body).fieldCodes(t)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	patches := []struct {
		name string
		body string
		want map[string]string
	}{
		{"priority", `{"priority": 42}`, nil},
		{"priority too high", `{"priority": 101}`, map[string]string{"priority": FieldValueGreaterThanMax}},
		{"other field", `{"priority": 1, "private_name": "x"}`, map[string]string{"private_name": FieldValueNotAllowed}},
		{"no priority", `{}`, map[string]string{"priority": FieldValueRequired}},
	}
	for _, tc := range patches {
		t.Run("patch "+tc.name, func(t *testing.T) {
			r := h.do("PATCH", "/api/v1/pools/"+poolID, testKey, tc.body)
			if tc.want == nil {
				h.expect(r, http.StatusOK)
				if got := r.obj(t)["priority"]; got != float64(42) {
					t.Errorf("priority = %v, want 42", got)
				}
				return
			}
			if diff := cmp.Diff(tc.want, r.fieldCodes(t)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestListPools(t *testing.T) {
	h := newHarness(t, nil)
	p1, p2 := h.createProject(testKey), h.createProject(testKey)
	var inP1 []string
	for range 5 {
		inP1 = append(inP1, h.createPool(testKey, p1, nil))
	}
	inP2 := h.createPool(testKey, p2, nil)
	h.expect(h.do("POST", "/api/v1/pools/"+inP1[1]+"/open", testKey, nil), http.StatusAccepted)

	ids, pages := listIDs(t, h, "/api/v1/pools?project_id="+p1, testKey, 2)
	if diff := cmp.Diff(inP1, ids); diff != "" {
		t.Errorf("pools of project 1 (-want +got):\n%s", diff)
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3", pages)
	}
	ids, _ = listIDs(t, h, "/api/v1/pools?status=OPEN", testKey, 10)
	if diff := cmp.Diff([]string{inP1[1]}, ids); diff != "" {
		t.Errorf("open pools (-want +got):\n%s", diff)
	}
	ids, _ = listIDs(t, h, "/api/v1/pools?project_id="+p2, testKey, 10)
	if diff := cmp.Diff([]string{inP2}, ids); diff != "" {
		t.Errorf("pools of project 2 (-want +got):\n%s", diff)
	}
	ids, _ = listIDs(t, h, "/api/v1/pools", otherKey, 10)
	if len(ids) != 0 {
		t.Errorf("another account lists %v", ids)
	}
}

// Seed 003 (Create a pool), dynamic_overlap_config.max_overlap: "Maximum
// overlap. Must be higher than the values in defaults." A max_overlap equal
// to a default overlap (of task suites, or of tasks when given) is refused
// with 400; one above both is taken.
func TestDynamicMaxOverlapMustBeHigherThanTheDefaults(t *testing.T) {
	h := newHarness(t, nil)
	prj := h.createProject(testKey)
	for _, tc := range []struct {
		defaults map[string]any
		max      int
		want     int
	}{
		{map[string]any{"default_overlap_for_new_task_suites": 3}, 3, http.StatusBadRequest},
		{map[string]any{"default_overlap_for_new_task_suites": 2, "default_overlap_for_new_tasks": 4}, 4, http.StatusBadRequest},
		{map[string]any{"default_overlap_for_new_task_suites": 2, "default_overlap_for_new_tasks": 4}, 5, http.StatusCreated},
	} {
		body := h.validPool(prj)
		body["defaults"] = tc.defaults
		body["dynamic_overlap_config"] = map[string]any{
			"type": "BASIC", "max_overlap": tc.max, "min_confidence": json.Number("0.9"),
			"answer_weight_skill_id": "1", "fields": []any{map[string]any{"name": "result"}},
		}
		r := h.do("POST", "/api/v1/pools", testKey, body)
		if r.status != tc.want {
			t.Errorf("max_overlap %d with defaults %v: status %d, want %d; body %s", tc.max, tc.defaults, r.status, tc.want, r.body)
			continue
		}
		if tc.want == http.StatusBadRequest {
			if got := r.fieldCodes(t)["dynamic_overlap_config.max_overlap"]; got != FieldValueLessThanMin {
				t.Errorf("max_overlap %d with defaults %v: field code %q, want %s", tc.max, tc.defaults, got, FieldValueLessThanMin)
			}
		}
	}
}

// Seed 003, quality_control.training_requirement.training_pool_id: "ID of
// the training pool that is linked to the main task pool." Like a
// project_id, it must name a training of the account: one that names no
// training, and one that names another account's training, are 400
// ENTITY_DOES_NOT_EXIST, on create and on edit.
func TestATrainingRequirementMustNameATrainingOfTheAccount(t *testing.T) {
	h := newHarness(t, nil)
	otherPrj := h.createProject(otherKey)
	otherTr := h.expect(h.do("POST", "/api/v1/trainings", otherKey, map[string]any{"project_id": otherPrj, "private_name": "T",
		"inherited_instructions": true, "training_tasks_in_task_suite_count": 3}), http.StatusCreated).obj(t)["id"].(string)
	prj := h.createProject(testKey)
	pool := h.createPool(testKey, prj, nil)
	const field = "quality_control.training_requirement.training_pool_id"
	for _, id := range []string{"999999", otherTr, pool} {
		body := h.validPool(prj)
		body["quality_control"] = map[string]any{"training_requirement": map[string]any{
			"training_pool_id": id, "training_passing_skill_value": 70}}
		r := h.do("POST", "/api/v1/pools", testKey, body)
		if r.status != http.StatusBadRequest {
			t.Errorf("create with training_pool_id %s (not this account's training): status %d, want 400; body %.200s", id, r.status, r.body)
		} else if got := r.fieldCodes(t)[field]; got != FieldEntityDoesNotExist {
			t.Errorf("create with training_pool_id %s: field code %q, want %s", id, got, FieldEntityDoesNotExist)
		}
		if r := h.do("PUT", "/api/v1/pools/"+pool, testKey, body); r.status != http.StatusBadRequest {
			t.Errorf("edit with training_pool_id %s: status %d, want 400; body %.200s", id, r.status, r.body)
		}
	}
}
