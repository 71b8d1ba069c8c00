package toloka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
)

// retryMode says when a request may be repeated.
type retryMode int

const (
	// retryIdempotent: repeating has the effect of sending once. Retried on
	// 408, 429, 500, 502, 503, 504 and network errors.
	retryIdempotent retryMode = iota
	// retryRefused: not idempotent, but Toloka did nothing when it answered
	// 429 or when the connection was never made (creates).
	retryRefused
	// retryUnsent: not idempotent; repeated only when the connection was
	// never made (external submit without a retry_id).
	retryUnsent
)

// maxRetryAfter caps a Retry-After in seconds.
const maxRetryAfter = 30 * 24 * time.Hour

// maxResponseBytes bounds a response body read into memory.
const maxResponseBytes = 32 << 20

// request is one API call.
type request struct {
	op           string
	method, path string
	query        url.Values
	body         any // marshalled once; every attempt sends the same bytes
	out          any // decoded from a 2xx response with a body
	mode         retryMode
	// limits are reserved, besides Limits.Requests, before the first attempt.
	limits []ratelimit.Limit
	// resource and id name the addressed object, for NotFound.
	resource, id string
	// goneIsDone makes a 404 after an earlier attempt a success (DELETE: the
	// earlier attempt did it).
	goneIsDone bool
}

// retryableStatus lists the statuses retried in retryIdempotent mode.
var retryableStatus = map[int]bool{
	http.StatusRequestTimeout:      true,
	http.StatusTooManyRequests:     true,
	http.StatusInternalServerError: true,
	http.StatusBadGateway:          true,
	http.StatusServiceUnavailable:  true,
	http.StatusGatewayTimeout:      true,
}

// do performs r with rate limiting and retries. It returns the final HTTP
// status on success (callers tell 202 from 204 by it).
func (a *Account) do(ctx context.Context, r request) (int, error) {
	c := a.client
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
	}
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return 0, fmt.Errorf("toloka: %s: encode request: %w", r.op, err)
		}
	}
	target := a.base + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	pol := c.cfg.Retry
	start := c.cfg.Now()
	log := &callLog{base: c.log, op: r.op, account: a.key}

	for attempt := 1; ; attempt++ {
		if err := a.reserve(ctx, r, attempt, log); err != nil {
			return 0, err
		}
		began := time.Now()
		status, header, respBody, err := a.send(ctx, r.method, target, body)
		e := &Error{Op: r.op, Method: r.method, Path: r.path, StatusCode: status, Resource: r.resource, ResourceID: r.id, Attempts: attempt, Err: err}
		if err == nil && status >= 200 && status < 300 {
			if r.out != nil && status != http.StatusNoContent && len(bytes.TrimSpace(respBody)) > 0 {
				if derr := json.Unmarshal(respBody, r.out); derr != nil {
					e.Err = fmt.Errorf("decode response: %w", derr)
					a.observe(log, r, attempt, status, nil, began, false)
					return status, e
				}
			}
			a.observe(log, r, attempt, status, nil, began, false)
			return status, nil
		}
		if err == nil {
			e.decodeErrorBody(respBody)
			if r.goneIsDone && attempt > 1 && status == http.StatusNotFound {
				a.observe(log, r, attempt, status, e, began, false)
				return http.StatusNoContent, nil
			}
		}
		if status == 0 && ctx.Err() != nil {
			// The call's context ended (send reported it as the error).
			a.observe(log, r, attempt, status, e, began, false)
			return 0, e
		}

		retry := retryable(r.mode, status, err)
		wait := c.backoff(attempt)
		if d, ok := waitFromResponse(e, header, c.cfg.Now()); ok {
			wait = d
			e.RetryAfter = d
		}
		if status == http.StatusTooManyRequests && (e.Interval == IntervalHour || e.Interval == IntervalDay) {
			retry = false // a quota that frees in hours is not waited for
		}
		switch {
		case !retry:
		case attempt >= pol.MaxAttempts:
			retry = false
		case c.cfg.Now().Add(wait).Sub(start) > pol.Budget:
			retry = false
			log.debug("toloka: not retrying: the wait does not fit the budget", slog.Duration("wait", wait), slog.Duration("budget", pol.Budget))
		default:
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				retry = false
			}
		}
		a.observe(log, r, attempt, status, e, began, retry)
		if !retry {
			return 0, e
		}
		log.debug("toloka: retrying", slog.Int("attempt", attempt), slog.Duration("wait", wait))
		if serr := c.cfg.Sleep(ctx, wait); serr != nil {
			e.Err = ctx.Err()
			if e.Err == nil {
				e.Err = serr
			}
			return 0, e
		}
	}
}

// callLog is one call's logger: made with the call's attributes only when
// something is logged (most calls log nothing).
type callLog struct {
	base        *slog.Logger
	op, account string
	l           *slog.Logger
}

func (c *callLog) get() *slog.Logger {
	if c.l == nil {
		c.l = c.base.With(slog.String("op", c.op), slog.String("account", c.account))
	}
	return c.l
}

// debug logs at debug level, when that level is on.
func (c *callLog) debug(msg string, attrs ...any) {
	if c.base.Enabled(context.Background(), slog.LevelDebug) {
		c.get().Debug(msg, attrs...)
	}
}

