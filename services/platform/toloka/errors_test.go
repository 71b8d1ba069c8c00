package toloka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	const twoFields = `{"public_description":{"code":"VALUE_REQUIRED","message":"Value must be present and not equal to null"},
		"assignment_max_duration_seconds":{"code":"VALUE_LESS_THAN_MIN","message":"Value must be greater than or equal to 5"}}`
	const nested = `{"mixer_config":{"real_tasks_count":{"code":"VALUE_LESS_THAN_MIN","message":"too small"}}}`
	tests := []struct {
		name       string
		response   step
		wantDomain error // nil: no serviceerror type (INTERNAL)
		wantCode   codes.Code
		wantErr    *Error // fields of the *Error compared (Op, Path, Attempts, Err ignored)
	}{
		{
			name:       "validation error names the first field",
			response:   reply(http.StatusBadRequest, `{"request_id":"r-1","code":"VALIDATION_ERROR","message":"Validation failed","payload":`+twoFields+`}`),
			wantDomain: &serviceerror.InvalidArgument{Field: "public_description", Reason: "Toloka: Value must be present and not equal to null (VALUE_REQUIRED) (Toloka request_id r-1)"},
			wantCode:   codes.InvalidArgument,
			wantErr: &Error{
				StatusCode: 400, RequestID: "r-1", Code: CodeValidationError, Message: "Validation failed", Payload: json.RawMessage(twoFields),
				FieldErrors: []FieldError{
					{Field: "public_description", Code: "VALUE_REQUIRED", Message: "Value must be present and not equal to null"},
					{Field: "assignment_max_duration_seconds", Code: "VALUE_LESS_THAN_MIN", Message: "Value must be greater than or equal to 5"},
				},
			},
		},
		{
			name:       "nested validation payload",
			response:   tolokaError(http.StatusBadRequest, CodeValidationError, "Validation failed", nested),
			wantDomain: &serviceerror.InvalidArgument{Field: "mixer_config.real_tasks_count", Reason: "Toloka: too small (VALUE_LESS_THAN_MIN) (Toloka request_id req-VALIDATION_ERROR)"},
			wantCode:   codes.InvalidArgument,
			wantErr: &Error{StatusCode: 400, RequestID: "req-VALIDATION_ERROR", Code: CodeValidationError, Message: "Validation failed", Payload: json.RawMessage(nested),
				FieldErrors: []FieldError{{Field: "mixer_config.real_tasks_count", Code: "VALUE_LESS_THAN_MIN", Message: "too small"}}},
		},
		{
			name:       "does not exist",
			response:   tolokaError(http.StatusNotFound, CodeDoesNotExist, "Object not found", ""),
			wantDomain: &serviceerror.NotFound{Resource: "Toloka pool", ID: "21"},
			wantCode:   codes.NotFound,
			wantErr:    &Error{StatusCode: 404, RequestID: "req-DOES_NOT_EXIST", Code: CodeDoesNotExist, Message: "Object not found"},
		},
		{
			name:       "conflict state",
			response:   tolokaError(http.StatusConflict, CodeConflictState, "Pool must be closed", ""),
			wantDomain: &serviceerror.FailedPrecondition{Message: "Toloka: Pool must be closed (CONFLICT_STATE) (Toloka request_id req-CONFLICT_STATE)"},
			wantCode:   codes.FailedPrecondition,
			wantErr:    &Error{StatusCode: 409, RequestID: "req-CONFLICT_STATE", Code: CodeConflictState, Message: "Pool must be closed"},
		},
		{
			name:       "inappropriate status",
			response:   tolokaError(http.StatusConflict, CodeInappropriateStatus, "Inappropriate status", `{"appropriate_statuses":["CLOSED"]}`),
			wantDomain: &serviceerror.FailedPrecondition{Message: "Toloka: Inappropriate status (INAPPROPRIATE_STATUS) (Toloka request_id req-INAPPROPRIATE_STATUS); allowed only in status CLOSED"},
			wantCode:   codes.FailedPrecondition,
			wantErr: &Error{StatusCode: 409, RequestID: "req-INAPPROPRIATE_STATUS", Code: CodeInappropriateStatus, Message: "Inappropriate status",
				Payload: json.RawMessage(`{"appropriate_statuses":["CLOSED"]}`), AppropriateStatuses: []string{"CLOSED"}},
		},
		{
			name:       "unarchived pools",
			response:   tolokaError(http.StatusConflict, CodeUnarchivedPoolsConflict, "Archive pools first", ""),
			wantDomain: &serviceerror.FailedPrecondition{Message: "Toloka: Archive pools first (UNARCHIVED_POOLS_CONFLICT) (Toloka request_id req-UNARCHIVED_POOLS_CONFLICT)"},
			wantCode:   codes.FailedPrecondition,
			wantErr:    &Error{StatusCode: 409, RequestID: "req-UNARCHIVED_POOLS_CONFLICT", Code: CodeUnarchivedPoolsConflict, Message: "Archive pools first"},
		},
		{
			name:       "bad credential is the requester's configuration",
			response:   tolokaError(http.StatusUnauthorized, CodeAuthenticationError, "Bad token", ""),
			wantDomain: &serviceerror.FailedPrecondition{Message: "Toloka refused the credential: check the requester's API key (Toloka request_id req-AUTHENTICATION_ERROR)"},
			wantCode:   codes.FailedPrecondition,
			wantErr:    &Error{StatusCode: 401, RequestID: "req-AUTHENTICATION_ERROR", Code: CodeAuthenticationError, Message: "Bad token"},
		},
		{
			name:       "access denied",
			response:   tolokaError(http.StatusForbidden, CodeAccessDenied, "Access denied", ""),
			wantDomain: &serviceerror.PermissionDenied{Message: `Toloka denied the requester access to pool "21" (Toloka request_id req-ACCESS_DENIED)`},
			wantCode:   codes.PermissionDenied,
			wantErr:    &Error{StatusCode: 403, RequestID: "req-ACCESS_DENIED", Code: CodeAccessDenied, Message: "Access denied"},
		},
		{
			name:       "internal error",
			response:   tolokaError(http.StatusInternalServerError, CodeInternalError, "Oops", ""),
			wantDomain: &serviceerror.Unavailable{Message: "Toloka: Oops (INTERNAL_ERROR) (Toloka request_id req-INTERNAL_ERROR)"},
			wantCode:   codes.Unavailable,
			wantErr:    &Error{StatusCode: 500, RequestID: "req-INTERNAL_ERROR", Code: CodeInternalError, Message: "Oops", Attempts: 4},
		},
		{
			name:       "proxy HTML 502",
			response:   reply(http.StatusBadGateway, `<html>Bad Gateway</html>`, "Content-Type", "text/html"),
			wantDomain: &serviceerror.Unavailable{Message: "Toloka: Bad Gateway"},
			wantCode:   codes.Unavailable,
			wantErr:    &Error{StatusCode: 502, Attempts: 4},
		},
		{
			name:       "code wins over status",
			response:   tolokaError(http.StatusBadRequest, CodeConflictState, "odd", ""),
			wantDomain: &serviceerror.FailedPrecondition{Message: "Toloka: odd (CONFLICT_STATE) (Toloka request_id req-CONFLICT_STATE)"},
			wantCode:   codes.FailedPrecondition,
			wantErr:    &Error{StatusCode: 400, RequestID: "req-CONFLICT_STATE", Code: CodeConflictState, Message: "odd"},
		},
		{
			name:       "too large",
			response:   reply(http.StatusRequestEntityTooLarge, ``),
			wantDomain: &serviceerror.InvalidArgument{Reason: "the request is too large for Toloka"},
			wantCode:   codes.InvalidArgument,
			wantErr:    &Error{StatusCode: 413},
		},
		{
			name:     "unsupported media type is our bug",
			response: reply(http.StatusUnsupportedMediaType, ``),
			wantCode: codes.Internal,
			wantErr:  &Error{StatusCode: 415},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Enough answers for every retry of retryable statuses.
			h := newHarness(t, nil, tc.response, tc.response, tc.response, tc.response)
			_, err := h.account.GetPool(context.Background(), "21")
			if err == nil {
				t.Fatal("call succeeded")
			}
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("error %T %v is not a *toloka.Error", err, err)
			}
			opts := cmp.Options{
				cmpopts.IgnoreFields(Error{}, "Op", "Method", "Path", "Resource", "ResourceID", "Err"),
				cmp.Comparer(func(a, b json.RawMessage) bool {
					var ca, cb bytes.Buffer
					return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && ca.String() == cb.String() || string(a) == string(b)
				}),
			}
			if tc.wantErr.Attempts == 0 {
				tc.wantErr.Attempts = 1
			}
			if diff := cmp.Diff(tc.wantErr, te, opts); diff != "" {
				t.Errorf("*Error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDomain, DomainError(te)); diff != "" {
				t.Errorf("domain error (-want +got):\n%s", diff)
			}
			if got := serviceerror.ToStatus(err).Code(); got != tc.wantCode {
				t.Errorf("gRPC code %s, want %s", got, tc.wantCode)
			}
		})
	}
}

