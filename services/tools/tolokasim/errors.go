package tolokasim

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Error codes the emulator answers with, as Toloka spells them.
const (
	CodeValidation               = "VALIDATION_ERROR"
	CodeAuthentication           = "AUTHENTICATION_ERROR"
	CodeAccessDenied             = "ACCESS_DENIED"
	CodeDoesNotExist             = "DOES_NOT_EXIST"
	CodeConflictState            = "CONFLICT_STATE"
	CodeInappropriateStatus      = "INAPPROPRIATE_STATUS"
	CodeUnarchivedPoolsConflict  = "UNARCHIVED_POOLS_CONFLICT"
	CodeThereIsActiveAssignment  = "THERE_IS_ACTIVE_ASSIGNMENT"
	CodeTooManyRequests          = "TOO_MANY_REQUESTS"
	CodeInternal                 = "INTERNAL_ERROR"
	CodeRemoteServiceUnavailable = "REMOTE_SERVICE_UNAVAILABLE"
	// CodePayloadTooLarge and CodeUnsupportedMediaType are the emulator's
	// names for 413 and 415: Toloka does not document codes for them.
	CodePayloadTooLarge      = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
)

// Field-level validation codes (the "code" inside a VALIDATION_ERROR payload
// entry), a subset of toloka-kit's ValidationErrorCodes.
const (
	FieldValueRequired        = "VALUE_REQUIRED"
	FieldValueLessThanMin     = "VALUE_LESS_THAN_MIN"
	FieldValueGreaterThanMax  = "VALUE_GREATER_THAN_MAX"
	FieldValueNotAllowed      = "VALUE_NOT_ALLOWED"
	FieldInvalidValue         = "INVALID_VALUE"
	FieldUnknownEnumValue     = "UNKNOWN_ENUM_VALUE"
	FieldStringExpected       = "STRING_EXPECTED"
	FieldBooleanExpected      = "BOOLEAN_EXPECTED"
	FieldIntegerExpected      = "INTEGER_EXPECTED"
	FieldFloatExpected        = "FLOAT_EXPECTED"
	FieldObjectExpected       = "OBJECT_EXPECTED"
	FieldArrayExpected        = "ARRAY_EXPECTED"
	FieldJSONExpected         = "JSON_EXPECTED"
	FieldBlankString          = "BLANK_STRING_NOT_ALLOWED"
	FieldStringTooLong        = "STRING_LENGTH_GREATER_THAN_MAX"
	FieldInvalidDateTime      = "INVALID_DATE_TIME_SYNTAX"
	FieldDateOutOfRange       = "DATE_OUT_OF_RANGE"
	FieldInvalidURL           = "INVALID_URL_SYNTAX"
	FieldEntityDoesNotExist   = "ENTITY_DOES_NOT_EXIST"
	FieldNotNullBody          = "NOT_NULL_BODY"
	FieldValueCannotBeChanged = "VALUE_CANNOT_BE_CHANGED"
)

// Error is a Toloka API error: the HTTP status and the fields of the JSON
// body {"request_id", "code", "message", "payload"}. Go methods of Server
// return it so embedding tests see the same code the HTTP API would send.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is Toloka's error code, such as DOES_NOT_EXIST.
	Code string
	// Message is a human-readable explanation.
	Message string
	// Payload is the optional structured detail (nil renders as null).
	Payload any
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// FieldError is one entry of a VALIDATION_ERROR payload, keyed by the
// field's dotted path.
type FieldError struct {
	// Code is a field-level code such as VALUE_REQUIRED.
	Code string `json:"code"`
	// Message explains the problem.
	Message string `json:"message"`
}

// errorBody is the wire form of an Error.
type errorBody struct {
	RequestID string `json:"request_id"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Payload   any    `json:"payload"`
}

func errNotFound(kind, id string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeDoesNotExist, Message: fmt.Sprintf("%s %s does not exist", kind, id)}
}

func errConflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: CodeConflictState, Message: fmt.Sprintf(format, args...)}
}

func errInappropriate(message string, statuses ...string) *Error {
	return &Error{
		Status:  http.StatusConflict,
		Code:    CodeInappropriateStatus,
		Message: message,
		Payload: map[string]any{"appropriate_statuses": statuses},
	}
}

func errBadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeValidation, Message: fmt.Sprintf(format, args...)}
}

// fieldErrors collects validation failures by dotted field path.
type fieldErrors map[string]FieldError

func (fe fieldErrors) add(path, code, format string, args ...any) {
	if _, ok := fe[path]; ok {
		return // keep the first problem found for a field
	}
	fe[path] = FieldError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// err returns the VALIDATION_ERROR for fe, or nil when fe is empty.
func (fe fieldErrors) err() *Error {
	if len(fe) == 0 {
		return nil
	}
	paths := make([]string, 0, len(fe))
	for p := range fe {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return &Error{
		Status:  http.StatusBadRequest,
		Code:    CodeValidation,
		Message: "Validation failed: " + strings.Join(paths, ", "),
		Payload: map[string]FieldError(fe),
	}
}

func singleFieldError(path, code, format string, args ...any) *Error {
	fe := fieldErrors{}
	fe.add(path, code, format, args...)
	return fe.err()
}

// errorJSON renders e with the given request id.
func errorJSON(e *Error, requestID string) []byte {
	return mustJSON(errorBody{RequestID: requestID, Code: e.Code, Message: e.Message, Payload: e.Payload})
}
