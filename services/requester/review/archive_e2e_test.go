package review_test

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// tolokaPoolStatus reads a pool's status in the emulator.
func (h *harness) tolokaPoolStatus(p *crowdgatev1.Pool) toloka.PoolStatus {
	h.t.Helper()
	account, err := h.client.Account(toloka.Credential{Environment: toloka.Sandbox, Token: h.key})
	if err != nil {
		h.t.Fatal(err)
	}
	tp, err := account.GetPool(bg, p.GetTolokaPoolId())
	if err != nil {
		h.t.Fatal(err)
	}
	return tp.Status
}

func TestArchiveProjectWaitsForUnfinishedWork(t *testing.T) {
	h := newHarness(t)
	prj := h.mustProject(bg, fullProject(h.mustCredential(bg, h.key)))
	open := h.mustPool(bg, validPool(prj.GetProjectId(), h.clk.Now()))
	if _, err := h.pools.OpenPool(bg, &crowdgatev1.OpenPoolRequest{PoolId: open.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	closed := h.mustPool(bg, validPool(prj.GetProjectId(), h.clk.Now()))

	// Unfinished work refuses the archive, says what is left, and changes
	// nothing.
	h.checker.set(open.GetPoolId(), "3 live sessions", "2 submits not yet delivered")
	_, err := h.projects.ArchiveProject(bg, &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.GetProjectId()})
	st := wantCode(t, err, codes.FailedPrecondition)
	for _, want := range []string{open.GetPoolId(), "3 live sessions", "2 submits not yet delivered"} {
		if !strings.Contains(st.Message(), want) {
			t.Errorf("refusal %q does not mention %q", st.Message(), want)
		}
	}
	if strings.Contains(st.Message(), closed.GetPoolId()) {
		t.Errorf("refusal %q names pool %s, which has nothing left", st.Message(), closed.GetPoolId())
	}
	if got := h.tolokaPoolStatus(open); got != toloka.PoolOpen {
		t.Errorf("after a refused archive the pool is %s in Toloka, want it still OPEN", got)
	}
	for _, path := range []string{"/close", "/archive"} {
		for _, r := range h.requests(http.MethodPost, "/api/v1/") {
			if strings.HasSuffix(r.Path, path) {
				t.Errorf("a refused archive sent %s %s", r.Method, r.Path)
			}
		}
	}

	// Over REST too: 400 (FAILED_PRECONDITION) with the same message.
	code, body := h.restCall(http.MethodPost, "/v1/projects/"+prj.GetProjectId()+"/archive", `{}`)
	if code != http.StatusBadRequest || !strings.Contains(body["message"].(string), "3 live sessions") {
		t.Errorf("REST archive with work left = %d %v", code, body)
	}

	// Work that appears while the pools close (a Toloker who started
	// meanwhile) is caught by the second check: the pools stay closed.
	h.checker.set(open.GetPoolId())
	h.checker.setWhenClosed(open.GetPoolId(), "1 live session")
	_, err = h.projects.ArchiveProject(bg, &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.GetProjectId()})
	st = wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "1 live session") {
		t.Errorf("refusal %q does not mention the late session", st.Message())
	}
	if got := h.tolokaPoolStatus(open); got != toloka.PoolClosed {
		t.Errorf("after the late refusal the pool is %s, want CLOSED (no new work)", got)
	}

	// Done: every pool is closed and archived, then the project.
	h.checker.setWhenClosed(open.GetPoolId())
	resp, err := h.projects.ArchiveProject(bg, &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.GetProjectId()})
	if err != nil {
		t.Fatalf("ArchiveProject with nothing left: %v", err)
	}
	if p := resp.GetProject(); p.GetStatus() != crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED || p.GetArchiveTime() == nil {
		t.Errorf("archived project = %v", p)
	}
	for _, p := range []*crowdgatev1.Pool{open, closed} {
		if got := h.tolokaPoolStatus(p); got != toloka.PoolArchived {
			t.Errorf("pool %s is %s in Toloka, want ARCHIVED", p.GetPoolId(), got)
		}
	}
	pools, err := h.pools.ListPools(bg, &crowdgatev1.ListPoolsRequest{ProjectId: prj.GetProjectId(), Status: crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED})
	if err != nil || len(pools.GetPools()) != 2 {
		t.Errorf("archived pools listed = %v, %v; want both", pools, err)
	}
	account, _ := h.client.Account(toloka.Credential{Environment: toloka.Sandbox, Token: h.key})
	tp, err := account.GetProject(bg, prj.GetTolokaProjectId())
	if err != nil || tp.Status != toloka.ProjectArchived {
		t.Errorf("project in Toloka = %v, %v; want ARCHIVED", tp, err)
	}
	list, err := h.projects.ListProjects(bg, &crowdgatev1.ListProjectsRequest{Status: crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED})
	if err != nil || len(list.GetProjects()) != 1 {
		t.Errorf("ListProjects ARCHIVED = %v, %v", list, err)
	}

	// Archiving again is a no-op; an archived project takes no pools.
	if _, err := h.projects.ArchiveProject(bg, &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.GetProjectId()}); err != nil {
		t.Errorf("second ArchiveProject: %v", err)
	}
	_, err = h.pools.CreatePool(bg, &crowdgatev1.CreatePoolRequest{Pool: validPool(prj.GetProjectId(), h.clk.Now())})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = h.projects.ArchiveProject(as("globex"), &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.GetProjectId()})
	wantCode(t, err, codes.NotFound)
}

func TestArchiveProjectWaitsForReview(t *testing.T) {
	h := newHarness(t)
	p := h.openPool("default", h.key)
	h.startAssignment(p, "toloker-1")
	h.submitSession(h.key, p, "toloker-1")
	h.startAssignment(p, "toloker-2")
	h.submitSession(h.key, p, "toloker-2")

	_, err := h.projects.ArchiveProject(bg, &crowdgatev1.ArchiveProjectRequest{ProjectId: p.GetProjectId()})
	st := wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "2 assignments awaiting review") {
		t.Errorf("refusal %q does not count the 2 assignments awaiting review", st.Message())
	}
}
