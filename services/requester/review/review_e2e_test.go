package review_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// openPool creates a project and an open pool with key's account for the
// tenant of ctx-less calls ("default" unless tenantID is given).
func (h *harness) openPool(tenantID, key string) *crowdgatev1.Pool {
	h.t.Helper()
	ctx := as(tenantID)
	prj := h.mustProject(ctx, minimalProject(h.mustCredential(ctx, key)))
	p := h.mustPool(ctx, validPool(prj.GetProjectId(), h.clk.Now()))
	resp, err := h.pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: p.GetPoolId()})
	if err != nil {
		h.t.Fatalf("OpenPool: %v", err)
	}
	return resp.GetPool()
}

// startAssignment starts an assignment as a Toloker clicking Start would.
func (h *harness) startAssignment(p *crowdgatev1.Pool, userID string) string {
	h.t.Helper()
	a, err := h.sim.CreateAssignment(p.GetTolokaPoolId(), userID)
	if err != nil {
		h.t.Fatalf("CreateAssignment: %v", err)
	}
	return a.ID
}

// submitSession reports the Toloker's last task, as the platform does: the
// assignment becomes SUBMITTED, awaiting review.
func (h *harness) submitSession(key string, p *crowdgatev1.Pool, userID string) {
	h.t.Helper()
	account, err := h.client.Account(toloka.Credential{Environment: toloka.Sandbox, Token: key})
	if err != nil {
		h.t.Fatal(err)
	}
	_, err = account.SubmitExternal(bg, &toloka.ExternalSubmit{
		PoolID: p.GetTolokaPoolId(), UserID: userID, RetryID: "r-" + userID, Reward: money.MustParse("0.05"), CloseSession: toloka.Ptr(true),
	})
	if err != nil {
		h.t.Fatalf("SubmitExternal: %v", err)
	}
}

func TestReviewFollowsTolokasTransitions(t *testing.T) {
	h := newHarness(t)
	p := h.openPool("default", h.key)
	id := h.startAssignment(p, "toloker-1")

	got, err := h.reviews.GetAssignment(bg, &crowdgatev1.GetAssignmentRequest{AssignmentId: id})
	if err != nil {
		t.Fatalf("GetAssignment: %v", err)
	}
	if a := got.GetAssignment(); a.GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACTIVE || a.GetPoolId() != p.GetPoolId() ||
		a.GetUserId() != "toloker-1" || a.GetCreateTime() == nil {
		t.Errorf("GetAssignment = %v", a)
	}

	// Work still in progress is neither accepted nor rejected.
	_, err = h.reviews.AcceptAssignment(bg, &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = h.reviews.RejectAssignment(bg, &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: "no"})
	wantCode(t, err, codes.FailedPrecondition)

	h.submitSession(h.key, p, "toloker-1")

	// A rejection needs a comment of at most 2048 characters.
	_, err = h.reviews.RejectAssignment(bg, &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: "  "})
	wantField(t, err, "public_comment")
	_, err = h.reviews.RejectAssignment(bg, &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: strings.Repeat("ж", 2049)})
	wantField(t, err, "public_comment")
	_, err = h.reviews.AcceptAssignment(bg, &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id, PublicComment: strings.Repeat("ж", 2049)})
	wantField(t, err, "public_comment")

	rejected, err := h.reviews.RejectAssignment(bg, &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: "Boxes are missing"})
	if err != nil {
		t.Fatalf("RejectAssignment: %v", err)
	}
	if a := rejected.GetAssignment(); a.GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_REJECTED ||
		a.GetPublicComment() != "Boxes are missing" || a.GetRejectTime() == nil || a.GetSubmitTime() == nil || a.GetReward() != "0.05" {
		t.Errorf("rejected = %v", a)
	}
	_, err = h.reviews.RejectAssignment(bg, &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: "again"})
	st := wantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "REJECTED") {
		t.Errorf("refusal %q does not say the assignment is REJECTED", st.Message())
	}

	// Seed 000: a rejected job can be accepted later.
	accepted, err := h.reviews.AcceptAssignment(bg, &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id, PublicComment: "Fixed, thanks"})
	if err != nil {
		t.Fatalf("AcceptAssignment after rejection: %v", err)
	}
	if a := accepted.GetAssignment(); a.GetStatus() != crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACCEPTED || a.GetAcceptTime() == nil {
		t.Errorf("accepted = %v", a)
	}
	_, err = h.reviews.AcceptAssignment(bg, &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id})
	wantCode(t, err, codes.FailedPrecondition)
	_, err = h.reviews.RejectAssignment(bg, &crowdgatev1.RejectAssignmentRequest{AssignmentId: id, PublicComment: "changed my mind"})
	wantCode(t, err, codes.FailedPrecondition)

	var patches []any
	for _, r := range h.requests(http.MethodPatch, "/api/v1/assignments/"+id) {
		patches = append(patches, decode(t, r.Body))
	}
	want := []any{
		decode(t, []byte(`{"status": "REJECTED", "public_comment": "Boxes are missing"}`)),
		decode(t, []byte(`{"status": "ACCEPTED", "public_comment": "Fixed, thanks"}`)),
	}
	if diff := cmp.Diff(want, patches); diff != "" {
		t.Errorf("PATCHes sent to Toloka (-want +got):\n%s", diff)
	}

	// Over REST.
	id2 := h.startAssignment(p, "toloker-2")
	h.submitSession(h.key, p, "toloker-2")
	code, body := h.restCall(http.MethodGet, "/v1/assignments/"+id2, "")
	if code != http.StatusOK || body["assignment"].(map[string]any)["status"] != "ASSIGNMENT_STATUS_SUBMITTED" {
		t.Fatalf("REST get = %d %v", code, body)
	}
	code, body = h.restCall(http.MethodPost, "/v1/assignments/"+id2+"/reject", `{}`)
	if code != http.StatusBadRequest {
		t.Errorf("REST reject without comment = %d %v, want 400", code, body)
	}
	code, body = h.restCall(http.MethodPost, "/v1/assignments/"+id2+"/accept", `{"public_comment": "Great"}`)
	if code != http.StatusOK || body["assignment"].(map[string]any)["status"] != "ASSIGNMENT_STATUS_ACCEPTED" {
		t.Fatalf("REST accept = %d %v", code, body)
	}
	code, body = h.restCall(http.MethodPost, "/v1/assignments/"+id2+"/reject", `{"public_comment": "late"}`)
	if code != http.StatusBadRequest || !strings.Contains(body["message"].(string), "ACCEPTED") {
		t.Errorf("REST reject of accepted work = %d %v, want 400 FAILED_PRECONDITION", code, body)
	}
}

