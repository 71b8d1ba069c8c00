package tolokasim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCreateProjectValidation(t *testing.T) {
	h := newHarness(t, nil)
	cases := []struct {
		name string
		edit func(p map[string]any)
		want map[string]string // nil: 201
	}{
		{"valid external project", func(p map[string]any) {}, nil},
		{"missing public_name", func(p map[string]any) { delete(p, "public_name") },
			map[string]string{"public_name": FieldValueRequired}},
		{"null public_name", func(p map[string]any) { p["public_name"] = nil },
			map[string]string{"public_name": FieldValueRequired}},
		{"blank public_name", func(p map[string]any) { p["public_name"] = "  " },
			map[string]string{"public_name": FieldBlankString}},
		{"numeric public_name", func(p map[string]any) { p["public_name"] = 7 },
			map[string]string{"public_name": FieldStringExpected}},
		{"missing public_description", func(p map[string]any) { delete(p, "public_description") },
			map[string]string{"public_description": FieldValueRequired}},
		{"missing task_spec", func(p map[string]any) { delete(p, "task_spec") },
			map[string]string{"task_spec": FieldValueRequired}},
		{"missing input_spec", func(p map[string]any) { delete(p["task_spec"].(map[string]any), "input_spec") },
			map[string]string{"task_spec.input_spec": FieldValueRequired}},
		{"missing output_spec", func(p map[string]any) { delete(p["task_spec"].(map[string]any), "output_spec") },
			map[string]string{"task_spec.output_spec": FieldValueRequired}},
		{"unknown field type", func(p map[string]any) {
			p["task_spec"].(map[string]any)["input_spec"] = map[string]any{"img": map[string]any{"type": "picture"}}
		}, map[string]string{"task_spec.input_spec.img.type": FieldUnknownEnumValue}},
		{"file input", func(p map[string]any) {
			p["task_spec"].(map[string]any)["input_spec"] = map[string]any{"f": map[string]any{"type": "file"}}
		}, map[string]string{"task_spec.input_spec.f.type": FieldValueNotAllowed}},
		{"unknown issuing type", func(p map[string]any) { p["assignments_issuing_type"] = "MANUAL" },
			map[string]string{"assignments_issuing_type": FieldUnknownEnumValue}},
		{"external without view config", func(p map[string]any) { delete(p, "assignments_issuing_view_config") },
			map[string]string{"assignments_issuing_view_config.redirect_url": FieldValueRequired}},
		{"external without redirect_url", func(p map[string]any) { p["assignments_issuing_view_config"] = map[string]any{} },
			map[string]string{"assignments_issuing_view_config.redirect_url": FieldValueRequired}},
		{"relative redirect_url", func(p map[string]any) {
			p["assignments_issuing_view_config"] = map[string]any{"redirect_url": "/land"}
		}, map[string]string{"assignments_issuing_view_config.redirect_url": FieldInvalidURL}},
		{"ftp redirect_url", func(p map[string]any) {
			p["assignments_issuing_view_config"] = map[string]any{"redirect_url": "ftp://crowdgate.example/land"}
		}, map[string]string{"assignments_issuing_view_config.redirect_url": FieldInvalidURL}},
		{"http redirect_url with query", func(p map[string]any) {
			p["assignments_issuing_view_config"] = map[string]any{"redirect_url": "http://localhost:8080/land?x=1"}
		}, nil},
		{"automated without view config", func(p map[string]any) {
			p["assignments_issuing_type"] = "AUTOMATED"
			delete(p, "assignments_issuing_view_config")
		}, nil},
		{"map selector needs templates", func(p map[string]any) {
			p["assignments_issuing_type"] = "MAP_SELECTOR"
			p["assignments_issuing_view_config"] = map[string]any{"title_template": "t"}
		}, map[string]string{"assignments_issuing_view_config.description_template": FieldValueRequired}},
		{"metadata value not a list", func(p map[string]any) { p["metadata"] = map[string]any{"ptmik_partner_name": "Acme"} },
			map[string]string{"metadata.ptmik_partner_name": FieldArrayExpected}},
		{"metadata list of numbers", func(p map[string]any) { p["metadata"] = map[string]any{"ptmik_bonus_price_max": []any{1}} },
			map[string]string{"metadata.ptmik_bonus_price_max[0]": FieldStringExpected}},
		{"metadata not an object", func(p map[string]any) { p["metadata"] = []any{"x"} },
			map[string]string{"metadata": FieldObjectExpected}},
		{"quality control restriction rule", func(p map[string]any) {
			p["quality_control"] = map[string]any{"configs": []any{map[string]any{
				"collector_config": map[string]any{"type": "SKIPPED_IN_ROW_ASSIGNMENTS"},
				"rules": []any{map[string]any{
					"conditions": []any{map[string]any{"key": "skipped_in_row_count", "operator": "GTE", "value": 10}},
					"action": map[string]any{"type": "RESTRICTION_V2", "parameters": map[string]any{
						"scope": "PROJECT", "duration_unit": "DAYS", "duration": 10}},
				}},
			}}}
		}, nil},
		{"quality control bad operator and scope", func(p map[string]any) {
			p["quality_control"] = map[string]any{"configs": []any{map[string]any{
				"collector_config": map[string]any{"type": "GOLDEN_SET"},
				"rules": []any{map[string]any{
					"conditions": []any{map[string]any{"key": "total_answers_count", "operator": "ABOUT", "value": 10}},
					"action":     map[string]any{"type": "RESTRICTION_V2", "parameters": map[string]any{"scope": "WORLD"}},
				}},
			}}}
		}, map[string]string{
			"quality_control.configs[0].rules[0].conditions[0].operator":  FieldUnknownEnumValue,
			"quality_control.configs[0].rules[0].action.parameters.scope": FieldUnknownEnumValue,
		}},
		{"several problems at once", func(p map[string]any) {
			delete(p, "public_name")
			delete(p, "public_description")
		}, map[string]string{"public_name": FieldValueRequired, "public_description": FieldValueRequired}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := validProject()
			tc.edit(body)
			r := h.do("POST", "/api/v1/projects", testKey, body)
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

func TestCreateProjectEchoesFields(t *testing.T) {
	h := newHarness(t, nil)
	body := validProject()
	body["public_instructions"] = `<p>Look & decide</p>`
	body["private_comment"] = "internal"
	body["x_future_field"] = map[string]any{"n": 1.50}
	// Sent as text: json.Marshal would escape the HTML before the emulator
	// ever saw it.
	r := h.expect(h.do("POST", "/api/v1/projects", testKey, string(mustJSON(body))), http.StatusCreated)
	got := r.obj(t)
	for _, k := range []string{"id", "created"} {
		if s, _ := got[k].(string); s == "" {
			t.Errorf("%s missing in %s", k, r.body)
		}
	}
	want := map[string]any{
		"status":              ProjectActive,
		"public_instructions": `<p>Look & decide</p>`,
		"private_comment":     "internal",
		"x_future_field":      map[string]any{"n": 1.5},
		"owner":               map[string]any{"id": testAcct, "myself": true, "company_id": testAcct},
		"metadata":            map[string]any{"ptmik_partner_name": []any{"Acme"}},
		"created":             FormatTime(h.clock.Now()),
	}
	for k, w := range want {
		if diff := cmp.Diff(w, got[k]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", k, diff)
		}
	}
	if !strings.Contains(string(r.body), `<p>Look & decide</p>`) {
		t.Errorf("HTML escaped in %s", r.body)
	}
	// GET returns the same document.
	g := h.expect(h.do("GET", "/api/v1/projects/"+got["id"].(string), testKey, nil), http.StatusOK)
	if diff := cmp.Diff(string(r.body), string(g.body)); diff != "" {
		t.Errorf("GET differs from create answer (-create +get):\n%s", diff)
	}
}

func TestEditProject(t *testing.T) {
	h := newHarness(t, nil)
	id := h.createProject(testKey)
	body := validProject()
	body["public_name"] = "Renamed"
	r := h.expect(h.do("PUT", "/api/v1/projects/"+id, testKey, body), http.StatusOK)
	if got := r.obj(t)["public_name"]; got != "Renamed" {
		t.Errorf("public_name = %v, want Renamed", got)
	}
	delete(body, "public_description")
	if diff := cmp.Diff(map[string]string{"public_description": FieldValueRequired},
		h.do("PUT", "/api/v1/projects/"+id, testKey, body).fieldCodes(t)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	h.expect(h.do("PUT", "/api/v1/projects/"+id, otherKey, validProject()), http.StatusNotFound)
}

// listIDs pages through path with limit and id_gt the way the SDKs do.
func listIDs(t *testing.T, h *harness, path, key string, limit int) (ids []string, pages int) {
	t.Helper()
	last := ""
	for {
		q := fmt.Sprintf("%s%climit=%d&sort=id", path, sep(path), limit)
		if last != "" {
			q += "&id_gt=" + last
		}
		r := h.expect(h.do("GET", q, key, nil), http.StatusOK)
		body := r.obj(t)
		pages++
		items := body["items"].([]any)
		for _, it := range items {
			last = it.(map[string]any)["id"].(string)
			ids = append(ids, last)
		}
		if body["has_more"] != true {
			return ids, pages
		}
		if len(items) == 0 {
			t.Fatal("has_more with an empty page")
		}
	}
}

func sep(path string) byte {
	if strings.Contains(path, "?") {
		return '&'
	}
	return '?'
}

func TestListProjects(t *testing.T) {
	h := newHarness(t, nil)
	var want []string
	for range 7 {
		want = append(want, h.createProject(testKey))
		h.clock.Advance(time.Second)
	}
	h.createProject(otherKey) // not visible to testKey

	ids, pages := listIDs(t, h, "/api/v1/projects", testKey, 3)
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("paged ids (-want +got):\n%s", diff)
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3", pages)
	}

	cases := []struct {
		name  string
		query string
		want  []string
		more  bool
	}{
		{"default", "", want, false},
		{"limit", "?limit=2", want[:2], true},
		{"descending", "?sort=-id&limit=2", []string{want[6], want[5]}, true},
		{"-created", "?sort=-created", reverse(want), false},
		{"id_gte and id_lt", "?id_gte=" + want[2] + "&id_lt=" + want[4], want[2:4], false},
		{"id_lte", "?id_lte=" + want[1], want[:2], false},
		{"created_gt", "?created_gt=" + FormatTime(newFakeClock().Now().Add(4*time.Second)), want[5:], false},
		{"created_lte", "?created_lte=" + FormatTime(newFakeClock().Now().Add(time.Second)), want[:2], false},
		{"status", "?status=ARCHIVED", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := h.expect(h.do("GET", "/api/v1/projects"+tc.query, testKey, nil), http.StatusOK).obj(t)
			var got []string
			for _, it := range body["items"].([]any) {
				got = append(got, it.(map[string]any)["id"].(string))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if body["has_more"] != tc.more {
				t.Errorf("has_more = %v, want %v", body["has_more"], tc.more)
			}
		})
	}

	bad := []struct {
		query, field, code string
	}{
		{"?limit=0", "limit", FieldValueLessThanMin},
		{"?limit=301", "limit", FieldValueGreaterThanMax},
		{"?limit=x", "limit", FieldIntegerExpected},
		{"?sort=name", "sort", FieldUnknownEnumValue},
		{"?id_gt=abc", "id_gt", FieldInvalidValue},
		{"?created_gt=yesterday", "created_gt", FieldInvalidDateTime},
		{"?status=GONE", "status", FieldUnknownEnumValue},
	}
	for _, tc := range bad {
		t.Run("bad "+tc.query, func(t *testing.T) {
			got := h.do("GET", "/api/v1/projects"+tc.query, testKey, nil).fieldCodes(t)
			if diff := cmp.Diff(map[string]string{tc.field: tc.code}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	h.expect(h.do("GET", "/api/v1/projects?limit=300", testKey, nil), http.StatusOK)
}

func reverse(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func TestArchiveProject(t *testing.T) {
	h := newHarness(t, nil)
	projectID := h.createProject(testKey)
	poolID := h.createPool(testKey, projectID, nil)

	r := h.expect(h.do("POST", "/api/v1/projects/"+projectID+"/archive", testKey, nil), http.StatusConflict)
	if got := r.code(t); got != CodeUnarchivedPoolsConflict {
		t.Fatalf("code %q, want %q", got, CodeUnarchivedPoolsConflict)
	}
	h.expect(h.do("POST", "/api/v1/pools/"+poolID+"/archive", testKey, nil), http.StatusAccepted)

	r = h.expect(h.do("POST", "/api/v1/projects/"+projectID+"/archive", testKey, nil), http.StatusAccepted)
	op := r.obj(t)
	if diff := cmp.Diff(map[string]any{"project_id": projectID}, op["parameters"]); diff != "" {
		t.Errorf("parameters (-want +got):\n%s", diff)
	}
	if op["type"] != "PROJECT.ARCHIVE" || op["status"] != OperationSuccess {
		t.Errorf("operation = %s, want PROJECT.ARCHIVE SUCCESS", r.body)
	}
	got := h.expect(h.do("GET", "/api/v1/projects/"+projectID, testKey, nil), http.StatusOK).obj(t)
	if got["status"] != ProjectArchived {
		t.Errorf("status = %v, want ARCHIVED", got["status"])
	}
	h.expect(h.do("POST", "/api/v1/projects/"+projectID+"/archive", testKey, nil), http.StatusNoContent)

	// An archived project takes no new pools and no edits.
	r = h.do("POST", "/api/v1/pools", testKey, h.validPool(projectID))
	h.expect(r, http.StatusConflict)
	if got := r.code(t); got != CodeInappropriateStatus {
		t.Errorf("create pool in archived project: code %q, want %q", got, CodeInappropriateStatus)
	}
	h.expect(h.do("PUT", "/api/v1/projects/"+projectID, testKey, validProject()), http.StatusConflict)
	h.expect(h.do("POST", "/api/v1/projects/"+projectID+"/archive", otherKey, nil), http.StatusNotFound)
}
