package toloka

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

var okProject = reply(http.StatusOK, `{"id":"7"}`)

func TestRetriesIdempotentCalls(t *testing.T) {
	t.Parallel()
	failures := map[string]step{
		"408":     reply(http.StatusRequestTimeout, ``),
		"429":     tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow down", ""),
		"500":     tolokaError(http.StatusInternalServerError, CodeInternalError, "oops", ""),
		"502":     reply(http.StatusBadGateway, `<html></html>`, "Content-Type", "text/html"),
		"503":     tolokaError(http.StatusServiceUnavailable, CodeRemoteServiceUnavailable, "later", ""),
		"504":     reply(http.StatusGatewayTimeout, ``),
		"hang up": hangUp(),
	}
	calls := map[string]struct {
		call     func(context.Context, *Account) error
		response step
	}{
		"GET": {func(ctx context.Context, a *Account) error { _, err := a.GetProject(ctx, "7"); return err }, okProject},
		"open pool": {func(ctx context.Context, a *Account) error { _, err := a.OpenPool(ctx, "21"); return err },
			reply(http.StatusAccepted, `{"id":"op"}`)},
		"PATCH assignment": {func(ctx context.Context, a *Account) error { _, err := a.AcceptAssignment(ctx, "a1", ""); return err },
			reply(http.StatusOK, `{"id":"a1","status":"ACCEPTED"}`)},
		"PUT user skill": {func(ctx context.Context, a *Account) error {
			_, err := a.SetUserSkill(ctx, UserSkill{SkillID: "1", UserID: "u", Value: dec("50")})
			return err
		}, reply(http.StatusOK, `{"id":"s"}`)},
		"submit with retry_id": {func(ctx context.Context, a *Account) error {
			_, err := a.SubmitExternal(ctx, &ExternalSubmit{PoolID: "1", UserID: "u", RetryID: "r1", Reward: money.MustParse("1")})
			return err
		}, reply(http.StatusOK, `{}`)},
	}
	for callName, c := range calls {
		for failName, failure := range failures {
			t.Run(callName+" after "+failName, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, nil, failure, c.response)
				if err := c.call(context.Background(), h.account); err != nil {
					t.Fatalf("call failed: %v", err)
				}
				reqs := h.fake.requests()
				if len(reqs) != 2 {
					t.Fatalf("%d requests, want 2", len(reqs))
				}
				if string(reqs[0].Body) != string(reqs[1].Body) {
					t.Errorf("retry sent a different body:\n%s\n%s", reqs[0].Body, reqs[1].Body)
				}
				if diff := cmp.Diff([]time.Duration{500 * time.Millisecond}, h.clock.Sleeps()); diff != "" {
					t.Errorf("sleeps (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	t.Parallel()
	for _, failure := range []step{
		tolokaError(http.StatusBadRequest, CodeValidationError, "bad", `{"x":{"code":"C","message":"m"}}`),
		tolokaError(http.StatusUnauthorized, CodeAuthenticationError, "who", ""),
		tolokaError(http.StatusForbidden, CodeAccessDenied, "no", ""),
		tolokaError(http.StatusNotFound, CodeDoesNotExist, "none", ""),
		tolokaError(http.StatusConflict, CodeConflictState, "state", ""),
		reply(http.StatusUnsupportedMediaType, ``),
	} {
		h := newHarness(t, nil, failure)
		if _, err := h.account.GetProject(context.Background(), "7"); err == nil {
			t.Fatal("call succeeded")
		}
		if n := len(h.fake.requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
		if s := h.clock.Sleeps(); len(s) != 0 {
			t.Errorf("slept %v", s)
		}
	}
}

func TestCreatesRetriedOnlyWhenRefused(t *testing.T) {
	t.Parallel()
	creates := map[string]func(context.Context, *Account) error{
		"project": func(ctx context.Context, a *Account) error {
			_, err := a.CreateProject(ctx, &Project{PublicName: "p"})
			return err
		},
		"pool": func(ctx context.Context, a *Account) error {
			_, err := a.CreatePool(ctx, &Pool{ProjectID: "1"})
			return err
		},
	}
	created := reply(http.StatusCreated, `{"id":"9"}`)
	tests := []struct {
		name         string
		steps        []step
		wantRequests int
		wantCode     codes.Code // OK when the create succeeds
	}{
		{"500 is ambiguous", []step{tolokaError(http.StatusInternalServerError, CodeInternalError, "oops", ""), created}, 1, codes.Unavailable},
		{"502 is ambiguous", []step{reply(http.StatusBadGateway, ``), created}, 1, codes.Unavailable},
		{"503 is ambiguous", []step{tolokaError(http.StatusServiceUnavailable, CodeRemoteServiceUnavailable, "later", ""), created}, 1, codes.Unavailable},
		{"504 is ambiguous", []step{reply(http.StatusGatewayTimeout, ``), created}, 1, codes.Unavailable},
		{"dropped connection is ambiguous", []step{hangUp(), created}, 1, codes.Unavailable},
		{"429 is a refusal", []step{tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow", ""), created}, 2, codes.OK},
		{"400 is final", []step{tolokaError(http.StatusBadRequest, CodeValidationError, "bad", ""), created}, 1, codes.InvalidArgument},
	}
	for kind, create := range creates {
		for _, tc := range tests {
			t.Run(kind+": "+tc.name, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, nil, tc.steps...)
				err := create(context.Background(), h.account)
				if got := serviceerror.ToStatus(err).Code(); err != nil && got != tc.wantCode || err == nil && tc.wantCode != codes.OK {
					t.Errorf("error %v (code %s), want code %s", err, got, tc.wantCode)
				}
				if n := len(h.fake.requests()); n != tc.wantRequests {
					t.Errorf("%d requests, want %d", n, tc.wantRequests)
				}
			})
		}
	}
}

func TestUnsentRequestsAreRetried(t *testing.T) {
	t.Parallel()
	// Nothing listens: every attempt fails to connect, which is safe to
	// repeat even for creates and submits without a retry_id.
	calls := map[string]func(context.Context, *Account) error{
		"create project": func(ctx context.Context, a *Account) error { _, err := a.CreateProject(ctx, &Project{}); return err },
		"submit without retry_id": func(ctx context.Context, a *Account) error {
			_, err := a.SubmitExternal(ctx, &ExternalSubmit{PoolID: "1", UserID: "u", Reward: money.MustParse("1")})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var attempts []Attempt
			h := newHarness(t, func(c *Config) { c.OnAttempt = func(a Attempt) { attempts = append(attempts, a) } })
			h.fake.srv.Close()
			err := call(context.Background(), h.account)
			var un *serviceerror.Unavailable
			if !errors.As(err, &un) {
				t.Fatalf("got %v, want Unavailable", err)
			}
			if len(attempts) != 4 {
				t.Errorf("%d attempts, want 4", len(attempts))
			}
		})
	}
}

func TestSubmitRetries(t *testing.T) {
	t.Parallel()
	submit := func(retryID string) *ExternalSubmit {
		return &ExternalSubmit{PoolID: "123", UserID: "u1", RetryID: retryID, Reward: money.MustParse("10.520")}
	}
	t.Run("with retry_id: same retry_id on every attempt", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil,
			tolokaError(http.StatusServiceUnavailable, CodeRemoteServiceUnavailable, "later", ""),
			hangUp(),
			reply(http.StatusGatewayTimeout, ``),
			reply(http.StatusOK, `{"speed_quality_balance_match":true,"restriction_match":false,"filter_match":true}`))
		got, err := h.account.SubmitExternal(context.Background(), submit("sub-42"))
		if err != nil {
			t.Fatal(err)
		}
		want := &ExternalSubmitResult{SpeedQualityBalanceMatch: true, FilterMatch: true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		reqs := h.fake.requests()
		if len(reqs) != 4 {
			t.Fatalf("%d requests, want 4", len(reqs))
		}
		for i, r := range reqs {
			if diff := jsonDiff(t, `{"pool_id":123,"user_id":"u1","retry_id":"sub-42","reward":10.520}`, r.Body); diff != "" {
				t.Errorf("attempt %d body (-want +got):\n%s", i+1, diff)
			}
		}
	})
	for name, failure := range map[string]step{
		"503":     tolokaError(http.StatusServiceUnavailable, CodeRemoteServiceUnavailable, "later", ""),
		"500":     tolokaError(http.StatusInternalServerError, CodeInternalError, "oops", ""),
		"429":     tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow", "", "Retry-After", "1"),
		"hang up": hangUp(),
	} {
		t.Run("without retry_id: not retried after "+name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil, failure, reply(http.StatusOK, `{}`))
			if _, err := h.account.SubmitExternal(context.Background(), submit("")); err == nil {
				t.Fatal("submit succeeded")
			}
			if n := len(h.fake.requests()); n != 1 {
				t.Errorf("%d requests, want 1: a repeat could pay twice", n)
			}
		})
	}
}

func TestRetryAfterAndInterval(t *testing.T) {
	t.Parallel()
	const date = "Tue, 04 Mar 2025 10:00:45 GMT"
	noDate := func(s step) step {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Date"] = nil // the server adds none
			s(w, r)
		}
	}
	tests := []struct {
		name         string
		budget       time.Duration
		failure      step
		wantSleeps   []time.Duration
		wantRequests int
		wantErr      error // for calls that fail
	}{
		{
			name:       "Retry-After seconds",
			failure:    tolokaError(http.StatusServiceUnavailable, CodeRemoteServiceUnavailable, "later", "", "Retry-After", "7"),
			wantSleeps: []time.Duration{7 * time.Second}, wantRequests: 2,
		},
		{
			name:       "Retry-After HTTP date, by Toloka's clock",
			failure:    reply(http.StatusServiceUnavailable, ``, "Date", date, "Retry-After", "Tue, 04 Mar 2025 10:00:57 GMT"),
			wantSleeps: []time.Duration{12 * time.Second}, wantRequests: 2,
		},
		{
			name:       "429 MIN waits for the next minute by Toloka's clock",
			failure:    tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow", `{"interval":"MIN"}`, "Date", date),
			wantSleeps: []time.Duration{15 * time.Second}, wantRequests: 2,
		},
		{
			name:    "429 MIN without Date uses the local clock plus a second",
			budget:  2 * time.Minute,
			failure: noDate(tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow", `{"interval":"min"}`)),
			// The fake clock is at 10:00:00.
			wantSleeps: []time.Duration{61 * time.Second}, wantRequests: 2,
		},
		{
			name:       "Retry-After wins over interval",
			failure:    tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow", `{"interval":"MIN"}`, "Retry-After", "3", "Date", date),
			wantSleeps: []time.Duration{3 * time.Second}, wantRequests: 2,
		},
		{
			name:         "429 MIN beyond the budget fails at once",
			failure:      tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow", `{"interval":"MIN"}`, "Date", "Tue, 04 Mar 2025 10:00:01 GMT"),
			wantRequests: 1,
			wantErr:      &serviceerror.ResourceExhausted{Message: "Toloka's per-minute limit was reached (Toloka request_id req-TOO_MANY_REQUESTS)", RetryAfter: 59 * time.Second},
		},
		{
			name:         "429 HOUR is not waited for",
			budget:       2 * time.Hour,
			failure:      tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow", `{"interval":"HOUR"}`, "Date", date),
			wantRequests: 1,
			wantErr:      &serviceerror.ResourceExhausted{Message: "Toloka's hourly limit was reached (Toloka request_id req-TOO_MANY_REQUESTS)", RetryAfter: 59*time.Minute + 15*time.Second},
		},
		{
			name:         "Retry-After beyond the budget fails at once and carries RetryAfter",
			failure:      tolokaError(http.StatusServiceUnavailable, CodeRemoteServiceUnavailable, "later", "", "Retry-After", "120"),
			wantRequests: 1,
			wantErr:      &serviceerror.Unavailable{Message: "Toloka: later (REMOTE_SERVICE_UNAVAILABLE) (Toloka request_id req-REMOTE_SERVICE_UNAVAILABLE); retry after 2m0s", RetryAfter: 2 * time.Minute},
		},
		{
			name:         "429 Retry-After beyond the budget carries RetryAfter",
			failure:      tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow", "", "Retry-After", "120"),
			wantRequests: 1,
			wantErr:      &serviceerror.ResourceExhausted{Message: "Toloka's rate limit was reached (Toloka request_id req-TOO_MANY_REQUESTS)", RetryAfter: 2 * time.Minute},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(c *Config) {
				c.Retry.Budget = tc.budget
				c.Timeout = 3 * time.Hour // the waits are fake; keep the real deadline out of the way
			}, tc.failure, okProject)
			_, err := h.account.GetProject(context.Background(), "7")
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("call failed: %v", err)
			case tc.wantErr != nil:
				var got error
				var re *serviceerror.ResourceExhausted
				var un *serviceerror.Unavailable
				switch {
				case errors.As(err, &re):
					got = re
				case errors.As(err, &un):
					got = un
				default:
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				if diff := cmp.Diff(tc.wantErr, got); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tc.wantSleeps, h.clock.Sleeps()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if n := len(h.fake.requests()); n != tc.wantRequests {
				t.Errorf("%d requests, want %d", n, tc.wantRequests)
			}
		})
	}
}

