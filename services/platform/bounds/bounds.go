// Package bounds bounds the size of every request Crowdgate takes, before
// any handler runs and so before any I/O (Redis, Toloka).
//
// Check walks a request message with protoreflect (nested messages, lists,
// maps, oneofs, google.protobuf.Struct and Value) and returns the first
// field that breaks its bound as a serviceerror.InvalidArgument naming it in
// proto field-path form: "pool.private_name",
// "project.toloker_requirements.countries[3]",
// `project.task_spec.input_spec["image"].type`. The gateway runs it in a
// unary interceptor after authentication, for gRPC and REST alike.
//
// The bounds are in one table (table.go), keyed by a field's full proto
// name (so a message has the same bounds wherever it appears) or by a bare
// field name for what is bounded the same in every message (ids, api_key,
// page_token, display_name, comments). A field that is not in the table
// takes the defaults:
//
//   - a string: DefaultChars (1,024) characters;
//   - a bytes field: DefaultBytes (4,096) bytes (the API has none today);
//   - a repeated field or a map: DefaultItems (100) elements;
//   - a map's string keys: DefaultKeyChars (128) characters each;
//   - a google.protobuf.Timestamp: valid (Timestamp.CheckValid), not before
//     Epoch (2014-01-01, before Toloka existed) and not after now +
//     DefaultHorizon (5 years);
//   - nesting: at most MaxDepth (64) messages below the request, whatever
//     the field (filters and Struct values are recursive).
//
// Where the per-field bounds come from: Toloka's documented limits where it
// documents one (seeds 001-004 and toloka-api-facts.md: public_name 150,
// public_description 2,048, assignment public_comment 2,048, restriction
// private_comment 499, a filter's JSON 10,000 characters); the limits
// Crowdgate's own packages already check (credential and tenant display
// names 200, retry_id 128, custom_log 64 KiB, page tokens); the size of what
// a field holds (ISO country and language code lists, money strings of at
// most 12+1+8 digits); and otherwise a sane bound stated in the table: ids
// at most IDBytes (128) bytes, API keys and codes a few hundred bytes,
// URLs 2,048 characters, and BigTextChars (262,144) characters for the big
// texts (public_instructions, task_spec view markup, script and styles).
// Every entry says where its number comes from. Package-specific validation
// (the project's 150-character public_name, the submission's id syntax)
// stays where it is and may be stricter; these bounds come first and cap
// what any handler, Redis or Toloka ever sees.
//
// Strings are counted in characters (Unicode code points) where the bound is
// Toloka's or a human text's, and in bytes where the field is a machine token
// (ids, keys, codes, money, enum-like names). A bytes field is counted in
// bytes. A map key longer than its bound names the map (the key itself may
// be the oversized thing); a list longer than its bound names the first
// element past the bound ("countries[250]").
package bounds

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// Defaults for fields the table does not name.
const (
	// DefaultChars bounds a string field, in characters.
	DefaultChars = 1024
	// DefaultBytes bounds a bytes field, in bytes.
	DefaultBytes = 4096
	// DefaultItems bounds a repeated field or a map, in elements.
	DefaultItems = 100
	// DefaultKeyChars bounds each string key of a map, in characters.
	DefaultKeyChars = 128
	// DefaultHorizon is how far after now a timestamp may be.
	DefaultHorizon = 5 * Year
	// MaxDepth bounds how many messages deep a request may nest (the
	// request itself is depth 0).
	MaxDepth = 64
)

// Sizes the table uses more than once.
const (
	// IDBytes bounds an id (Crowdgate's or Toloka's), in bytes.
	IDBytes = 128
	// BigTextChars bounds the big texts: instructions and task view markup,
	// script and styles. A request is at most 1 MiB anyway.
	BigTextChars = 256 << 10
	// URLChars bounds a URL.
	URLChars = 2048
	// MoneyBytes bounds a decimal amount: money.Parse takes at most 12
	// integer and 8 fraction digits, so 22 bytes with the point and a sign.
	MoneyBytes = 32
	// TokenBytes bounds an enum-like name (a type, scope, operator).
	TokenBytes = 64
)

// Year is 365 days, the unit of the time horizons.
const Year = 365 * 24 * time.Hour

// Epoch is the earliest time a request may carry: Toloka opened in 2014, so
// nothing a request describes (work, pools, submissions) happened before.
var Epoch = time.Date(2014, time.January, 1, 0, 0, 0, 0, time.UTC)