func TestReviewOnlySeesTheTenantsOwnPools(t *testing.T) {
	h := newHarness(t)
	mine := h.openPool("default", h.key)
	theirs := h.openPool("globex", h.otherKey)
	myAssignment := h.startAssignment(mine, "toloker-1")
	theirAssignment := h.startAssignment(theirs, "toloker-1")

	if _, err := h.reviews.GetAssignment(as("globex"), &crowdgatev1.GetAssignmentRequest{AssignmentId: theirAssignment}); err != nil {
		t.Fatalf("globex reading its own assignment: %v", err)
	}
	for _, tc := range []struct {
		name, tenant, id string
	}{
		{"another tenant's assignment", "default", theirAssignment},
		{"mine, asked by another tenant", "globex", myAssignment},
		{"a pool Crowdgate does not know", "default", "00000fffff--000000000000000000000001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.reviews.GetAssignment(as(tc.tenant), &crowdgatev1.GetAssignmentRequest{AssignmentId: tc.id})
			wantCode(t, err, codes.NotFound)
			_, err = h.reviews.AcceptAssignment(as(tc.tenant), &crowdgatev1.AcceptAssignmentRequest{AssignmentId: tc.id})
			wantCode(t, err, codes.NotFound)
			_, err = h.reviews.RejectAssignment(as(tc.tenant), &crowdgatev1.RejectAssignmentRequest{AssignmentId: tc.id, PublicComment: "x"})
			wantCode(t, err, codes.NotFound)
		})
	}
	for _, bad := range []string{"", "42", "xyz--abc", "--00ff", "00ff--"} {
		_, err := h.reviews.GetAssignment(bg, &crowdgatev1.GetAssignmentRequest{AssignmentId: bad})
		wantField(t, err, "assignment_id")
	}
	// An unknown assignment of a known pool is NOT_FOUND, from Toloka.
	unknown := myAssignment[:strings.Index(myAssignment, "--")] + "--00000000000000000000dead"
	_, err := h.reviews.GetAssignment(bg, &crowdgatev1.GetAssignmentRequest{AssignmentId: unknown})
	wantCode(t, err, codes.NotFound)
}