// reserve asks the limiter for a slot. Create limits count once per call,
// on the first attempt: Toloka did not count an attempt it refused.
// A limiter that fails (Redis down) is logged and skipped: Toloka's own 429s,
// which are retried, still protect the account.
func (a *Account) reserve(ctx context.Context, r request, attempt int, log *callLog) error {
	lim := a.client.cfg.Limiter
	if lim == nil {
		return nil
	}
	limits := []ratelimit.Limit{a.client.limits.Requests}
	if attempt == 1 {
		limits = append(limits, r.limits...)
	}
	err := lim.Wait(ctx, a.key, limits...)
	if err == nil {
		return nil
	}
	var re *serviceerror.ResourceExhausted
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("toloka: %s: refused by Crowdgate's limiter before reaching Toloka: %w", r.op, err)
	case ctx.Err() != nil:
		return &Error{Op: r.op, Method: r.method, Path: r.path, Resource: r.resource, ResourceID: r.id, Attempts: attempt - 1, Err: ctx.Err()}
	}
	log.get().Warn("toloka: rate limiter failed; sending without it", slog.String("error", err.Error()))
	return nil
}

// send makes one HTTP attempt. A transport failure is returned as err with
// status 0; a response whose body could not be read has its status and err.
func (a *Account) send(ctx context.Context, method, target string, body []byte) (int, http.Header, []byte, error) {
	c := a.client
	actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, target, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", a.auth())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, a.transportError(ctx, actx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, resp.Header, nil, a.transportError(ctx, actx, fmt.Errorf("read response: %w", err))
	}
	return resp.StatusCode, resp.Header, b, nil
}

func (a *Account) transportError(ctx, actx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if actx.Err() != nil {
		return fmt.Errorf("%w (%s)", errAttemptTimeout, a.client.cfg.AttemptTimeout)
	}
	return err
}

// retryable reports whether a failed attempt may be repeated in mode.
func retryable(mode retryMode, status int, err error) bool {
	if status == 0 && err != nil {
		// No response. Nothing was sent if the connection was never made.
		return mode == retryIdempotent || isDialError(err)
	}
	if err != nil {
		// A response arrived but its body was lost: Toloka acted.
		return mode == retryIdempotent
	}
	switch mode {
	case retryIdempotent:
		return retryableStatus[status]
	case retryRefused:
		return status == http.StatusTooManyRequests
	}
	return false
}

// isDialError reports a failure to connect, before any byte was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// backoff is the full-jitter wait before retry number attempt.
func (c *Client) backoff(attempt int) time.Duration {
	pol := c.cfg.Retry
	ceil := pol.BaseBackoff
	for i := 1; i < attempt && ceil < pol.MaxBackoff; i++ {
		ceil *= 2
	}
	return c.cfg.Jitter(min(ceil, pol.MaxBackoff))
}

// waitFromResponse is the wait Toloka asked for: Retry-After (seconds or an
// HTTP date), or for a 429 with payload.interval the time until that quota
// window ends. Times are measured against the response's Date header when
// there is one (Toloka's clock), else against now.
func waitFromResponse(e *Error, h http.Header, now time.Time) (time.Duration, bool) {
	if h == nil {
		return 0, false
	}
	ref, margin := now, time.Second
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		// Date is truncated to the second, so it is never later than
		// Toloka's clock: no margin needed.
		ref, margin = d, 0
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			// Capped so an absurd value cannot overflow a Duration.
			return time.Duration(min(secs, maxRetryAfter.Seconds()) * float64(time.Second)), true
		}
		if t, err := http.ParseTime(v); err == nil {
			// Capped as the seconds are: a date years ahead (a proxy's
			// bad clock) would park what waits on it for years.
			return min(max(t.Sub(ref), 0), maxRetryAfter), true
		}
	}
	if e.StatusCode != http.StatusTooManyRequests {
		return 0, false
	}
	var next time.Time
	switch u := ref.UTC(); e.Interval {
	case IntervalMinute:
		next = u.Truncate(time.Minute).Add(time.Minute)
	case IntervalHour:
		next = u.Truncate(time.Hour).Add(time.Hour)
	case IntervalDay:
		next = time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
	default:
		return 0, false
	}
	return next.Sub(ref) + margin, true
}

// observe logs an attempt and reports it to Config.OnAttempt.
func (a *Account) observe(log *callLog, r request, n, status int, e *Error, began time.Time, retry bool) {
	d := time.Since(began)
	var code string
	if e != nil {
		code = e.Code
	}
	if log.base.Enabled(context.Background(), slog.LevelDebug) {
		attrs := []slog.Attr{
			slog.String("method", r.method), slog.String("path", r.path),
			slog.Int("attempt", n), slog.Int("status", status), slog.Duration("duration", d), slog.Bool("retry", retry),
		}
		if e != nil {
			attrs = append(attrs, slog.String("code", e.Code), slog.String("request_id", e.RequestID))
			if e.Err != nil {
				attrs = append(attrs, slog.String("error", e.Err.Error()))
			}
		}
		log.get().LogAttrs(context.Background(), slog.LevelDebug, "toloka: request", attrs...)
	}
	at := Attempt{Op: r.op, Number: n, StatusCode: status, Code: code, Duration: d, Retry: retry}
	if m := a.client.metrics; m != nil {
		m.observe(at)
	}
	if f := a.client.cfg.OnAttempt; f != nil {
		f(at)
	}
}
