package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseRate reads a smoothed rate as operators write it: "RATE/PERIOD" with
// an optional ",burst=N", for example "10/s,burst=60", "30/m,burst=10" or
// "100/10s". PERIOD is s, m, h or a Go duration; the burst defaults to
// RATE. The result has no Name.
func ParseRate(s string) (Limit, error) {
	bad := func(why string) (Limit, error) {
		return Limit{}, fmt.Errorf("want RATE/PERIOD[,burst=N] such as 10/s,burst=60: %s in %q", why, s)
	}
	spec, burstPart, hasBurst := strings.Cut(strings.TrimSpace(s), ",")
	rateStr, perStr, ok := strings.Cut(spec, "/")
	if !ok {
		return bad("no /")
	}
	rate, err := strconv.Atoi(strings.TrimSpace(rateStr))
	if err != nil || rate < 1 {
		return bad("RATE is not a whole number of at least 1")
	}
	perStr = strings.TrimSpace(perStr)
	if perStr == "s" || perStr == "m" || perStr == "h" {
		perStr = "1" + perStr
	}
	per, err := time.ParseDuration(perStr)
	if err != nil || per < time.Millisecond {
		return bad("PERIOD is not s, m, h or a duration of at least 1ms")
	}
	burst := rate
	if hasBurst {
		k, v, ok := strings.Cut(strings.TrimSpace(burstPart), "=")
		if !ok || strings.TrimSpace(k) != "burst" {
			return bad("what follows the comma is not burst=N")
		}
		burst, err = strconv.Atoi(strings.TrimSpace(v))
		if err != nil || burst < 1 {
			return bad("the burst is not a whole number of at least 1")
		}
	}
	return Limit{Rate: rate, Per: per, Burst: burst}, nil
}

// RateString writes a smoothed rate as ParseRate reads it.
func (l Limit) RateString() string {
	per := l.Per.String()
	switch l.Per {
	case time.Second:
		per = "s"
	case time.Minute:
		per = "m"
	case time.Hour:
		per = "h"
	}
	return fmt.Sprintf("%d/%s,burst=%d", l.Rate, per, l.Burst)
}