func TestRetryBounds(t *testing.T) {
	t.Parallel()
	unavailable := tolokaError(http.StatusServiceUnavailable, CodeRemoteServiceUnavailable, "later", "")
	many := make([]step, 10)
	for i := range many {
		many[i] = unavailable
	}
	tests := []struct {
		name         string
		policy       RetryPolicy
		wantSleeps   []time.Duration
		wantRequests int
	}{
		{
			name:   "budget stops retries before attempts run out",
			policy: RetryPolicy{MaxAttempts: 10, BaseBackoff: time.Second, MaxBackoff: time.Minute, Budget: 10 * time.Second},
			// 1+2+4 = 7s; a further 8s would end at 15s, past the budget.
			wantSleeps: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, wantRequests: 4,
		},
		{
			name:         "attempts bound retries; backoff is capped",
			policy:       RetryPolicy{MaxAttempts: 6, BaseBackoff: time.Second, MaxBackoff: 3 * time.Second, Budget: time.Hour},
			wantSleeps:   []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second},
			wantRequests: 6,
		},
		{
			name:         "defaults",
			wantSleeps:   []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second},
			wantRequests: 4,
		},
		{
			name:         "one attempt disables retries",
			policy:       RetryPolicy{MaxAttempts: 1},
			wantRequests: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(c *Config) { c.Retry = tc.policy }, many...)
			start := h.clock.Now()
			_, err := h.account.GetProject(context.Background(), "7")
			var te *Error
			if !errors.As(err, &te) || te.Attempts != tc.wantRequests {
				t.Fatalf("got %v, want a *toloka.Error after %d attempts", err, tc.wantRequests)
			}
			if code := serviceerror.ToStatus(err).Code(); code != codes.Unavailable {
				t.Errorf("code %s, want Unavailable", code)
			}
			if diff := cmp.Diff(tc.wantSleeps, h.clock.Sleeps()); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if n := len(h.fake.requests()); n != tc.wantRequests {
				t.Errorf("%d requests, want %d", n, tc.wantRequests)
			}
			budget := tc.policy.Budget
			if budget == 0 {
				budget = 30 * time.Second
			}
			if spent := h.clock.Now().Sub(start); spent > budget {
				t.Errorf("spent %s, more than the budget %s", spent, budget)
			}
		})
	}
}

