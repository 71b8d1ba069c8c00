package archive_test

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// land sends a Toloker to the gateway's landing, as Toloka does after
// Start, and returns the session it opened.
func land(t *testing.T, env *gatewaytest.Env, aid string) {
	t.Helper()
	if code, body := env.RESTRaw(http.MethodGet, "/start?assignment_id="+aid, ""); code != http.StatusSeeOther {
		t.Fatalf("landing = %d %s, want 303", code, body)
	}
}

// A Toloker on the platform (a live session) keeps the project from being
// archived, over gRPC and REST: archiving then would strand their pay
// (Toloka refuses submits to an archived pool).
func TestArchiveIsRefusedWhileAPoolHasALiveSession(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{Clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	aid := env.StartAssignment(p, "toloker-1")
	land(t, env, aid)

	_, err := env.Projects.ArchiveProject(ctx, &crowdgatev1.ArchiveProjectRequest{ProjectId: p.GetProjectId()})
	st := gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "1 live session") {
		t.Errorf("gRPC refusal %q does not name 1 live session", st.Message())
	}
	code, body := env.REST(http.MethodPost, "/v1/projects/"+p.GetProjectId()+"/archive", `{}`)
	if msg, _ := body["message"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "1 live session") {
		t.Errorf("REST archive with a live session = %d %v, want 400 naming 1 live session", code, body)
	}
	_, err = env.Pools.ArchivePool(ctx, &crowdgatev1.ArchivePoolRequest{PoolId: p.GetPoolId()})
	st = gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "1 live session") {
		t.Errorf("ArchivePool refusal %q does not name 1 live session", st.Message())
	}
	if got := env.Requests(http.MethodPost, "/api/v1/projects/"); len(got) > 1 {
		for _, r := range got {
			if strings.HasSuffix(r.Path, "/archive") {
				t.Errorf("a refused archive archived the project in Toloka: %s", r.Path)
			}
		}
	}
	project, err := env.Projects.GetProject(ctx, &crowdgatev1.GetProjectRequest{ProjectId: p.GetProjectId()})
	if err != nil || project.GetProject().GetStatus() != crowdgatev1.ProjectStatus_PROJECT_STATUS_ACTIVE {
		t.Errorf("after the refusals the project is %v, %v; want ACTIVE", project.GetProject().GetStatus(), err)
	}
}

// Submits the outbox has not delivered yet keep the project from being
// archived; once Toloka takes them, the archive goes through.
func TestArchiveWaitsForTheOutbox(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{Config: func(c *gateway.Config) {
		c.Submission.SyncTimeout = -1
		c.Submission.BaseBackoff, c.Submission.MaxBackoff, c.Submission.PollInterval = 20*time.Millisecond, 50*time.Millisecond, 10*time.Millisecond
	}})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	if err := env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", FailNext: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"toloker-1", "toloker-2"} {
		env.StartAssignment(p, user)
		if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{PoolId: p.GetPoolId(), UserId: user, Reward: "0.05", RetryId: "r-" + user, EndTime: timestamppb.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := env.Projects.ArchiveProject(ctx, &crowdgatev1.ArchiveProjectRequest{ProjectId: p.GetProjectId()})
	st := gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "2 submits not yet delivered") {
		t.Errorf("refusal %q does not count the 2 submits in the outbox", st.Message())
	}
	env.Sim.ClearFaults()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := env.Submissions.GetPoolTotals(ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: p.GetPoolId()})
		if err == nil && resp.GetTotals().GetDelivered() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox did not deliver both submits: %v, %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := env.Projects.ArchiveProject(ctx, &crowdgatev1.ArchiveProjectRequest{ProjectId: p.GetProjectId()}); err != nil {
		t.Fatalf("ArchiveProject after delivery: %v", err)
	}
	// The archive is one project.archived event, however often it is asked.
	if _, err := env.Projects.ArchiveProject(ctx, &crowdgatev1.ArchiveProjectRequest{ProjectId: p.GetProjectId()}); err != nil {
		t.Fatalf("ArchiveProject again: %v", err)
	}
	evs, err := env.Events.ListEvents(ctx, &crowdgatev1.ListEventsRequest{Types: []string{"project.archived"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(evs.GetEvents()); n != 1 || evs.GetEvents()[0].GetProject().GetStatus() != crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED ||
		evs.GetEvents()[0].GetResource() != "projects/"+p.GetProjectId() {
		t.Errorf("project.archived events: %v, want one with the archived project", evs.GetEvents())
	}
}

func TestArchiveProjectWaitsForReview(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{Clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))})
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	p := env.OpenPool(ctx, key)
	// Two Tolokers report their last task to Toloka directly, as a
	// platform may: their assignments become SUBMITTED, awaiting review.
	acct := account(t, env, key)
	for _, user := range []string{"toloker-1", "toloker-2"} {
		env.StartAssignment(p, user)
		if _, err := acct.SubmitExternal(ctx, &toloka.ExternalSubmit{
			PoolID: p.GetTolokaPoolId(), UserID: user, RetryID: "r-" + user, Reward: money.MustParse("0.05"), CloseSession: toloka.Ptr(true),
		}); err != nil {
			t.Fatalf("SubmitExternal: %v", err)
		}
	}
	_, err := env.Projects.ArchiveProject(ctx, &crowdgatev1.ArchiveProjectRequest{ProjectId: p.GetProjectId()})
	st := gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	if !strings.Contains(st.Message(), "2 assignments awaiting review") {
		t.Errorf("refusal %q does not count the 2 assignments awaiting review", st.Message())
	}
}

