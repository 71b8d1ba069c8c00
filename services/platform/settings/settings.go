// Package settings is how Crowdgate is configured: every setting is a
// command-line flag whose default comes from an environment variable, and
// each capability declares its own.
//
// A package that has settings exports a struct of them with a method List
// returning one Setting per field (flag, environment variable, default,
// usage, and the field it sets). The gateway composes those lists and
// registers them once; a package's defaults come from the same list
// (Defaults), so the default of a setting is written once. Adding a setting
// touches its package and the README's table (a test keeps the table true),
// nothing else.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"
)

// Setting is one configuration entry.
type Setting struct {
	// Flag is the command-line flag, without dashes.
	Flag string
	// Env is the environment variable that sets the flag's default.
	Env string
	// Default applies when neither is given.
	Default string
	// Usage says what it does.
	Usage string
	// Value is the field the setting sets.
	Value flag.Value
}

// New returns a setting: flag -name, environment variable env, built-in
// default def, what it does, and the field it sets.
func New(name, env, def, usage string, value flag.Value) Setting {
	return Setting{Flag: name, Env: env, Default: def, Usage: usage, Value: value}
}

// Register defines settings on fs. Each flag's default is its environment
// variable (read through getenv) when set, the built-in default otherwise.
// Every refused value, from the environment or a flag, is reported naming
// the environment variable.
func Register(fs *flag.FlagSet, getenv func(string) string, list []Setting) error {
	var errs []error
	for _, s := range list {
		v := &named{Value: s.Value, env: s.Env}
		def := s.Default
		if e := getenv(s.Env); e != "" {
			def = e
		}
		if err := v.Set(def); err != nil {
			errs = append(errs, err)
		}
		fs.Var(v, s.Flag, fmt.Sprintf("%s (env %s)", s.Usage, s.Env))
	}
	return errors.Join(errs...)
}

// named is a setting's value whose errors name its environment variable.
type named struct {
	flag.Value
	env string
}

func (n *named) Set(s string) error {
	if err := n.Value.Set(s); err != nil {
		return fmt.Errorf("%s: %w", n.env, err)
	}
	return nil
}

func (n *named) String() string {
	if n == nil || n.Value == nil {
		return ""
	}
	return n.Value.String()
}

// Defaults sets every setting of list to its built-in default. It panics on
// a default its own parser refuses: that is a bug, caught by any test.
func Defaults(list []Setting) {
	for _, s := range list {
		if err := s.Value.Set(s.Default); err != nil {
			panic(fmt.Sprintf("settings: the default %q of -%s does not parse: %v", s.Default, s.Flag, err))
		}
	}
}

// String is a flag.Value over a string field.
func String(p *string) flag.Value { return (*stringValue)(p) }

// Secret is String for a secret: its value never shows (in -h output the
// default of a flag is its environment variable's value).
func Secret(p *string) flag.Value { return (*secretValue)(p) }

// Duration is a flag.Value over a positive duration ("5s"). A 0 is
// refused: a zero the package would replace by its default must not reach
// it in silence. A setting for which 0 means something uses DurationOrZero.
func Duration(p *time.Duration) flag.Value { return &durationValue{p: p} }

// DurationOrZero is a flag.Value over a non-negative duration, for a
// setting whose usage says what 0 means ("(0: ...)").
func DurationOrZero(p *time.Duration) flag.Value { return &durationValue{p: p, zero: true} }

// Int is a flag.Value over a positive integer; 0 is refused, as by
// Duration.
func Int(p *int) flag.Value { return &intValue{p: p} }

// IntOrZero is a flag.Value over a non-negative integer, for a setting
// whose usage says what 0 means ("(0: ...)").
func IntOrZero(p *int) flag.Value { return &intValue{p: p, zero: true} }

// Func is a flag.Value over a field of any type, with its parser and
// formatter.
func Func[T any](p *T, parse func(string) (T, error), format func(T) string) flag.Value {
	return &funcValue[T]{p: p, parse: parse, format: format}
}

type stringValue string

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string {
	if v == nil {
		return ""
	}
	return string(*v)
}

type secretValue string

func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }
func (v *secretValue) String() string {
	if v == nil || *v == "" {
		return ""
	}
	return "(set)"
}

type intValue struct {
	p    *int
	zero bool // 0 is allowed
}

func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	switch {
	case v.zero && (err != nil || n < 0):
		return fmt.Errorf("want a non-negative integer, got %q", s)
	case !v.zero && (err != nil || n < 1):
		return fmt.Errorf("want a positive integer, got %q", s)
	}
	*v.p = n
	return nil
}
func (v *intValue) String() string {
	if v == nil || v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}

type durationValue struct {
	p    *time.Duration
	zero bool // 0 is allowed
}

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	switch {
	case v.zero && (err != nil || d < 0):
		return fmt.Errorf("want a non-negative duration like 5s, got %q", s)
	case !v.zero && (err != nil || d <= 0):
		return fmt.Errorf("want a positive duration like 5s, got %q", s)
	}
	*v.p = d
	return nil
}
func (v *durationValue) String() string {
	if v == nil || v.p == nil {
		return "0s"
	}
	return v.p.String()
}

type funcValue[T any] struct {
	p      *T
	parse  func(string) (T, error)
	format func(T) string
}

func (v *funcValue[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

func (v *funcValue[T]) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return v.format(*v.p)
}
