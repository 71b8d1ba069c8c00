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
	switch {
	case l.Per == time.Second:
		per = "s"
	case l.Per == time.Minute:
		per = "m"
	case l.Per == time.Hour:
		per = "h"
	case l.Per%time.Hour == 0:
		per = fmt.Sprintf("%dh", l.Per/time.Hour)
	case l.Per%time.Minute == 0:
		per = fmt.Sprintf("%dm", l.Per/time.Minute)
	}
	return fmt.Sprintf("%d/%s,burst=%d", l.Rate, per, l.Burst)
}

// ParseWindows reads strict sliding windows as operators write them:
// "RATE/PERIOD" entries separated by ";", for example "20/m;100/24h" (at
// most 20 in any minute and 100 in any day). The results have no Name and
// a zero Burst.
func ParseWindows(s string) ([]Limit, error) {
	var out []Limit
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if strings.Contains(part, ",") {
			return nil, fmt.Errorf("want RATE/PERIOD[;RATE/PERIOD...] such as 20/m;100/24h: a window has no burst, in %q", s)
		}
		l, err := ParseRate(part)
		if err != nil {
			return nil, fmt.Errorf("want RATE/PERIOD[;RATE/PERIOD...] such as 20/m;100/24h: %w", err)
		}
		l.Burst = 0
		out = append(out, l)
	}
	return out, nil
}

// WindowsString writes sliding windows as ParseWindows reads them.
func WindowsString(ls []Limit) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		r := l.RateString()
		parts[i] = r[:strings.IndexByte(r, ',')]
	}
	return strings.Join(parts, ";")
}
