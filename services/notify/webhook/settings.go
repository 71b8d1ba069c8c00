package webhook

import (
	"fmt"
	"strings"
	"time"

	"github.com/crowdgate/crowdgate/services/platform/settings"
)

// Settings tune webhook delivery. Zero values take the defaults.
type Settings struct {
	// AllowPrivate lets endpoints use http and resolve to loopback,
	// link-local, private, CGNAT and metadata addresses: for tests and the
	// local demo only.
	AllowPrivate bool
	// RetrySchedule is the wait before each retry after a failed attempt:
	// the first attempt, then one retry per element (each with up to 10%
	// jitter); after the last, the delivery is dead. The default (Svix's
	// schedule, stretched) spans about 2.9 days.
	RetrySchedule []time.Duration
	// DisableAfter is how long an endpoint may fail continuously (every
	// attempt since its first failure failed) before it is disabled and a
	// webhook_endpoint.disabled event is recorded.
	DisableAfter time.Duration
	// AttemptTimeout bounds one attempt: connecting, sending and reading
	// the answer.
	AttemptTimeout time.Duration
	// Concurrency bounds a replica's attempts in flight.
	Concurrency int
	// MaxEndpoints bounds a tenant's endpoints: each event is one delivery
	// per endpoint, so the bound is also how many requests one event can
	// set off.
	MaxEndpoints int
	// Retention is how long a settled delivery and its attempts are kept.
	Retention time.Duration

	// PollInterval (200ms) and VisibilityTimeout (30s) tune the outbox;
	// they are not configured from the environment.
	PollInterval, VisibilityTimeout time.Duration
}

// DefaultRetrySchedule is RetrySchedule's default.
const DefaultRetrySchedule = "5s,5m,30m,2h,5h,10h,10h,14h,14h,14h"

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("webhook-allow-private", "CROWDGATE_WEBHOOK_ALLOW_PRIVATE", "false",
			"let webhook endpoints use http and loopback, link-local, private or metadata addresses (tests and the local demo only)",
			settings.Func(&s.AllowPrivate, parseBool, func(b bool) string { return fmt.Sprint(b) })),
		settings.New("webhook-retry-schedule", "CROWDGATE_WEBHOOK_RETRY_SCHEDULE", DefaultRetrySchedule,
			"waits before each retry of a failed webhook delivery (comma-separated durations, up to 10% jitter); dead after the last",
			settings.Func(&s.RetrySchedule, ParseSchedule, formatSchedule)),
		settings.New("webhook-disable-after", "CROWDGATE_WEBHOOK_DISABLE_AFTER", "120h",
			"how long a webhook endpoint may fail continuously before it is disabled (and a webhook_endpoint.disabled event says so)",
			settings.Duration(&s.DisableAfter)),
		settings.New("webhook-attempt-timeout", "CROWDGATE_WEBHOOK_ATTEMPT_TIMEOUT", "10s",
			"bound of one webhook delivery attempt (connect, send, read at most 64 KiB of the answer)", settings.Duration(&s.AttemptTimeout)),
		settings.New("webhook-concurrency", "CROWDGATE_WEBHOOK_CONCURRENCY", "64",
			"webhook delivery attempts in flight per replica", settings.Int(&s.Concurrency)),
		settings.New("webhook-max-endpoints", "CROWDGATE_WEBHOOK_MAX_ENDPOINTS", "20",
			"most webhook endpoints a tenant may have (each event is one delivery per endpoint)", settings.Int(&s.MaxEndpoints)),
		settings.New("webhook-retention", "CROWDGATE_WEBHOOK_RETENTION", "168h",
			"how long a settled webhook delivery and its attempts stay visible (ListWebhookDeliveries)", settings.Duration(&s.Retention)),
	}
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no", "":
		return false, nil
	}
	return false, fmt.Errorf("want true or false, got %q", v)
}

// ParseSchedule reads a retry schedule: comma-separated positive durations,
// at most 20, their sum at most 7 days.
func ParseSchedule(v string) ([]time.Duration, error) {
	var out []time.Duration
	var sum time.Duration
	for p := range strings.SplitSeq(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q is not a positive duration", p)
		}
		out = append(out, d)
		sum += d
	}
	if len(out) == 0 || len(out) > 20 || sum > 7*24*time.Hour {
		return nil, fmt.Errorf("want 1 to 20 durations adding up to at most 7 days, got %q", v)
	}
	return out, nil
}

func formatSchedule(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, ",")
}

// DefaultSettings returns the settings' built-in defaults.
func DefaultSettings() Settings {
	var s Settings
	settings.Defaults(s.List())
	return s
}

// withDefaults fills zero fields from DefaultSettings.
func (s Settings) withDefaults() Settings {
	def := DefaultSettings()
	if len(s.RetrySchedule) == 0 {
		s.RetrySchedule = def.RetrySchedule
	}
	for _, d := range []struct{ got, def *time.Duration }{
		{&s.DisableAfter, &def.DisableAfter}, {&s.AttemptTimeout, &def.AttemptTimeout}, {&s.Retention, &def.Retention},
	} {
		if *d.got <= 0 {
			*d.got = *d.def
		}
	}
	if s.Concurrency <= 0 {
		s.Concurrency = def.Concurrency
	}
	if s.MaxEndpoints <= 0 {
		s.MaxEndpoints = def.MaxEndpoints
	}
	if s.PollInterval <= 0 {
		s.PollInterval = 200 * time.Millisecond
	}
	if s.VisibilityTimeout <= 0 {
		s.VisibilityTimeout = 30 * time.Second
	}
	return s
}