func TestFullJitter(t *testing.T) {
	t.Parallel()
	c, err := New(Config{Retry: RetryPolicy{BaseBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := c.backoff(3) // ceiling 400ms
		if d < 0 || d > 400*time.Millisecond {
			t.Fatalf("backoff %s outside [0, 400ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct backoffs in 1000: not jittered", len(seen))
	}
}

func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	t.Run("GET is retried", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.AttemptTimeout = 50 * time.Millisecond }, hang, okProject)
		if _, err := h.account.GetProject(context.Background(), "7"); err != nil {
			t.Fatal(err)
		}
		if n := len(h.fake.requests()); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})
	t.Run("create is not retried", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, func(c *Config) { c.AttemptTimeout = 50 * time.Millisecond }, hang, okProject)
		_, err := h.account.CreateProject(context.Background(), &Project{})
		var un *serviceerror.Unavailable
		if !errors.As(err, &un) || un.Message != "Toloka could not be reached: no answer in time" {
			t.Fatalf("got %v, want Unavailable (no answer in time)", err)
		}
		if n := len(h.fake.requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

func TestPatchAssignmentAlreadyApplied(t *testing.T) {
	t.Parallel()
	// The first PATCH is applied but its answer lost; the retry is refused
	// because the assignment is ACCEPTED already; the client reads it back.
	h := newHarness(t, nil,
		hangUp(),
		tolokaError(http.StatusConflict, CodeInappropriateStatus, "Inappropriate status", `{"appropriate_statuses":["SUBMITTED","REJECTED"]}`),
		reply(http.StatusOK, `{"id":"a1","status":"ACCEPTED","user_id":"u1"}`))
	got, err := h.account.AcceptAssignment(context.Background(), "a1", "ok")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != AssignmentAccepted || got.UserID != "u1" {
		t.Errorf("got %+v", got)
	}
	var methods []string
	for _, r := range h.fake.requests() {
		methods = append(methods, r.Method)
	}
	if diff := cmp.Diff([]string{"PATCH", "PATCH", "GET"}, methods); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestPatchAssignmentConflictOnFirstAttempt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, tolokaError(http.StatusConflict, CodeInappropriateStatus, "Inappropriate status", `{"appropriate_statuses":["SUBMITTED"]}`))
	_, err := h.account.RejectAssignment(context.Background(), "a1", "no")
	if code := serviceerror.ToStatus(err).Code(); code != codes.FailedPrecondition {
		t.Errorf("got %v (%s), want FailedPrecondition", err, code)
	}
	if n := len(h.fake.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (no read-back on a first-attempt conflict)", n)
	}
}

