package submission

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestSubmitForwardsExactlyWhatThePlatformGave sends seed 001's optional
// flags and counts as the platform gave them: false and 0 reach Toloka as
// false and 0, and a field the platform did not give is not in the body.
func TestSubmitForwardsExactlyWhatThePlatformGave(t *testing.T) {
	optional := []string{"close_session", "skipped", "golden_tasks_count", "training_tasks_count", "real_tasks_count"}
	for _, tc := range []struct {
		name string
		set  func(r *crowdgatev1.SubmitRequest)
		want map[string]string
	}{
		{"none given", func(*crowdgatev1.SubmitRequest) {}, map[string]string{}},
		{"false and zero", func(r *crowdgatev1.SubmitRequest) {
			r.CloseSession, r.Skipped = proto.Bool(false), proto.Bool(false)
			r.GoldenTasksCount, r.TrainingTasksCount, r.RealTasksCount = proto.Int32(0), proto.Int32(0), proto.Int32(0)
		}, map[string]string{"close_session": "false", "skipped": "false", "golden_tasks_count": "0", "training_tasks_count": "0", "real_tasks_count": "0"}},
		{"some given", func(r *crowdgatev1.SubmitRequest) {
			r.Skipped, r.GoldenTasksCount = proto.Bool(false), proto.Int32(3)
		}, map[string]string{"skipped": "false", "golden_tasks_count": "3"}},
		{"true and counts", func(r *crowdgatev1.SubmitRequest) {
			r.CloseSession, r.Skipped, r.RealTasksCount = proto.Bool(true), proto.Bool(true), proto.Int32(7)
		}, map[string]string{"close_session": "true", "skipped": "true", "real_tasks_count": "7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			s := f.toloker(tolokasim.UserState{})
			req := &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "r-" + strings.ReplaceAll(tc.name, " ", "-"), Reward: "0.05"}
			tc.set(req)
			resp := f.submit(req)
			reqs := f.submitRequests()
			if len(reqs) != 1 {
				t.Fatalf("%d submit requests, want 1", len(reqs))
			}
			var body map[string]json.RawMessage
			if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, k := range optional {
				if v, ok := body[k]; ok {
					got[k] = string(v)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("optional fields Toloka received (-want +got):\n%s", diff)
			}
			// The stored submission keeps the same presence.
			sub := resp.GetSubmission()
			stored := map[string]bool{
				"close_session": sub.CloseSession != nil, "skipped": sub.Skipped != nil, "golden_tasks_count": sub.GoldenTasksCount != nil,
				"training_tasks_count": sub.TrainingTasksCount != nil, "real_tasks_count": sub.RealTasksCount != nil,
			}
			for _, k := range optional {
				if _, given := tc.want[k]; stored[k] != given {
					t.Errorf("stored submission has %s set: %v, want %v", k, stored[k], given)
				}
			}
			if ended := resp.GetSessionEnded(); ended != (tc.want["close_session"] == "true") {
				t.Errorf("session ended %v with close_session %q", ended, tc.want["close_session"])
			}
		})
	}
}
