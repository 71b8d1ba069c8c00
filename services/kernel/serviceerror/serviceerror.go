// Package serviceerror defines Crowdgate's typed domain errors and converts
// them to gRPC status at one boundary.
//
// Code inside services/ returns these errors (or errors that wrap them);
// nothing inside services/ builds a gRPC status by hand. The gateway's
// interceptors call ToStatus once per failed call, and grpc-gateway derives
// the REST status from the gRPC code, so a domain error has the same meaning
// over both protocols. Errors this package does not know become INTERNAL with
// a generic message, so no internal detail (or secret) leaks to a caller.
package serviceerror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// InvalidArgument reports bad input in one field of a request.
type InvalidArgument struct {
	// Field is the request field at fault, in proto field-path form
	// ("pool.reward_per_assignment", "quality").
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *InvalidArgument) Error() string {
	if e.Field == "" {
		return "invalid argument: " + e.Reason
	}
	return fmt.Sprintf("invalid argument: %s: %s", e.Field, e.Reason)
}

// NewInvalidArgument returns an InvalidArgument for field with a formatted reason.
func NewInvalidArgument(field, format string, args ...any) error {
	return &InvalidArgument{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// NotFound reports that a resource does not exist (or is not visible to the
// caller, which must look the same).
type NotFound struct {
	// Resource names the kind of thing ("project", "session").
	Resource string
	// ID is the identifier that was asked for.
	ID string
}

func (e *NotFound) Error() string {
	if e.ID == "" {
		return e.Resource + " not found"
	}
	return fmt.Sprintf("%s %q not found", e.Resource, e.ID)
}

// AlreadyExists reports that a resource with the same identity exists.
type AlreadyExists struct {
	Resource string
	ID       string
}

func (e *AlreadyExists) Error() string {
	return fmt.Sprintf("%s %q already exists", e.Resource, e.ID)
}

// FailedPrecondition reports that the system is not in a state the call
// needs, for example an open pool that must be stopped before it is changed.
type FailedPrecondition struct {
	// Message says what state is wrong and, where it helps, what is left to do.
	Message string
}

func (e *FailedPrecondition) Error() string { return e.Message }

// NewFailedPrecondition returns a FailedPrecondition with a formatted message.
func NewFailedPrecondition(format string, args ...any) error {
	return &FailedPrecondition{Message: fmt.Sprintf(format, args...)}
}

// ResourceExhausted reports that a rate limit or quota refused the call.
type ResourceExhausted struct {
	Message string
	// RetryAfter, when positive, is how long the caller should wait.
	RetryAfter time.Duration
}

func (e *ResourceExhausted) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s (retry after %s)", e.Message, e.RetryAfter)
	}
	return e.Message
}

// Unavailable reports a dependency (Toloka, Redis) that could not be reached
// or answered with a transient failure; the call may succeed later.
//
// Message is what the client reads; it never holds an internal address or a
// raw store error. Cause is the underlying failure for the log: Error()
// includes it, ToStatus never does. Cause is deliberately not unwrapped, so
// a typed error inside it (Toloka's NotFound, say) never changes what the
// failure as a whole is; read it with the Cause function.
type Unavailable struct {
	// Message says what is unavailable, in words fit for a client.
	Message string
	// RetryAfter, when positive, is how long the client should wait before
	// trying again (sent as RetryInfo, and as Retry-After over REST).
	RetryAfter time.Duration
	// Cause is the failure behind it, for the log only.
	Cause error
}

func (e *Unavailable) Error() string {
	if e.Cause == nil {
		return e.Message
	}
	return e.Message + ": " + e.Cause.Error()
}

// Cause returns the cause of the first Unavailable in err's chain, or nil.
func Cause(err error) error {
	var un *Unavailable
	if errors.As(err, &un) {
		return un.Cause
	}
	return nil
}

// PermissionDenied reports an authenticated caller that may not do this.
type PermissionDenied struct {
	Message string
}

func (e *PermissionDenied) Error() string { return e.Message }

// Unauthenticated reports a call without valid credentials.
type Unauthenticated struct {
	Message string
}

func (e *Unauthenticated) Error() string { return e.Message }

// Unimplemented reports an operation this build does not provide yet.
type Unimplemented struct {
	Operation string
}

func (e *Unimplemented) Error() string { return e.Operation + " is not implemented" }

// ToStatus converts err to a gRPC status. It is the only place where domain
// errors meet gRPC codes. Unknown errors become INTERNAL with a fixed message:
// their text may hold details no caller should see.
func ToStatus(err error) *status.Status {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		// Already a status (from a gRPC library call): pass it through.
		return s
	}
	var (
		ia  *InvalidArgument
		nf  *NotFound
		ae  *AlreadyExists
		fp  *FailedPrecondition
		re  *ResourceExhausted
		un  *Unavailable
		pd  *PermissionDenied
		ua  *Unauthenticated
		uim *Unimplemented
	)
	switch {
	case errors.As(err, &ia):
		s := status.New(codes.InvalidArgument, ia.Error())
		if ia.Field != "" {
			if d, derr := s.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: ia.Field, Description: ia.Reason}}}); derr == nil {
				return d
			}
		}
		return s
	case errors.As(err, &nf):
		return status.New(codes.NotFound, nf.Error())
	case errors.As(err, &ae):
		return status.New(codes.AlreadyExists, ae.Error())
	case errors.As(err, &fp):
		return status.New(codes.FailedPrecondition, fp.Error())
	case errors.As(err, &re):
		return withRetry(status.New(codes.ResourceExhausted, re.Error()), re.RetryAfter)
	case errors.As(err, &un):
		return withRetry(status.New(codes.Unavailable, un.Message), un.RetryAfter)
	case errors.As(err, &pd):
		return status.New(codes.PermissionDenied, pd.Error())
	case errors.As(err, &ua):
		return status.New(codes.Unauthenticated, ua.Error())
	case errors.As(err, &uim):
		return status.New(codes.Unimplemented, uim.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "canceled")
	default:
		return status.New(codes.Internal, "internal error")
	}
}

// withRetry adds a RetryInfo detail of d to s when d is positive.
func withRetry(s *status.Status, d time.Duration) *status.Status {
	if d <= 0 {
		return s
	}
	if withDetail, err := s.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)}); err == nil {
		return withDetail
	}
	return s
}