// After a project is archived, a Toloker who still holds one of its
// assignments lands on a "closed" page (410), and Toloka is not asked.
func TestLandingsOfAnArchivedProjectAreClosed(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{Clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	aid := env.StartAssignment(p, "toloker-1") // taken in Toloka, never landed
	if _, err := env.Projects.ArchiveProject(ctx, &crowdgatev1.ArchiveProjectRequest{ProjectId: p.GetProjectId()}); err != nil {
		t.Fatalf("ArchiveProject: %v", err)
	}
	code, body := env.RESTRaw(http.MethodGet, "/start?assignment_id="+aid, "")
	if code != http.StatusGone || !strings.Contains(string(body), "Task closed") {
		t.Errorf("landing in an archived project = %d %s, want 410 Task closed", code, body)
	}
	if n := len(env.Requests(http.MethodGet, "/api/v1/assignments/"+aid)); n != 0 {
		t.Errorf("Toloka was asked %d times", n)
	}
}

// heldAssignmentAnswers holds Toloka's answers to GET /api/v1/assignments/
// once armed: each is worked out, then kept until release is closed, and
// asked is closed when the first one is held.
type heldAssignmentAnswers struct {
	armed          atomic.Bool
	once           sync.Once
	asked, release chan struct{}
}

func newHeldAssignmentAnswers() *heldAssignmentAnswers {
	return &heldAssignmentAnswers{asked: make(chan struct{}), release: make(chan struct{})}
}

func (h *heldAssignmentAnswers) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.armed.Load() || r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/api/v1/assignments/") {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		h.once.Do(func() { close(h.asked) })
		<-h.release
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// A Toloker whose landing asked Toloka about their assignment before the
// project was archived, and had its answer (ACTIVE) after, is not sent to
// the platform: Toloka refuses every submit to an archived pool, so their
// work would go unpaid. The landing is closed and no session is left.
// Archiving a closed pool on its own is held to the same rule.
func TestALandingThatRacesTheArchiveStartsNoSession(t *testing.T) {
	for _, tc := range []struct {
		name    string
		archive func(env *gatewaytest.Env, p *crowdgatev1.Pool) error
	}{
		{"project", func(env *gatewaytest.Env, p *crowdgatev1.Pool) error {
			_, err := env.Projects.ArchiveProject(env.Ctx(), &crowdgatev1.ArchiveProjectRequest{ProjectId: p.GetProjectId()})
			return err
		}},
		{"pool", func(env *gatewaytest.Env, p *crowdgatev1.Pool) error {
			if _, err := env.Pools.ClosePool(env.Ctx(), &crowdgatev1.ClosePoolRequest{PoolId: p.GetPoolId()}); err != nil {
				return err
			}
			_, err := env.Pools.ArchivePool(env.Ctx(), &crowdgatev1.ArchivePoolRequest{PoolId: p.GetPoolId()})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := newHeldAssignmentAnswers()
			env := gatewaytest.Start(t, gatewaytest.Options{SimHandler: held.wrap, Clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))})
			ctx := env.Ctx()
			p := env.OpenPool(ctx, env.NewAPIKey("acme"))
			aid := env.StartAssignment(p, "toloker-1")

			held.armed.Store(true)
			type answer struct {
				code int
				body []byte
			}
			landed := make(chan answer, 1)
			go func() {
				code, body := env.RESTRaw(http.MethodGet, "/start?assignment_id="+aid, "")
				landed <- answer{code, body}
			}()
			<-held.asked // Toloka has answered ACTIVE; the landing has not heard it yet
			if err := tc.archive(env, p); err != nil {
				close(held.release)
				t.Fatalf("archive while a landing waits for Toloka: %v", err)
			}
			close(held.release)

			got := <-landed
			if got.code != http.StatusGone || !strings.Contains(string(got.body), "Task closed") {
				t.Errorf("the landing that raced the archive = %d %.200s, want 410 Task closed", got.code, got.body)
			}
			// No session was left behind: landing again is closed too
			// (a stored session would send the Toloker on).
			if code, body := env.RESTRaw(http.MethodGet, "/start?assignment_id="+aid, ""); code != http.StatusGone {
				t.Errorf("landing again after the archive = %d %.200s, want 410", code, body)
			}
		})
	}
}

