package tolokasim

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Faults configures fault injection for API requests (paths under
// /api/v1). Counters (FailNext, ThrottleNext) are consumed first, in that
// order; then one uniform draw from the seeded source picks at most one of
// the rated faults (error rates by ascending status, throttle, drop,
// timeout, lost response), so a given seed and request order reproduce the
// same faults. Latency applies to every matching request.
type Faults struct {
	// PathPrefix limits faults to request paths with this prefix (empty:
	// every API path), e.g. "/api/v1/tasks/external/submit".
	PathPrefix string `json:"path_prefix"`
	// ErrorRates maps an HTTP status (400..599) to the probability of
	// answering it without processing the request. 500 and 503 carry
	// Toloka's JSON error body; 502 and 504 an HTML page, as a proxy would.
	ErrorRates map[int]float64 `json:"error_rates,omitempty"`
	// LatencyMS delays every matching request.
	LatencyMS int `json:"latency_ms"`
	// TimeoutRate is the probability of hanging without processing: until
	// the client goes away, the server closes, or HangMS passes (then the
	// connection is dropped).
	TimeoutRate float64 `json:"timeout_rate"`
	// HangMS bounds a timeout hang (0: until the client goes away).
	HangMS int `json:"hang_ms"`
	// ThrottleRate is the probability of a 429 TOO_MANY_REQUESTS.
	ThrottleRate float64 `json:"throttle_rate"`
	// ThrottleNext answers the next n matching requests with 429.
	ThrottleNext int `json:"throttle_next"`
	// RetryAfterSeconds is the Retry-After of injected 429s (default 1).
	RetryAfterSeconds int `json:"retry_after_seconds"`
	// ThrottleInterval is payload.interval of injected 429s: MIN (default),
	// HOUR or DAY.
	ThrottleInterval string `json:"throttle_interval"`
	// DropRate is the probability of closing the connection without a
	// response and without processing the request.
	DropRate float64 `json:"drop_rate"`
	// LostResponseRate is the probability of processing the request fully
	// (a submit is recorded in the ledger) and then closing the connection
	// without a response: the case that makes client retries duplicates.
	LostResponseRate float64 `json:"lost_response_rate"`
	// FailNext answers the next n matching requests with 503.
	FailNext int `json:"fail_next"`
	// Seed seeds the random source (math/rand/v2 PCG).
	Seed uint64 `json:"seed"`
}

// Validate reports whether f is a usable fault configuration.
func (f Faults) Validate() error { return f.validate() }

// validate checks ranges and fills defaults.
func (f *Faults) validate() error {
	rates := []struct {
		name string
		v    float64
	}{
		{"timeout_rate", f.TimeoutRate},
		{"throttle_rate", f.ThrottleRate},
		{"drop_rate", f.DropRate},
		{"lost_response_rate", f.LostResponseRate},
	}
	sum := 0.0
	for _, r := range rates {
		if r.v < 0 || r.v > 1 {
			return fmt.Errorf("%s must be within 0..1, got %v", r.name, r.v)
		}
		sum += r.v
	}
	for code, rate := range f.ErrorRates {
		if code < 400 || code > 599 {
			return fmt.Errorf("error_rates: status %d is not within 400..599", code)
		}
		if rate < 0 || rate > 1 {
			return fmt.Errorf("error_rates[%d] must be within 0..1, got %v", code, rate)
		}
		sum += rate
	}
	if sum > 1.0000001 {
		return fmt.Errorf("fault rates add up to %v, more than 1", sum)
	}
	if f.LatencyMS < 0 || f.HangMS < 0 || f.ThrottleNext < 0 || f.FailNext < 0 || f.RetryAfterSeconds < 0 {
		return fmt.Errorf("latency_ms, hang_ms, throttle_next, fail_next and retry_after_seconds must not be negative")
	}
	if f.PathPrefix != "" && !strings.HasPrefix(f.PathPrefix, "/") {
		return fmt.Errorf("path_prefix must start with '/', got %q", f.PathPrefix)
	}
	switch f.ThrottleInterval {
	case "":
		f.ThrottleInterval = "MIN"
	case "MIN", "HOUR", "DAY":
	default:
		return fmt.Errorf("throttle_interval must be MIN, HOUR or DAY, got %q", f.ThrottleInterval)
	}
	if f.RetryAfterSeconds == 0 {
		f.RetryAfterSeconds = 1
	}
	return nil
}

// active reports whether f can affect any request.
func (f *Faults) active() bool {
	if f.LatencyMS > 0 || f.TimeoutRate > 0 || f.ThrottleRate > 0 || f.ThrottleNext > 0 ||
		f.DropRate > 0 || f.LostResponseRate > 0 || f.FailNext > 0 {
		return true
	}
	for _, r := range f.ErrorRates {
		if r > 0 {
			return true
		}
	}
	return false
}

// faultKind is what the injector decided for one request.
type faultKind int

const (
	faultNone faultKind = iota
	faultError
	faultThrottle
	faultDrop
	faultTimeout
	faultLost
)

// String names the fault in RequestRecord.Fault.
func (k faultKind) String() string {
	switch k {
	case faultError:
		return "error"
	case faultThrottle:
		return "throttle"
	case faultDrop:
		return "drop"
	case faultTimeout:
		return "timeout"
	case faultLost:
		return "lost_response"
	}
	return ""
}

// faultDecision is the injector's verdict for one request.
type faultDecision struct {
	kind       faultKind
	status     int // for faultError
	latency    time.Duration
	hang       time.Duration
	retryAfter int
	interval   string
}

// faultInjector holds the current Faults and the seeded random source.
type faultInjector struct {
	on  atomic.Bool // fast path: no faults configured
	mu  sync.Mutex
	cfg Faults
	rng *rand.Rand
}

func (fi *faultInjector) set(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	if f.ErrorRates != nil {
		f.ErrorRates = cloneRates(f.ErrorRates)
	}
	fi.mu.Lock()
	defer fi.mu.Unlock()
	fi.cfg = f
	fi.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
	fi.on.Store(f.active())
	return nil
}

func (fi *faultInjector) get() Faults {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f := fi.cfg
	f.ErrorRates = cloneRates(f.ErrorRates)
	return f
}

func cloneRates(m map[int]float64) map[int]float64 {
	if m == nil {
		return nil
	}
	out := make(map[int]float64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// decide picks the fault for a request to path.
func (fi *faultInjector) decide(path string) faultDecision {
	if !fi.on.Load() {
		return faultDecision{}
	}
	fi.mu.Lock()
	defer fi.mu.Unlock()
	f := &fi.cfg
	if f.PathPrefix != "" && !strings.HasPrefix(path, f.PathPrefix) {
		return faultDecision{}
	}
	d := faultDecision{
		latency:    time.Duration(f.LatencyMS) * time.Millisecond,
		retryAfter: f.RetryAfterSeconds,
		interval:   f.ThrottleInterval,
	}
	defer func() { fi.on.Store(f.active()) }()
	switch {
	case f.FailNext > 0:
		f.FailNext--
		d.kind, d.status = faultError, http.StatusServiceUnavailable
		return d
	case f.ThrottleNext > 0:
		f.ThrottleNext--
		d.kind = faultThrottle
		return d
	}
	codes := make([]int, 0, len(f.ErrorRates))
	for c, r := range f.ErrorRates {
		if r > 0 {
			codes = append(codes, c)
		}
	}
	if len(codes) == 0 && f.ThrottleRate == 0 && f.DropRate == 0 && f.TimeoutRate == 0 && f.LostResponseRate == 0 {
		return d
	}
	slices.Sort(codes)
	u := fi.rng.Float64()
	acc := 0.0
	for _, c := range codes {
		acc += f.ErrorRates[c]
		if u < acc {
			d.kind, d.status = faultError, c
			return d
		}
	}
	for _, o := range []struct {
		rate float64
		kind faultKind
	}{
		{f.ThrottleRate, faultThrottle},
		{f.DropRate, faultDrop},
		{f.TimeoutRate, faultTimeout},
		{f.LostResponseRate, faultLost},
	} {
		acc += o.rate
		if u < acc {
			d.kind = o.kind
			if o.kind == faultTimeout {
				d.hang = time.Duration(f.HangMS) * time.Millisecond
			}
			return d
		}
	}
	return d
}

// injectedError renders the response of an injected HTTP error status.
func injectedError(status int, requestID string) (contentType string, body []byte) {
	switch status {
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		text := fmt.Sprintf("%d %s", status, http.StatusText(status))
		return "text/html", []byte("<html><head><title>" + text + "</title></head><body><center><h1>" + text + "</h1></center></body></html>\n")
	}
	code := CodeInternal
	switch {
	case status == http.StatusServiceUnavailable:
		code = CodeRemoteServiceUnavailable
	case status == http.StatusTooManyRequests:
		code = CodeTooManyRequests
	case status == http.StatusNotFound:
		code = CodeDoesNotExist
	case status == http.StatusConflict:
		code = CodeConflictState
	case status == http.StatusUnauthorized:
		code = CodeAuthentication
	case status == http.StatusForbidden:
		code = CodeAccessDenied
	case status < 500:
		code = CodeValidation
	}
	return "application/json", errorJSON(&Error{Status: status, Code: code, Message: "injected fault: " + http.StatusText(status)}, requestID)
}
