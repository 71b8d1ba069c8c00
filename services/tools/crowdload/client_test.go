package crowdload

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

func TestRESTErrorsAndRetries(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		contentType   string
		body          string
		wantCode      codes.Code
		wantRetry     bool
		wantUnimpl    bool
		wantInMessage string
	}{
		{"UNAVAILABLE from the gateway", 503, "application/json", `{"code":14,"message":"redis is down","details":[]}`, codes.Unavailable, true, false, "redis is down"},
		{"INTERNAL", 500, "application/json", `{"code":13,"message":"boom"}`, codes.Internal, true, false, "boom"},
		{"RESOURCE_EXHAUSTED is a 429", 429, "application/json", `{"code":8,"message":"slow down"}`, codes.ResourceExhausted, true, false, "slow down"},
		{"a proxy's 502 page", 502, "text/html", `<html>bad gateway</html>`, codes.Unavailable, true, false, "bad gateway"},
		{"INVALID_ARGUMENT is final", 400, "application/json", `{"code":3,"message":"reward: is required"}`, codes.InvalidArgument, false, false, "reward"},
		{"FAILED_PRECONDITION is final", 400, "application/json", `{"code":9,"message":"session ended"}`, codes.FailedPrecondition, false, false, "session ended"},
		{"NOT_FOUND is final", 404, "application/json", `{"code":5,"message":"no such session"}`, codes.NotFound, false, false, "no such session"},
		{"UNIMPLEMENTED is final and recognised", 501, "application/json", `{"code":12,"message":"method Submit not implemented"}`, codes.Unimplemented, false, true, "not implemented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := &restClient{base: srv.URL, hc: srv.Client()}
			_, err := c.Submit(context.Background(), &crowdgatev1.SubmitRequest{SessionId: "s", RetryId: "r", Reward: "1"})
			var ce *callError
			if !errors.As(err, &ce) {
				t.Fatalf("Submit error %v is not a *callError", err)
			}
			if ce.Code != tt.wantCode || ce.HTTPStatus != tt.status || ce.NoAnswer {
				t.Errorf("got code %v, status %d, no answer %v; want %v, %d, false", ce.Code, ce.HTTPStatus, ce.NoAnswer, tt.wantCode, tt.status)
			}
			if retryable(err) != tt.wantRetry || unimplemented(err) != tt.wantUnimpl {
				t.Errorf("retryable %v, unimplemented %v; want %v, %v", retryable(err), unimplemented(err), tt.wantRetry, tt.wantUnimpl)
			}
			if !strings.Contains(err.Error(), tt.wantInMessage) {
				t.Errorf("error %q lacks %q", err, tt.wantInMessage)
			}
		})
	}
}

func TestRESTNoAnswerIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Take the request and close the connection without an answer,
		// like a replica SIGKILLed mid-request.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c := &restClient{base: srv.URL, hc: srv.Client()}
	_, err := c.Submit(context.Background(), &crowdgatev1.SubmitRequest{})
	var ce *callError
	if !errors.As(err, &ce) || !ce.NoAnswer || !retryable(err) {
		t.Fatalf("Submit with the connection closed: %v; want a retryable no-answer error", err)
	}
	srv.Close()
	_, err = c.Submit(context.Background(), &crowdgatev1.SubmitRequest{})
	if !errors.As(err, &ce) || !ce.NoAnswer || !retryable(err) {
		t.Fatalf("Submit to a closed port: %v; want a retryable no-answer error", err)
	}
}