// TestASideDoorSubmitCannotSlipIntoAPoolBeingArchived: a submit by pool
// and user (no session) sent while the pool's archive was in Toloka used
// to be accepted: the pool was then archived, and Toloka refused the
// submit for good (DEAD, the Toloker unpaid, no retry possible). It is
// let in as a session is: UNAVAILABLE while an archive checks the pool
// (the archive counts one let in before it), FAILED_PRECONDITION once the
// pool is archived.
func TestASideDoorSubmitCannotSlipIntoAPoolBeingArchived(t *testing.T) {
	inArchive, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	env := gatewaytest.Start(t, gatewaytest.Options{SimHandler: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/archive") && strings.HasPrefix(r.URL.Path, "/api/v1/pools/") {
				once.Do(func() { close(inArchive) })
				<-release
			}
			h.ServeHTTP(w, r)
		})
	}})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	env.StartAssignment(p, "toloker-1")
	if _, err := env.Pools.ClosePool(ctx, &crowdgatev1.ClosePoolRequest{PoolId: p.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	archived := make(chan error, 1)
	go func() {
		_, err := env.Pools.ArchivePool(ctx, &crowdgatev1.ArchivePoolRequest{PoolId: p.GetPoolId()})
		archived <- err
	}()
	submit := func(retryID string) error {
		_, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{PoolId: p.GetPoolId(), UserId: "toloker-1",
			Reward: "0.05", RetryId: retryID, EndTime: timestamppb.Now()})
		return err
	}
	<-inArchive // the archive's request is in Toloka
	if err := submit("during"); status.Code(err) != codes.Unavailable {
		t.Errorf("a side-door submit while the pool's archive is in Toloka: %v, want UNAVAILABLE", err)
	}
	close(release)
	if err := <-archived; err != nil {
		t.Fatalf("ArchivePool: %v", err)
	}
	if err := submit("after"); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a side-door submit to the archived pool: %v, want FAILED_PRECONDITION", err)
	}
	totals, err := env.Submissions.GetPoolTotals(ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: p.GetPoolId()})
	if err != nil {
		t.Fatal(err)
	}
	if n := totals.GetTotals().GetQueued() + totals.GetTotals().GetDead() + totals.GetTotals().GetDelivered(); n != 0 {
		t.Errorf("%d submits accepted into the archived pool, want 0 (%v)", n, totals.GetTotals())
	}
}

