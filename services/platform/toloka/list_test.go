package toloka

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

func TestAllPoolsPages(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil,
		reply(http.StatusOK, `{"items":[{"id":"2"},{"id":"5"}],"has_more":true}`),
		reply(http.StatusOK, `{"items":[{"id":"8"},{"id":"13"}],"has_more":true}`),
		reply(http.StatusOK, `{"items":[{"id":"21"}],"has_more":false}`))
	var ids []string
	for p, err := range h.account.AllPools(context.Background(), ListOptions{Limit: 2, Sort: "-created", ProjectID: "7", Status: "OPEN", IDGte: "1"}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	if diff := cmp.Diff([]string{"2", "5", "8", "13", "21"}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	var queries []url.Values
	for _, r := range h.fake.requests() {
		if r.Path != "/api/v1/pools" {
			t.Errorf("path %s", r.Path)
		}
		q, _ := url.ParseQuery(r.Query)
		queries = append(queries, q)
	}
	base := func(extra ...string) url.Values {
		v := url.Values{"limit": {"2"}, "sort": {"id"}, "project_id": {"7"}, "status": {"OPEN"}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v
	}
	want := []url.Values{base("id_gte", "1"), base("id_gt", "5"), base("id_gt", "13")}
	if diff := cmp.Diff(want, queries); diff != "" {
		t.Errorf("queries (-want +got):\n%s", diff)
	}
}

func TestAllProjectsStopsEarly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil,
		reply(http.StatusOK, `{"items":[{"id":"1"},{"id":"2"}],"has_more":true}`),
		reply(http.StatusOK, `{"items":[{"id":"3"},{"id":"4"}],"has_more":true}`))
	var ids []string
	for p, err := range h.account.AllProjects(context.Background(), ListOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
		if len(ids) == 3 {
			break
		}
	}
	if diff := cmp.Diff([]string{"1", "2", "3"}, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if n := len(h.fake.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestAllProjectsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps []step
		want  []string // ids, then "error"
	}{
		{"error mid-way", []step{
			reply(http.StatusOK, `{"items":[{"id":"1"}],"has_more":true}`),
			tolokaError(http.StatusForbidden, CodeAccessDenied, "no", ""),
		}, []string{"1", "error"}},
		{"has_more with no items", []step{reply(http.StatusOK, `{"items":[],"has_more":true}`)}, []string{"error"}},
		{"no progress", []step{
			reply(http.StatusOK, `{"items":[{"id":"1"}],"has_more":true}`),
			reply(http.StatusOK, `{"items":[{"id":"1"}],"has_more":true}`),
		}, []string{"1", "1", "error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil, tc.steps...)
			var got []string
			for p, err := range h.account.AllProjects(context.Background(), ListOptions{}) {
				if err != nil {
					got = append(got, "error")
					continue
				}
				got = append(got, p.ID)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestWaitOperation(t *testing.T) {
	t.Parallel()
	running := reply(http.StatusOK, `{"id":"op","type":"POOL.OPEN","status":"RUNNING"}`)
	t.Run("success", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.PollInterval, c.MaxPollInterval = time.Second, 3*time.Second },
			reply(http.StatusOK, `{"id":"op","status":"PENDING"}`), running, running, running,
			reply(http.StatusOK, `{"id":"op","type":"POOL.OPEN","status":"SUCCESS","finished":"2025-03-04T10:00:09"}`))
		op, err := h.account.WaitOperation(context.Background(), "op")
		if err != nil {
			t.Fatal(err)
		}
		if op.Status != OperationSuccess || !op.Done() || op.Finished == nil {
			t.Errorf("got %+v", op)
		}
		want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
		if diff := cmp.Diff(want, h.clock.Sleeps()); diff != "" {
			t.Errorf("polling waits (-want +got):\n%s", diff)
		}
		for _, r := range h.fake.requests() {
			if r.Method != "GET" || r.Path != "/api/v1/operations/op" {
				t.Errorf("request %s %s", r.Method, r.Path)
			}
		}
	})
	t.Run("fail", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, reply(http.StatusOK, `{"id":"op","type":"POOL.OPEN","status":"FAIL","details":{"reason":"EMPTY_POOL"}}`))
		op, err := h.account.WaitOperation(context.Background(), "op")
		var fp *serviceerror.FailedPrecondition
		if !errors.As(err, &fp) || fp.Message != `Toloka operation op (POOL.OPEN) failed: {"reason":"EMPTY_POOL"}` {
			t.Fatalf("got %v, want FailedPrecondition", err)
		}
		if op == nil || op.Status != OperationFail {
			t.Errorf("operation %+v, want the failed operation", op)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		h := newHarness(t, func(c *Config) {
			c.Sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
		}, running)
		op, err := h.account.WaitOperation(ctx, "op")
		if !errors.Is(err, context.Canceled) || op == nil || op.Status != OperationRunning {
			t.Fatalf("got %+v, %v; want the running operation and context.Canceled", op, err)
		}
		if code := serviceerror.ToStatus(err).Code(); code != codes.Canceled {
			t.Errorf("code %s, want Canceled", code)
		}
	})
	t.Run("missing operation", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, tolokaError(http.StatusNotFound, CodeDoesNotExist, "no", ""))
		_, err := h.account.WaitOperation(context.Background(), "op")
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) || nf.Resource != "Toloka operation" || nf.ID != "op" {
			t.Errorf("got %v, want NotFound for the operation", err)
		}
	})
}
