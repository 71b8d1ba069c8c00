package toloka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// Toloka's error codes (the "code" of an error body).
const (
	CodeValidationError          = "VALIDATION_ERROR"
	CodeAuthenticationError      = "AUTHENTICATION_ERROR"
	CodeAccessDenied             = "ACCESS_DENIED"
	CodeDoesNotExist             = "DOES_NOT_EXIST"
	CodeConflictState            = "CONFLICT_STATE"
	CodeInappropriateStatus      = "INAPPROPRIATE_STATUS"
	CodeEmptyPool                = "EMPTY_POOL"
	CodeOperationAlreadyExists   = "OPERATION_ALREADY_EXISTS"
	CodeUnarchivedPoolsConflict  = "UNARCHIVED_POOLS_CONFLICT"
	CodeThereIsActiveAssignment  = "THERE_IS_ACTIVE_ASSIGNMENT"
	CodeTooManyRequests          = "TOO_MANY_REQUESTS"
	CodeInternalError            = "INTERNAL_ERROR"
	CodeRemoteServiceUnavailable = "REMOTE_SERVICE_UNAVAILABLE"
)

// Quota intervals a 429 body names in payload.interval.
const (
	IntervalMinute = "MIN"
	IntervalHour   = "HOUR"
	IntervalDay    = "DAY"
)

// FieldError is one entry of a VALIDATION_ERROR payload.
type FieldError struct {
	// Field is the payload key, dotted for nested objects
	// ("public_description", "mixer_config.real_tasks_count").
	Field string
	// Code is Toloka's code for the problem ("VALUE_REQUIRED").
	Code string
	// Message explains it.
	Message string
}

// Error is a failed Toloka call: an error response, a transport failure, or
// an undecodable response.
//
// It unwraps to the serviceerror type that matches it (see Unwrap), and to
// the underlying transport or context error, if any.
type Error struct {
	// Op names the call ("pool.create").
	Op string
	// Method and Path are the last request's ("POST", "/pools").
	Method, Path string
	// StatusCode is the HTTP status of the last response, 0 when none arrived.
	StatusCode int
	// RequestID, Code, Message and Payload are Toloka's error body.
	RequestID string
	Code      string
	Message   string
	Payload   json.RawMessage
	// FieldErrors lists a VALIDATION_ERROR's fields in payload order.
	FieldErrors []FieldError
	// Interval is a 429's payload.interval (MIN, HOUR, DAY) if any.
	Interval string
	// AppropriateStatuses is an INAPPROPRIATE_STATUS's
	// payload.appropriate_statuses.
	AppropriateStatuses []string
	// RetryAfter is how long Toloka asked to wait (Retry-After, or derived
	// from payload.interval), 0 when unknown.
	RetryAfter time.Duration
	// Resource and ResourceID name the object the call addressed
	// ("pool", "42"), for NotFound.
	Resource, ResourceID string
	// Attempts is how many requests the call made.
	Attempts int
	// Err is the transport, context or decoding error, if any.
	Err error
}