func TestTooManyRequestsMapping(t *testing.T) {
	t.Parallel()
	// A daily quota: not retried, ResourceExhausted with the time to midnight
	// UTC by Toloka's clock.
	h := newHarness(t, nil, tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "Too many requests", `{"interval":"DAY"}`,
		"Date", "Tue, 04 Mar 2025 22:30:00 GMT"))
	_, err := h.account.CreatePool(context.Background(), &Pool{ProjectID: "1"})
	var re *serviceerror.ResourceExhausted
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want ResourceExhausted", err)
	}
	want := &serviceerror.ResourceExhausted{Message: "Toloka's daily limit was reached (Toloka request_id req-TOO_MANY_REQUESTS)", RetryAfter: 90 * time.Minute}
	if diff := cmp.Diff(want, re); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	st := serviceerror.ToStatus(err)
	if st.Code() != codes.ResourceExhausted || len(st.Details()) != 1 {
		t.Errorf("status %v with details %v, want RESOURCE_EXHAUSTED with RetryInfo", st.Code(), st.Details())
	}
	if n := len(h.fake.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (a daily quota is not waited for)", n)
	}
}

func TestTransportErrors(t *testing.T) {
	t.Parallel()
	t.Run("connection refused is Unavailable", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil)
		h.fake.srv.Close()
		_, err := h.account.GetProject(context.Background(), "7")
		var un *serviceerror.Unavailable
		if !errors.As(err, &un) || un.Message != "Toloka could not be reached: connection failed" {
			t.Fatalf("got %v, want Unavailable", err)
		}
		if code := serviceerror.ToStatus(err).Code(); code != codes.Unavailable {
			t.Errorf("code %s", code)
		}
	})
	t.Run("caller's deadline is DeadlineExceeded", func(t *testing.T) {
		t.Parallel()
		block := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
		h := newHarness(t, nil, block)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := h.account.GetProject(ctx, "7")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want DeadlineExceeded", err)
		}
		if code := serviceerror.ToStatus(err).Code(); code != codes.DeadlineExceeded {
			t.Errorf("code %s, want DeadlineExceeded", code)
		}
	})
	t.Run("default per-call timeout", func(t *testing.T) {
		t.Parallel()
		block := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
		h := newHarness(t, func(c *Config) { c.Timeout = 50 * time.Millisecond }, block)
		_, err := h.account.GetProject(context.Background(), "7")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want DeadlineExceeded from the default timeout", err)
		}
	})
	t.Run("undecodable success is Internal", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, nil, reply(http.StatusOK, `{"speed_quality_balance_match": "maybe"`))
		_, err := h.account.SubmitExternal(context.Background(), &ExternalSubmit{PoolID: "1", UserID: "u", RetryID: "r", Reward: *dec("1")})
		if err == nil {
			t.Fatal("succeeded")
		}
		if code := serviceerror.ToStatus(err).Code(); code != codes.Internal {
			t.Errorf("code %s, want Internal (the submit may have been paid: not Unavailable)", code)
		}
		if n := len(h.fake.requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

func TestValidationBeforeSending(t *testing.T) {
	t.Parallel()
	ok := func() *ExternalSubmit { return &ExternalSubmit{PoolID: "123", UserID: "u1", Reward: *dec("1.00")} }
	start := time.Date(2024, 8, 22, 14, 0, 0, 0, time.UTC)
	before := start.Add(-time.Second)
	tests := []struct {
		name      string
		call      func(context.Context, *Account) error
		wantField string
	}{
		{"submit without pool", func(ctx context.Context, a *Account) error {
			s := ok()
			s.PoolID = ""
			_, err := a.SubmitExternal(ctx, s)
			return err
		}, "pool_id"},
		{"submit with non-numeric pool", func(ctx context.Context, a *Account) error {
			s := ok()
			s.PoolID = "12a"
			_, err := a.SubmitExternal(ctx, s)
			return err
		}, "pool_id"},
		{"submit with padded pool", func(ctx context.Context, a *Account) error {
			s := ok()
			s.PoolID = "0123"
			_, err := a.SubmitExternal(ctx, s)
			return err
		}, "pool_id"},
		{"submit without user", func(ctx context.Context, a *Account) error {
			s := ok()
			s.UserID = ""
			_, err := a.SubmitExternal(ctx, s)
			return err
		}, "user_id"},
		{"submit without reward", func(ctx context.Context, a *Account) error {
			_, err := a.SubmitExternal(ctx, &ExternalSubmit{PoolID: "1", UserID: "u"})
			return err
		}, "reward"},
		{"submit with negative reward", func(ctx context.Context, a *Account) error {
			s := ok()
			s.Reward = *dec("-0.01")
			_, err := a.SubmitExternal(ctx, s)
			return err
		}, "reward"},
		{"submit with quality above 1", func(ctx context.Context, a *Account) error {
			s := ok()
			s.Quality = dec("1.01")
			_, err := a.SubmitExternal(ctx, s)
			return err
		}, "quality"},
		{"submit with bad custom log", func(ctx context.Context, a *Account) error {
			s := ok()
			s.CustomLog = "{"
			_, err := a.SubmitExternal(ctx, s)
			return err
		}, "custom_log"},
		{"submit ending before it starts", func(ctx context.Context, a *Account) error {
			s := ok()
			s.StartTime, s.EndTime = &start, &before
			_, err := a.SubmitExternal(ctx, s)
			return err
		}, "end_time"},
		{"submit with negative count", func(ctx context.Context, a *Account) error {
			s := ok()
			s.RealTasksCount = Ptr(-1)
			_, err := a.SubmitExternal(ctx, s)
			return err
		}, "real_tasks_count"},
		{"patch to a bad status", func(ctx context.Context, a *Account) error {
			_, err := a.PatchAssignment(ctx, "a1", AssignmentPatch{Status: AssignmentSkipped})
			return err
		}, "status"},
		{"empty pool id", func(ctx context.Context, a *Account) error { _, err := a.GetPool(ctx, ""); return err }, "pool_id"},
		{"priority out of range", func(ctx context.Context, a *Account) error { _, err := a.SetPoolPriority(ctx, "1", 101); return err }, "priority"},
		{"skill above 100", func(ctx context.Context, a *Account) error {
			_, err := a.SetUserSkill(ctx, UserSkill{SkillID: "1", UserID: "u", Value: dec("100.5")})
			return err
		}, "value"},
		{"restriction without its pool", func(ctx context.Context, a *Account) error {
			_, err := a.SetUserRestriction(ctx, UserRestriction{Scope: ScopePool, UserID: "u"})
			return err
		}, "scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, nil)
			err := tc.call(context.Background(), h.account)
			var ia *serviceerror.InvalidArgument
			if !errors.As(err, &ia) || ia.Field != tc.wantField {
				t.Fatalf("got %v, want InvalidArgument on %s", err, tc.wantField)
			}
			if n := len(h.fake.requests()); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
}
