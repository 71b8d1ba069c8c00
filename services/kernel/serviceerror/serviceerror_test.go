package serviceerror

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		code    codes.Code
		message string
	}{
		{"invalid argument", NewInvalidArgument("pool.priority", "must be between -100 and 100"), codes.InvalidArgument, "invalid argument: pool.priority: must be between -100 and 100"},
		{"wrapped not found", fmt.Errorf("lookup: %w", &NotFound{Resource: "pool", ID: "p1"}), codes.NotFound, `pool "p1" not found`},
		{"already exists", &AlreadyExists{Resource: "project", ID: "x"}, codes.AlreadyExists, `project "x" already exists`},
		{"failed precondition", NewFailedPrecondition("pool is open: close it first"), codes.FailedPrecondition, "pool is open: close it first"},
		{"resource exhausted", &ResourceExhausted{Message: "rate limited", RetryAfter: 2 * time.Second}, codes.ResourceExhausted, "rate limited (retry after 2s)"},
		{"unavailable", &Unavailable{Message: "toloka unavailable"}, codes.Unavailable, "toloka unavailable"},
		{"permission denied", &PermissionDenied{Message: "read-only key"}, codes.PermissionDenied, "read-only key"},
		{"unauthenticated", &Unauthenticated{Message: "no key"}, codes.Unauthenticated, "no key"},
		{"unimplemented", &Unimplemented{Operation: "X"}, codes.Unimplemented, "X is not implemented"},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "deadline exceeded"},
		{"status passes through", status.Error(codes.Aborted, "aborted"), codes.Aborted, "aborted"},
		{"unknown hides its text", errors.New("dial redis 10.0.0.1: secret-ish detail"), codes.Internal, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ToStatus(tc.err)
			if s.Code() != tc.code || s.Message() != tc.message {
				t.Errorf("ToStatus = %v %q, want %v %q", s.Code(), s.Message(), tc.code, tc.message)
			}
		})
	}
}

func TestDetailsNameTheFieldAndRetryDelay(t *testing.T) {
	s := ToStatus(NewInvalidArgument("quality", "must be between 0 and 1"))
	var found bool
	for _, d := range s.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) == 1 && br.FieldViolations[0].Field == "quality" {
			found = true
		}
	}
	if !found {
		t.Errorf("no BadRequest detail naming the field in %v", s.Details())
	}
	s = ToStatus(&ResourceExhausted{Message: "slow down", RetryAfter: 1500 * time.Millisecond})
	found = false
	for _, d := range s.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.RetryDelay.AsDuration() == 1500*time.Millisecond {
			found = true
		}
	}
	if !found {
		t.Errorf("no RetryInfo of 1.5s in %v", s.Details())
	}
	if ToStatus(nil) != nil {
		t.Error("ToStatus(nil) != nil")
	}
}

// A store or dependency failure reaches the client as a generic message with
// a retry hint; its cause (internal addresses, raw store errors) stays in
// the error for the log and never in the status.
func TestUnavailableHidesItsCauseAndHintsARetry(t *testing.T) {
	cause := errors.New("dial tcp 127.0.0.1:40569: connect: connection refused")
	err := fmt.Errorf("read pool: %w", &Unavailable{Message: "the datastore is unavailable; try again", RetryAfter: time.Second, Cause: cause})
	s := ToStatus(err)
	if s.Code() != codes.Unavailable || s.Message() != "the datastore is unavailable; try again" {
		t.Errorf("ToStatus = %v %q", s.Code(), s.Message())
	}
	var retry *errdetails.RetryInfo
	for _, d := range s.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
		if strings.Contains(fmt.Sprint(d), "127.0.0.1") {
			t.Errorf("a detail carries the cause: %v", d)
		}
	}
	if retry == nil || retry.RetryDelay.AsDuration() != time.Second {
		t.Errorf("RetryInfo = %v, want 1s", retry)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:40569") {
		t.Errorf("Error() = %q: the log must see the cause", err.Error())
	}
	if got := Cause(err); got != cause {
		t.Errorf("Cause = %v, want the store error", got)
	}
	// The cause is not unwrapped: a NotFound inside it must not make the
	// whole failure look like NOT_FOUND.
	wrapped := &Unavailable{Message: "Toloka is unavailable", Cause: &NotFound{Resource: "pool"}}
	if c := ToStatus(wrapped).Code(); c != codes.Unavailable {
		t.Errorf("Unavailable around a NotFound = %v, want Unavailable", c)
	}
}