// Rule bounds one field. A zero limit takes the default for the field's
// kind; Source says where the numbers come from.
type Rule struct {
	// Chars bounds a string (each element of a repeated string), in
	// characters. Ignored when Bytes is set.
	Chars int
	// Bytes bounds a string or bytes field (each element of a repeated
	// one), in bytes.
	Bytes int
	// Items bounds a repeated field or a map, in elements.
	Items int
	// KeyChars bounds each string key of a map, in characters.
	KeyChars int
	// Horizon is how far after now a google.protobuf.Timestamp may be.
	Horizon time.Duration
	// Source says where the bound comes from.
	Source string
}

// For returns the rule of field fd: its table entry with the defaults for
// the zero limits.
func For(fd protoreflect.FieldDescriptor) Rule {
	r, ok := table[fd.FullName()]
	if !ok {
		r = table[protoreflect.FullName(fd.Name())]
	}
	if r.Chars == 0 && r.Bytes == 0 {
		if fd.Kind() == protoreflect.BytesKind {
			r.Bytes = DefaultBytes
		} else {
			r.Chars = DefaultChars
		}
	}
	if r.Items == 0 {
		r.Items = DefaultItems
	}
	if r.KeyChars == 0 {
		r.KeyChars = DefaultKeyChars
	}
	if r.Horizon == 0 {
		r.Horizon = DefaultHorizon
	}
	return r
}

const timestampName protoreflect.FullName = "google.protobuf.Timestamp"

// Check returns nil when every field of m is within its bound, or a
// *serviceerror.InvalidArgument naming the first field that is not (in the
// order the message declares its fields; map entries in key order). now is
// the time timestamps are bounded from.
func Check(m protoreflect.Message, now time.Time) error {
	c := checker{now: now}
	return c.message(m, 0)
}

// checker walks one request. The path to the field being checked is kept
// as a stack of segments and written out only for an error, so a request
// within bounds costs no allocation for its field paths.
type checker struct {
	now  time.Time
	path []segment
}

// segment is one step of a field path: a field name, a list index or a
// map key.
type segment struct {
	name  protoreflect.Name
	index int
	key   *protoreflect.MapKey
}

func (c *checker) push(s segment) { c.path = append(c.path, s) }
func (c *checker) pop()           { c.path = c.path[:len(c.path)-1] }

// fail returns an InvalidArgument naming the current path.
func (c *checker) fail(format string, args ...any) error {
	var b strings.Builder
	for _, s := range c.path {
		switch {
		case s.key != nil:
			b.WriteString("[" + strconv.Quote(s.key.String()) + "]")
		case s.name == "":
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(string(s.name))
		}
	}
	return serviceerror.NewInvalidArgument(b.String(), format, args...)
}

func (c *checker) message(m protoreflect.Message, depth int) error {
	if depth > MaxDepth {
		return c.fail("nests more than %d messages deep", MaxDepth)
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		r := For(fd)
		c.push(segment{name: fd.Name()})
		var err error
		switch {
		case fd.IsList():
			err = c.list(fd, r, m.Get(fd).List(), depth)
		case fd.IsMap():
			err = c.mapField(fd, r, m.Get(fd).Map(), depth)
		default:
			err = c.value(fd, r, m.Get(fd), depth)
		}
		if err != nil {
			return err
		}
		c.pop()
	}
	return nil
}

func (c *checker) list(fd protoreflect.FieldDescriptor, r Rule, l protoreflect.List, depth int) error {
	if n := l.Len(); n > r.Items {
		c.push(segment{index: r.Items})
		return c.fail("%s may have at most %d elements, got %d", fd.Name(), r.Items, n)
	}
	for i := range l.Len() {
		c.push(segment{index: i})
		if err := c.value(fd, r, l.Get(i), depth); err != nil {
			return err
		}
		c.pop()
	}
	return nil
}