// The REST mapping: bodies use proto field names, CreateProject and
// CreatePool send the resource itself (body: project / pool), money is a
// string.
func TestRESTRequests(t *testing.T) {
	type seen struct {
		method, path string
		body         map[string]any
	}
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		if len(b) > 0 {
			if err := json.Unmarshal(b, &body); err != nil {
				t.Errorf("%s %s: body %q is not JSON", r.Method, r.URL.Path, b)
			}
		}
		got = append(got, seen{r.Method, r.URL.Path, body})
		switch r.URL.Path {
		case "/v1/submissions":
			_, _ = io.WriteString(w, `{"submission":{"retry_id":"r-1","state":"SUBMISSION_STATE_QUEUED","future_field":1},"session_ended":false}`)
		case "/v1/pools/pool_1/totals":
			_, _ = io.WriteString(w, `{"totals":{"pool_id":"pool_1","received":"3","delivered":"2","queued":"1","reward_delivered":"0.30"}}`)
		default:
			_, _ = io.WriteString(w, `{}`)
		}
	}))
	defer srv.Close()
	c := &restClient{base: srv.URL, hc: srv.Client()}
	ctx := context.Background()
	if _, err := c.CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{PublicName: "p", PlatformUrl: "http://127.0.0.1:1/work"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{ProjectId: "prj_1", RewardPerAssignment: "0.05"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: "pool_1"}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: "ses_1", RetryId: "r-1", Reward: "0.10", CloseSession: proto.Bool(true), EndTime: timestamppb.New(timestamppb.Now().AsTime())})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSubmission().GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED || resp.GetSubmission().GetRetryId() != "r-1" {
		t.Errorf("Submit answer decoded as %v", resp)
	}
	tot, err := c.GetPoolTotals(ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: "pool_1"})
	if err != nil {
		t.Fatal(err)
	}
	if tot.GetTotals().GetQueued() != 1 || tot.GetTotals().GetRewardDelivered() != "0.30" {
		t.Errorf("totals decoded as %v", tot)
	}
	wantPaths := []string{"POST /v1/projects", "POST /v1/pools", "POST /v1/pools/pool_1/open", "POST /v1/submissions", "GET /v1/pools/pool_1/totals"}
	if len(got) != len(wantPaths) {
		t.Fatalf("requests %v, want %v", got, wantPaths)
	}
	for i, w := range wantPaths {
		if g := got[i].method + " " + got[i].path; g != w {
			t.Errorf("request %d: %s, want %s", i, g, w)
		}
	}
	if got[0].body["public_name"] != "p" || got[0].body["platform_url"] != "http://127.0.0.1:1/work" {
		t.Errorf("CreateProject body %v: want the project's fields at the top", got[0].body)
	}
	if got[1].body["reward_per_assignment"] != "0.05" || got[1].body["project_id"] != "prj_1" {
		t.Errorf("CreatePool body %v: want the pool's fields at the top, money as a string", got[1].body)
	}
	if b := got[3].body; b["session_id"] != "ses_1" || b["retry_id"] != "r-1" || b["reward"] != "0.10" || b["close_session"] != true {
		t.Errorf("Submit body %v", b)
	}
}

func TestGRPCErrors(t *testing.T) {
	tests := []struct {
		err                   error
		noAnswer, retry, unim bool
	}{
		{status.Error(codes.Unavailable, "connection refused"), true, true, false},
		{status.Error(codes.DeadlineExceeded, "timeout"), true, true, false},
		{status.Error(codes.ResourceExhausted, "slow down"), false, true, false},
		{status.Error(codes.InvalidArgument, "reward"), false, false, false},
		{status.Error(codes.Unimplemented, "later"), false, false, true},
	}
	for _, tt := range tests {
		err := grpcErr("Submit", tt.err)
		var ce *callError
		if !errors.As(err, &ce) || ce.NoAnswer != tt.noAnswer || retryable(err) != tt.retry || unimplemented(err) != tt.unim {
			t.Errorf("grpcErr(%v) = %+v: retryable %v, unimplemented %v; want no answer %v, retryable %v, unimplemented %v",
				tt.err, ce, retryable(err), unimplemented(err), tt.noAnswer, tt.retry, tt.unim)
		}
	}
	if grpcErr("Submit", nil) != nil {
		t.Error("grpcErr(nil) is not nil")
	}
}
