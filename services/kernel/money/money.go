// Package money holds exact decimal amounts: rewards, prices and totals.
//
// A Decimal keeps the digits it was given ("10.52" stays "10.52") from the
// API request through Redis to the JSON number in Toloka's request body. No
// float64 is ever involved, so no amount is rounded on the way. Sums use
// math/big and are exact.
package money

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// MaxFractionDigits bounds the digits after the decimal point. Toloka prices
// are in U.S. dollars; this leaves room for sub-cent bonus computations
// without allowing absurd inputs.
const MaxFractionDigits = 8

// maxIntegerDigits bounds the digits before the decimal point.
const maxIntegerDigits = 12

// Decimal is an exact, non-empty decimal number in canonical text form: an
// optional minus sign (never on zero), integer digits without superfluous
// leading zeros, and optional fraction digits. The zero value is invalid;
// use Zero.
type Decimal struct {
	s string
}

// Zero is the decimal 0.
var Zero = Decimal{s: "0"}

// ErrSyntax reports text that is not a plain decimal number.
var ErrSyntax = errors.New("not a decimal number (want digits with an optional '.' and fraction, like 10.52)")

// ErrNegativeZero reports a zero with a minus sign ("-0", "-0.00"): zero
// has no sign, and a client that sends one has computed something wrong.
var ErrNegativeZero = errors.New("zero has no sign (send 0, not -0)")

// Parse reads a plain decimal ("10.52", "0.01", "-3"). Exponents, signs
// other than a leading '-', a '-' on zero ("-0", "-0.00": ErrNegativeZero),
// spaces, "NaN" and "Inf" are refused. Callers name the field in their
// error.
func Parse(s string) (Decimal, error) {
	if s == "" {
		return Decimal{}, errors.New("empty decimal")
	}
	neg := false
	body := s
	if body[0] == '-' {
		neg = true
		body = body[1:]
	}
	intPart, frac, hasDot := strings.Cut(body, ".")
	if intPart == "" || (hasDot && frac == "") {
		return Decimal{}, ErrSyntax
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return Decimal{}, ErrSyntax
			}
		}
	}
	if len(frac) > MaxFractionDigits {
		return Decimal{}, fmt.Errorf("more than %d digits after the decimal point", MaxFractionDigits)
	}
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	if len(intPart) > maxIntegerDigits {
		return Decimal{}, fmt.Errorf("more than %d digits before the decimal point", maxIntegerDigits)
	}
	out := intPart
	if hasDot {
		out += "." + frac
	}
	if neg {
		if strings.Trim(out, "0.") == "" {
			return Decimal{}, ErrNegativeZero
		}
		out = "-" + out
	}
	return Decimal{s: out}, nil
}

// MustParse is Parse for constants in code and tests; it panics on bad input.
func MustParse(s string) Decimal {
	d, err := Parse(s)
	if err != nil {
		panic(fmt.Sprintf("money.MustParse(%q): %v", s, err))
	}
	return d
}

// String returns the decimal's digits as given (after canonicalising leading
// zeros), for example "10.52".
func (d Decimal) String() string {
	if d.s == "" {
		return "0"
	}
	return d.s
}

// IsZeroValue reports whether d is the uninitialised Decimal{}.
func (d Decimal) IsZeroValue() bool { return d.s == "" }

// Rat returns d as an exact rational.
func (d Decimal) Rat() *big.Rat {
	r, ok := new(big.Rat).SetString(d.String())
	if !ok {
		panic("money: invalid canonical decimal " + d.s)
	}
	return r
}

// Sign returns -1, 0 or +1.
func (d Decimal) Sign() int { return d.Rat().Sign() }

// Cmp compares d and o: -1 if d < o, 0 if equal, +1 if d > o.
func (d Decimal) Cmp(o Decimal) int { return d.Rat().Cmp(o.Rat()) }

// Add returns d+o exactly.
func (d Decimal) Add(o Decimal) Decimal {
	return fromRat(new(big.Rat).Add(d.Rat(), o.Rat()))
}

// fromRat renders a rational whose denominator is a power of ten (as every
// sum of Decimals is) with the fewest fraction digits that keep it exact.
func fromRat(r *big.Rat) Decimal {
	s := r.FloatString(MaxFractionDigits)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(s, "0")
		s = strings.TrimSuffix(s, ".")
	}
	if s == "-0" {
		s = "0"
	}
	return Decimal{s: s}
}

// MarshalJSON writes the decimal as a JSON number with exactly its digits.
func (d Decimal) MarshalJSON() ([]byte, error) {
	return []byte(d.String()), nil
}

// UnmarshalJSON reads a JSON number or a JSON string holding a decimal.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}
