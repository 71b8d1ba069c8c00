package submission

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// TestValidateSubmitRefusesSignedZeroAndImpossibleTimes checks the rules a
// security review found missing: a reward or quality of "-0" was taken as
// 0, and a start_time in year 9999 (or before Toloka existed) was sent to
// Toloka as it was.
func TestValidateSubmitRefusesSignedZeroAndImpossibleTimes(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	valid := func(mutate func(*crowdgatev1.SubmitRequest)) *crowdgatev1.SubmitRequest {
		r := &crowdgatev1.SubmitRequest{SessionId: "ses_1", Reward: "0.05"}
		mutate(r)
		return r
	}
	at := func(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
	year9999 := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		req   *crowdgatev1.SubmitRequest
		field string // "" when valid
	}{
		{"reward -0", valid(func(r *crowdgatev1.SubmitRequest) { r.Reward = "-0" }), "reward"},
		{"reward -0.00", valid(func(r *crowdgatev1.SubmitRequest) { r.Reward = "-0.00" }), "reward"},
		{"reward +0", valid(func(r *crowdgatev1.SubmitRequest) { r.Reward = "+0" }), "reward"},
		{"reward 0", valid(func(r *crowdgatev1.SubmitRequest) { r.Reward = "0" }), ""},
		{"reward 0.00", valid(func(r *crowdgatev1.SubmitRequest) { r.Reward = "0.00" }), ""},
		{"quality -0", valid(func(r *crowdgatev1.SubmitRequest) { r.Quality = "-0" }), "quality"},
		{"quality -0.0", valid(func(r *crowdgatev1.SubmitRequest) { r.Quality = "-0.0" }), "quality"},
		{"quality 0", valid(func(r *crowdgatev1.SubmitRequest) { r.Quality = "0" }), ""},

		{"start_time in year 9999", valid(func(r *crowdgatev1.SubmitRequest) { r.StartTime = at(year9999) }), "start_time"},
		{"end_time in year 9999", valid(func(r *crowdgatev1.SubmitRequest) { r.EndTime = at(year9999) }), "end_time"},
		{"start_time and end_time in year 9999", valid(func(r *crowdgatev1.SubmitRequest) {
			r.StartTime, r.EndTime = at(year9999), at(year9999)
		}), "start_time"},
		{"start_time two years ahead", valid(func(r *crowdgatev1.SubmitRequest) { r.StartTime = at(now.AddDate(2, 0, 0)) }), "start_time"},
		{"end_time two years ahead", valid(func(r *crowdgatev1.SubmitRequest) { r.EndTime = at(now.AddDate(2, 0, 0)) }), "end_time"},
		{"start_time before Toloka", valid(func(r *crowdgatev1.SubmitRequest) { r.StartTime = at(time.Date(2013, 12, 31, 0, 0, 0, 0, time.UTC)) }), "start_time"},
		{"start_time at the Unix epoch", valid(func(r *crowdgatev1.SubmitRequest) { r.StartTime = &timestamppb.Timestamp{} }), "start_time"},
		{"end_time in year 1", valid(func(r *crowdgatev1.SubmitRequest) { r.EndTime = at(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)) }), "end_time"},
		{"start_time out of range", valid(func(r *crowdgatev1.SubmitRequest) { r.StartTime = &timestamppb.Timestamp{Seconds: 1 << 40} }), "start_time"},
		// Clocks are wrong by hours (a local time sent as UTC): allowed.
		{"times a day ahead", valid(func(r *crowdgatev1.SubmitRequest) {
			r.StartTime, r.EndTime = at(now.Add(23*time.Hour)), at(now.Add(24*time.Hour))
		}), ""},
		{"times of a past task", valid(func(r *crowdgatev1.SubmitRequest) {
			r.StartTime, r.EndTime = at(now.Add(-time.Hour)), at(now)
		}), ""},
		{"start_time in 2014", valid(func(r *crowdgatev1.SubmitRequest) { r.StartTime = at(time.Date(2014, 1, 1, 0, 0, 0, 0, time.UTC)) }), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := validateSubmitAt(tc.req, now)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ia *serviceerror.InvalidArgument
			if !errors.As(err, &ia) || ia.Field != tc.field {
				t.Fatalf("error %v, want INVALID_ARGUMENT naming %s", err, tc.field)
			}
		})
	}
}

// TestValidateSubmitUsesTheWallClock: validateSubmit (what Submit calls)
// bounds times from now.
func TestValidateSubmitUsesTheWallClock(t *testing.T) {
	if _, err := validateSubmit(&crowdgatev1.SubmitRequest{SessionId: "ses_1", Reward: "1", StartTime: timestamppb.Now()}); err != nil {
		t.Errorf("start_time now: %v", err)
	}
	var ia *serviceerror.InvalidArgument
	_, err := validateSubmit(&crowdgatev1.SubmitRequest{SessionId: "ses_1", Reward: "1", StartTime: timestamppb.New(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))})
	if !errors.As(err, &ia) || ia.Field != "start_time" {
		t.Errorf("start_time in 9999: %v, want INVALID_ARGUMENT naming start_time", err)
	}
}