// TestASideDoorCloseSessionEndsTheLiveSession: a close_session submit by
// pool and user, of a Toloker with a live session there, was answered
// session_ended while the session stayed ACTIVE: no session.ended, the
// landing still sending the Toloker to the platform, the pool's archive
// refused for "1 live session" until the session expired. It ends the
// session it belongs to.
func TestASideDoorCloseSessionEndsTheLiveSession(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	sess := env.LandSession(ctx, env.StartAssignment(p, "toloker-1"))
	yes := true
	resp, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{PoolId: p.GetPoolId(), UserId: "toloker-1", Reward: "0.05",
		RetryId: "r-1", CloseSession: &yes, EndTime: timestamppb.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetSessionEnded() || resp.GetSubmission().GetSessionId() != sess.GetSessionId() {
		t.Fatalf("submit: session_ended %v, session_id %q; want true, the live session %q", resp.GetSessionEnded(),
			resp.GetSubmission().GetSessionId(), sess.GetSessionId())
	}
	got, err := env.Sessions.GetSession(ctx, &crowdgatev1.GetSessionRequest{SessionId: sess.GetSessionId()})
	if err != nil {
		t.Fatal(err)
	}
	if s := got.GetSession(); s.GetState() != crowdgatev1.SessionState_SESSION_STATE_ENDED || s.GetEndReason() != crowdgatev1.EndReason_END_REASON_CLOSE_SESSION ||
		s.GetSubmitsCount() != 1 || s.GetRewardTotal() != "0.05" {
		t.Errorf("the session after the side door's close_session: %v %v, %d submits, reward %q; want ENDED by CLOSE_SESSION, 1, 0.05",
			s.GetState(), s.GetEndReason(), s.GetSubmitsCount(), s.GetRewardTotal())
	}
	evs, err := env.Events.ListEvents(ctx, &crowdgatev1.ListEventsRequest{Types: []string{"session.ended"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(evs.GetEvents()); n != 1 {
		t.Errorf("%d session.ended events, want 1", n)
	}
}

// TestASideDoorCloseSessionWaitsForTheTolokersEarlierSubmits: two submits
// by pool and user of a Toloker without a session, the second with
// close_session. The first failed once (503); the close was not held
// behind it (only a session's submits were), closed the Toloker's
// assignment in Toloka, and the first's retry was refused for good: DEAD,
// unpaid. A close_session submit waits for the Toloker's earlier submits
// in the pool, as a session's does.
func TestASideDoorCloseSessionWaitsForTheTolokersEarlierSubmits(t *testing.T) {
	var failed atomic.Bool
	env := gatewaytest.Start(t, gatewaytest.Options{SimHandler: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/v1/tasks/external/submit" {
				b, _ := io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(b))
				if bytes.Contains(b, []byte(`"r-1"`)) && failed.CompareAndSwap(false, true) {
					http.Error(w, `{"code":"INTERNAL_ERROR","message":"blip"}`, http.StatusServiceUnavailable)
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	}, Config: func(c *gateway.Config) {
		c.Submission.SyncTimeout = -1 // the workers deliver both
		c.Submission.BaseBackoff, c.Submission.MaxBackoff, c.Submission.PollInterval = 200*time.Millisecond, 300*time.Millisecond, 10*time.Millisecond
	}})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	env.StartAssignment(p, "toloker-1")
	submit := func(retryID, reward string, closeSession bool) string {
		t.Helper()
		resp, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{PoolId: p.GetPoolId(), UserId: "toloker-1", Reward: reward,
			RetryId: retryID, CloseSession: &closeSession, EndTime: timestamppb.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetSubmission().GetSubmissionId()
	}
	first := submit("r-1", "0.05", false)
	for deadline := time.Now().Add(10 * time.Second); !failed.Load(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first submit was never attempted")
		}
	}
	last := submit("r-2", "0.10", true)
	state := func(id string) *crowdgatev1.Submission {
		got, err := env.Submissions.GetSubmission(ctx, &crowdgatev1.GetSubmissionRequest{SubmissionId: id})
		if err != nil {
			t.Fatal(err)
		}
		return got.GetSubmission()
	}
	settled := func(s *crowdgatev1.Submission) bool {
		return s.GetState() == crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED || s.GetState() == crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD
	}
	for deadline := time.Now().Add(20 * time.Second); !settled(state(first)) || !settled(state(last)); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not settled: %v, %v", state(first).GetState(), state(last).GetState())
		}
	}
	for _, id := range []string{first, last} {
		if s := state(id); s.GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
			t.Errorf("%s is %v (%v), want DELIVERED: the close_session submit went first", id, s.GetState(), s.GetLastError())
		}
	}
}

// TestASideDoorResendAfterTheArchiveIsAnsweredAsAReplay: a submit resent
// with its retry_id (its answer lost) is answered as the first time, even
// when a new submit would now be refused. The side door's refusal of an
// archived pool came before that, so the resend of an accepted, paid
// submit was answered FAILED_PRECONDITION. The replay answers first.
func TestASideDoorResendAfterTheArchiveIsAnsweredAsAReplay(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	env.StartAssignment(p, "toloker-1")
	req := &crowdgatev1.SubmitRequest{PoolId: p.GetPoolId(), UserId: "toloker-1", Reward: "0.05", RetryId: "r-1", EndTime: timestamppb.Now()}
	first, err := env.Submissions.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pools.ClosePool(ctx, &crowdgatev1.ClosePoolRequest{PoolId: p.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pools.ArchivePool(ctx, &crowdgatev1.ArchivePoolRequest{PoolId: p.GetPoolId()}); err != nil {
		t.Fatalf("ArchivePool: %v", err)
	}
	again, err := env.Submissions.Submit(ctx, req)
	if err != nil {
		t.Fatalf("the resend of accepted submit %s: %v, want its replay", first.GetSubmission().GetSubmissionId(), err)
	}
	if !again.GetReplayed() || again.GetSubmission().GetSubmissionId() != first.GetSubmission().GetSubmissionId() {
		t.Errorf("the resend: replayed %v, submission %q; want a replay of %q", again.GetReplayed(),
			again.GetSubmission().GetSubmissionId(), first.GetSubmission().GetSubmissionId())
	}
	req.RetryId = "r-2" // new work is still refused
	_, err = env.Submissions.Submit(ctx, req)
	gatewaytest.WantCode(t, err, codes.FailedPrecondition)
}