// Error describes the failure. It never contains a credential.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("toloka: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.Message != "" {
			b.WriteString(": " + e.Message)
		}
		for i, fe := range e.FieldErrors {
			if i == 0 {
				b.WriteString(" (")
			} else {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s: %s", fe.Field, fe.Code)
			if fe.Message != "" {
				b.WriteString(" " + fe.Message)
			}
			if i == len(e.FieldErrors)-1 {
				b.WriteString(")")
			}
		}
		if e.RequestID != "" {
			b.WriteString(" [request_id " + e.RequestID + "]")
		}
		if e.Err != nil {
			b.WriteString(": ")
		}
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

// Unwrap returns the serviceerror type for e (see DomainError) and the
// transport, context or decoding error, whichever exist.
func (e *Error) Unwrap() []error {
	var errs []error
	if d := DomainError(e); d != nil {
		errs = append(errs, d)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// errAttemptTimeout reports an attempt cut off by Config.AttemptTimeout while
// the call's own context was still live.
var errAttemptTimeout = errors.New("Toloka did not answer within the attempt timeout")

// DomainError decides, in one place, which Crowdgate domain error a failed
// Toloka call is. Toloka's code wins over the HTTP status where both speak.
// It returns nil when the call's context ended (serviceerror.ToStatus maps
// the context error itself) and for failures that are Crowdgate's own bugs
// (an undecodable response, 415), which become INTERNAL.
func DomainError(e *Error) error {
	if e.Err != nil && (errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded)) {
		return nil
	}
	if e.StatusCode == 0 {
		if e.Err == nil {
			return nil
		}
		return &serviceerror.Unavailable{Message: "Toloka could not be reached: " + transportReason(e.Err)}
	}
	if e.StatusCode >= 200 && e.StatusCode < 300 {
		return nil // a success response we could not read
	}
	suffix := e.requestSuffix()
	credential := &serviceerror.FailedPrecondition{Message: "Toloka refused the credential: check the requester's API key" + suffix}
	switch e.Code {
	case CodeValidationError:
		return e.invalidArgument()
	case CodeDoesNotExist:
		return e.notFound()
	case CodeAuthenticationError:
		return credential
	case CodeAccessDenied:
		return &serviceerror.PermissionDenied{Message: "Toloka denied the requester access" + e.what() + suffix}
	case CodeTooManyRequests:
		return e.resourceExhausted()
	case CodeConflictState, CodeInappropriateStatus, CodeEmptyPool, CodeOperationAlreadyExists,
		CodeUnarchivedPoolsConflict, CodeThereIsActiveAssignment:
		return e.failedPrecondition()
	case CodeInternalError, CodeRemoteServiceUnavailable:
		return e.unavailable()
	}
	switch s := e.StatusCode; {
	case s == http.StatusBadRequest:
		return e.invalidArgument()
	case s == http.StatusUnauthorized:
		return credential
	case s == http.StatusForbidden:
		return &serviceerror.PermissionDenied{Message: "Toloka denied the requester access" + e.what() + suffix}
	case s == http.StatusNotFound:
		return e.notFound()
	case s == http.StatusConflict:
		return e.failedPrecondition()
	case s == http.StatusRequestEntityTooLarge:
		return &serviceerror.InvalidArgument{Reason: "the request is too large for Toloka" + suffix}
	case s == http.StatusTooManyRequests:
		return e.resourceExhausted()
	case s == http.StatusRequestTimeout || s >= 500:
		return e.unavailable()
	}
	return nil
}

func (e *Error) requestSuffix() string {
	if e.RequestID == "" {
		return ""
	}
	return " (Toloka request_id " + e.RequestID + ")"
}

func (e *Error) what() string {
	if e.Resource == "" {
		return ""
	}
	if e.ResourceID == "" {
		return " to the " + e.Resource
	}
	return fmt.Sprintf(" to %s %q", e.Resource, e.ResourceID)
}

func (e *Error) tolokaSays() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	return "Toloka: " + msg + e.requestSuffix()
}

func (e *Error) invalidArgument() error {
	if len(e.FieldErrors) == 0 {
		return &serviceerror.InvalidArgument{Reason: e.tolokaSays()}
	}
	fe := e.FieldErrors[0]
	reason := fe.Message
	if reason == "" {
		reason = fe.Code
	} else if fe.Code != "" {
		reason += " (" + fe.Code + ")"
	}
	return &serviceerror.InvalidArgument{Field: fe.Field, Reason: "Toloka: " + reason + e.requestSuffix()}
}

func (e *Error) notFound() error {
	resource := "Toloka " + e.Resource
	if e.Resource == "" {
		resource = "Toloka object"
	}
	return &serviceerror.NotFound{Resource: resource, ID: e.ResourceID}
}

func (e *Error) failedPrecondition() error {
	msg := e.tolokaSays()
	if len(e.AppropriateStatuses) > 0 {
		msg += "; allowed only in status " + strings.Join(e.AppropriateStatuses, ", ")
	}
	return &serviceerror.FailedPrecondition{Message: msg}
}

func (e *Error) resourceExhausted() error {
	msg := "Toloka's rate limit was reached"
	switch e.Interval {
	case IntervalMinute:
		msg = "Toloka's per-minute limit was reached"
	case IntervalHour:
		msg = "Toloka's hourly limit was reached"
	case IntervalDay:
		msg = "Toloka's daily limit was reached"
	}
	return &serviceerror.ResourceExhausted{Message: msg + e.requestSuffix(), RetryAfter: e.RetryAfter}
}

func (e *Error) unavailable() error {
	msg := e.tolokaSays()
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf("; retry after %s", e.RetryAfter)
	}
	return &serviceerror.Unavailable{Message: msg, RetryAfter: e.RetryAfter}
}

// transportReason is a short, credential-free description of a transport
// failure for a domain error (the full error stays in Error.Err).
func transportReason(err error) string {
	switch {
	case errors.Is(err, errAttemptTimeout):
		return "no answer in time"
	case isDialError(err):
		return "connection failed"
	default:
		return "connection lost"
	}
}

// errorBody is Toloka's error response.
type errorBody struct {
	RequestID string          `json:"request_id"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Payload   json.RawMessage `json:"payload"`
}

// decodeErrorBody fills e from a response body, tolerating bodies that are
// not Toloka's JSON (proxies answer with HTML).
func (e *Error) decodeErrorBody(body []byte) {
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		return
	}
	e.RequestID, e.Code, e.Message = eb.RequestID, eb.Code, eb.Message
	if p := bytes.TrimSpace(eb.Payload); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		e.Payload = p
	}
	if e.Payload == nil {
		return
	}
	var known struct {
		Interval            string   `json:"interval"`
		AppropriateStatuses []string `json:"appropriate_statuses"`
	}
	if err := json.Unmarshal(e.Payload, &known); err == nil {
		e.Interval = strings.ToUpper(known.Interval)
		e.AppropriateStatuses = known.AppropriateStatuses
	}
	if e.Code == CodeValidationError || (e.Code == "" && e.StatusCode == http.StatusBadRequest) {
		e.FieldErrors = fieldErrors(e.Payload, "")
	}
}

// fieldErrors lists {code, message} entries of a validation payload in
// document order, descending into nested objects.
func fieldErrors(payload json.RawMessage, prefix string) []FieldError {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	var out []FieldError
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return out
		}
		field := key
		if prefix != "" {
			field = prefix + "." + key
		}
		var leaf struct {
			Code    *string `json:"code"`
			Message string  `json:"message"`
		}
		if err := json.Unmarshal(raw, &leaf); err == nil && leaf.Code != nil {
			out = append(out, FieldError{Field: field, Code: *leaf.Code, Message: leaf.Message})
			continue
		}
		out = append(out, fieldErrors(raw, field)...)
	}
	return out
}
