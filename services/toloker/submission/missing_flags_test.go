package submission

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestAnAnswerWithoutFilterMatchDoesNotBarTheToloker: Toloka accepts a
// submit (200) and pays it, but its answer leaves filter_match out (or
// the body is empty). The missing flag used to read as false: Crowdgate
// ended the session FILTERED_OUT, and the Toloker's next submits (through
// the session or by pool and user) were refused, on a flag Toloka never
// sent. A missing flag is now no signal against the Toloker.
func TestAnAnswerWithoutFilterMatchDoesNotBarTheToloker(t *testing.T) {
	f := fixtureBehindProxy(t, func(rp *httputil.ReverseProxy) http.Handler {
		rp.ModifyResponse = func(r *http.Response) error {
			if r.Request.URL.Path == "/api/v1/tasks/external/submit" && r.StatusCode == 200 {
				r.Body.Close()
				b := []byte(`{"speed_quality_balance_match":false,"restriction_match":false}`)
				r.Body = io.NopCloser(bytes.NewReader(b))
				r.ContentLength = int64(len(b))
				r.Header.Set("Content-Length", strconv.Itoa(len(b)))
			}
			return nil
		}
		return rp
	})
	s := f.toloker(tolokasim.UserState{})
	first := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"})
	if first.Submission.State != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
		t.Fatalf("first: %v", first.Submission.State)
	}
	if first.SessionEnded {
		t.Errorf("an answer without filter_match ended the session: %s", first.SessionEndReason)
	}
	_, err := f.svc.Submit(f.ctx, &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-2", Reward: "0.60"})
	if err != nil {
		t.Errorf("the Toloker's next submit is refused: %v", err)
	}
	_, err = f.svc.Submit(f.ctx, &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "task-3", Reward: "0.60", EndTime: timestamppb.Now()})
	if err != nil {
		t.Errorf("the Toloker's next submit by pool and user is refused: %v", err)
	}
}
