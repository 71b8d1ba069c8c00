package tolokasim

import (
	"errors"
	"time"
)

// TimeLayout is how the emulator renders dates: UTC, ISO 8601, milliseconds,
// no zone, as Toloka documents ("YYYY-MM-DDThh:mm:ss[.sss]").
const TimeLayout = "2006-01-02T15:04:05.000"

// FormatTime renders t in TimeLayout after converting it to UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// zoneless layouts are read as UTC; fractional seconds are accepted after
// the seconds field by time.Parse even though the layout does not show them.
var zonelessLayouts = []string{
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
}

var zonedLayouts = []string{
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04Z07:00",
}

var errTimeSyntax = errors.New("want YYYY-MM-DDThh:mm[:ss[.sss]] in UTC")

// ParseTime reads a Toloka date. Toloka documents UTC without a zone
// ("2020-09-01T13:00", "2024-08-22T14:00:00", "...:00.123"); the emulator
// also tolerates a trailing "Z" or a numeric offset (converted to UTC),
// since seed 001's own examples carry a "Z".
func ParseTime(s string) (time.Time, error) {
	for _, layout := range zonelessLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	for _, layout := range zonedLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errTimeSyntax
}

// msTruncate drops sub-millisecond precision so stored times compare equal
// to their rendered form (clients page with created_gt=<rendered created>).
func msTruncate(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }
