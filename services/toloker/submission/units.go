package submission

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// unitDigits is how many fraction digits a unit has: rewards are counted in
// Redis as integers of 1e-8 USD (money.MaxFractionDigits), so totals are
// exact HINCRBY sums, never floats.
const unitDigits = money.MaxFractionDigits

// MaxReward bounds one submit's reward. It keeps every pool total far inside
// int64 units (about 92 billion USD) and refuses absurd amounts before they
// reach Toloka.
var MaxReward = money.MustParse("1000000")

// toUnits converts a non-negative decimal to units of 1e-8.
func toUnits(d money.Decimal) (int64, error) {
	s := d.String()
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("negative amount %s", s)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if len(frac) > unitDigits {
		return 0, fmt.Errorf("amount %s has more than %d fraction digits", s, unitDigits)
	}
	n, err := strconv.ParseInt(intPart+frac+strings.Repeat("0", unitDigits-len(frac)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("amount %s is too large", s)
	}
	return n, nil
}

// formatUnits renders units as a decimal with at least two fraction digits
// (cents) and no more than needed: 1052000000 -> "10.52", 50000 -> "0.0005",
// 0 -> "0.00".
func formatUnits(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	if len(s) <= unitDigits {
		s = strings.Repeat("0", unitDigits-len(s)+1) + s
	}
	intPart, frac := s[:len(s)-unitDigits], strings.TrimRight(s[len(s)-unitDigits:], "0")
	for len(frac) < 2 {
		frac += "0"
	}
	out := intPart + "." + frac
	if neg {
		out = "-" + out
	}
	return out
}
