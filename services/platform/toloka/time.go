package toloka

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// Time is a date and time in Toloka's format: UTC ISO 8601 without a zone,
// YYYY-MM-DDThh:mm:ss[.sss].
//
// It marshals in UTC with milliseconds when they are not zero (finer digits
// are dropped) and parses with or without a fraction, with or without
// seconds ("2020-09-01T13:00", as in Toloka's own examples) and tolerates a
// trailing "Z" or numeric zone offset, which it applies. A JSON null or
// empty string parses as the zero Time, which marshals as null.
type Time struct {
	time.Time
}

// NewTime returns t as a Time.
func NewTime(t time.Time) Time { return Time{Time: t} }

// Equal reports whether t and u are the same instant. (It lets go-cmp
// compare Times.)
func (t Time) Equal(u Time) bool { return t.Time.Equal(u.Time) }

const tolokaLayout = "2006-01-02T15:04:05"

// String formats t the way Toloka does.
func (t Time) String() string {
	if t.IsZero() {
		return ""
	}
	u := t.UTC()
	s := u.Format(tolokaLayout)
	if ms := u.Nanosecond() / int(time.Millisecond); ms != 0 {
		s += fmt.Sprintf(".%03d", ms)
	}
	return s
}

// MarshalJSON writes t as a JSON string in Toloka's format.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return []byte(`"` + t.String() + `"`), nil
}

// UnmarshalJSON reads Toloka's format (see Time).
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*t = Time{}
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("toloka: time %s is not a JSON string", b)
	}
	v, err := ParseTime(string(b[1 : len(b)-1]))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// ParseTime reads a time in Toloka's format (see Time). An empty string is
// the zero Time.
func ParseTime(s string) (Time, error) {
	if s == "" {
		return Time{}, nil
	}
	for _, layout := range []string{
		"2006-01-02T15:04:05.999999999Z07:00", // with a zone (RFC 3339, "Z" included)
		"2006-01-02T15:04:05.999999999",       // Toloka's own, with or without fraction
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
	} {
		if v, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return Time{Time: v.UTC()}, nil
		}
	}
	// Lower-case "z" is not accepted by time.Parse; tolerate it.
	if strings.HasSuffix(s, "z") {
		return ParseTime(strings.TrimSuffix(s, "z") + "Z")
	}
	return Time{}, fmt.Errorf("toloka: time %q is not YYYY-MM-DDThh:mm:ss[.sss]", s)
}