func (c *checker) mapField(fd protoreflect.FieldDescriptor, r Rule, mp protoreflect.Map, depth int) error {
	if n := mp.Len(); n > r.Items {
		return c.fail("may have at most %d entries, got %d", r.Items, n)
	}
	keys := make([]protoreflect.MapKey, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	stringKeys := fd.MapKey().Kind() == protoreflect.StringKind
	if stringKeys {
		for _, k := range keys {
			if n := utf8.RuneCountInString(k.String()); n > r.KeyChars {
				// The key is the oversized thing: name the map, not the key.
				return c.fail("keys may have at most %d characters, got one of %d", r.KeyChars, n)
			}
		}
	}
	// In key order, so the first error is the same on every call.
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
		if stringKeys {
			return strings.Compare(a.String(), b.String())
		}
		return strings.Compare(fmt.Sprint(a.Interface()), fmt.Sprint(b.Interface()))
	})
	for i := range keys {
		c.push(segment{key: &keys[i]})
		if err := c.value(fd.MapValue(), r, mp.Get(keys[i]), depth); err != nil {
			return err
		}
		c.pop()
	}
	return nil
}

// value checks one value of field fd: the field's own, or one element of a
// list or a map (for a map, fd is the map's value field).
func (c *checker) value(fd protoreflect.FieldDescriptor, r Rule, v protoreflect.Value, depth int) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return c.text(r, v.String())
	case protoreflect.BytesKind:
		limit := r.Bytes
		if limit == 0 {
			limit = DefaultBytes
		}
		if n := len(v.Bytes()); n > limit {
			return c.fail("must be at most %d bytes, got %d", limit, n)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if fd.Message().FullName() == timestampName {
			return c.timestamp(r, v.Message())
		}
		return c.message(v.Message(), depth+1)
	}
	return nil
}

func (c *checker) text(r Rule, s string) error {
	if r.Bytes > 0 {
		if len(s) > r.Bytes {
			return c.fail("must be at most %d bytes, got %d", r.Bytes, len(s))
		}
		return nil
	}
	// A string of at most Chars bytes has at most Chars characters: count
	// only longer ones.
	if len(s) > r.Chars {
		if n := utf8.RuneCountInString(s); n > r.Chars {
			return c.fail("must be at most %d characters, got %d", r.Chars, n)
		}
	}
	return nil
}

// timestamp checks a google.protobuf.Timestamp: valid, not before Epoch,
// not after now + the rule's horizon.
func (c *checker) timestamp(r Rule, m protoreflect.Message) error {
	fields := m.Descriptor().Fields()
	ts := timestamppb.Timestamp{
		Seconds: m.Get(fields.ByNumber(1)).Int(),
		Nanos:   int32(m.Get(fields.ByNumber(2)).Int()),
	}
	if err := ts.CheckValid(); err != nil {
		return c.fail("is not a valid time: %v", err)
	}
	if reason := outOfTime(ts.AsTime(), c.now, r.Horizon); reason != "" {
		return c.fail("%s", reason)
	}
	return nil
}

// CheckTime refuses t, the value of field, when it is before Epoch or more
// than horizon after now. Validation code that bounds a time itself (a
// submit's start_time) uses it to say the same thing the same way.
func CheckTime(field string, t, now time.Time, horizon time.Duration) error {
	if reason := outOfTime(t, now, horizon); reason != "" {
		return serviceerror.NewInvalidArgument(field, "%s", reason)
	}
	return nil
}

// outOfTime says what is wrong with t, or "" when it is in bounds.
func outOfTime(t, now time.Time, horizon time.Duration) string {
	switch {
	case t.Before(Epoch):
		return fmt.Sprintf("must not be before %s (Toloka did not exist), got %s", Epoch.Format(time.DateOnly), t.UTC().Format(time.RFC3339))
	case t.After(now.Add(horizon)):
		return fmt.Sprintf("must not be more than %s in the future, got %s", describe(horizon), t.UTC().Format(time.RFC3339))
	}
	return ""
}

// describe writes a horizon in years or days when it is a whole number of
// them.
func describe(d time.Duration) string {
	switch {
	case d%Year == 0 && d >= Year:
		if d == Year {
			return "1 year"
		}
		return fmt.Sprintf("%d years", d/Year)
	case d%(24*time.Hour) == 0 && d >= 24*time.Hour:
		if d == 24*time.Hour {
			return "1 day"
		}
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// DiscardUnknown drops the fields of m and of every message in it that the
// build does not know (proto3 ignores them; kept, they would be stored with
// a clone of the request). Call it after Check, which bounds the nesting it
// recurses through.
func DiscardUnknown(m protoreflect.Message) {
	if m.GetUnknown() != nil {
		m.SetUnknown(nil)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				DiscardUnknown(l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				DiscardUnknown(mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			DiscardUnknown(v.Message())
		}
		return true
	})
}