func TestDeleteRetriedAfterSuccess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, hangUp(), tolokaError(http.StatusNotFound, CodeDoesNotExist, "gone", ""))
	if err := h.account.DeleteUserRestriction(context.Background(), "r1"); err != nil {
		t.Fatalf("got %v, want success (the first attempt deleted it)", err)
	}
	h2 := newHarness(t, nil, tolokaError(http.StatusNotFound, CodeDoesNotExist, "gone", ""))
	err := h2.account.DeleteUserRestriction(context.Background(), "r1")
	if code := serviceerror.ToStatus(err).Code(); code != codes.NotFound {
		t.Errorf("first-attempt 404: got %v, want NotFound", err)
	}
}

func TestPoolActions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil,
		reply(http.StatusAccepted, `{"id":"op-1","type":"POOL.CLOSE","status":"PENDING","submitted":"2025-03-04T10:00:00.123","parameters":{"pool_id":"21"}}`),
		reply(http.StatusNoContent, ``))
	op, err := h.account.ClosePool(context.Background(), "21")
	if err != nil {
		t.Fatal(err)
	}
	submitted := NewTime(time.Date(2025, 3, 4, 10, 0, 0, 123_000_000, time.UTC))
	want := &Operation{ID: "op-1", Type: OperationPoolClose, Status: OperationPending, Submitted: &submitted, Parameters: json.RawMessage(`{"pool_id":"21"}`)}
	if diff := cmp.Diff(want, op); diff != "" {
		t.Errorf("operation (-want +got):\n%s", diff)
	}
	op, err = h.account.ClosePool(context.Background(), "21")
	if err != nil || op != nil {
		t.Errorf("already closed: got %v, %v; want nil, nil", op, err)
	}
}

func TestWaitPastDeadlineIsNotSlept(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil, tolokaError(http.StatusServiceUnavailable, CodeRemoteServiceUnavailable, "later", "", "Retry-After", "20"), okProject)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.account.GetProject(ctx, "7")
	var un *serviceerror.Unavailable
	if !errors.As(err, &un) {
		t.Fatalf("got %v, want Unavailable at once", err)
	}
	if s := h.clock.Sleeps(); len(s) != 0 {
		t.Errorf("slept %v past the caller's deadline", s)
	}
	if n := len(h.fake.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
