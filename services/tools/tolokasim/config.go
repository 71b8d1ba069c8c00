package tolokasim

import (
	"log/slog"
	"time"
)

// Defaults used when the corresponding Config field is zero.
const (
	// DefaultAddr is where Run listens when Config.Addr is empty.
	DefaultAddr = "127.0.0.1:8081"
	// DefaultOperationDelay is the operation delay cmd/tolokasim uses by
	// default. Config's zero OperationDelay means "complete at once".
	DefaultOperationDelay = 100 * time.Millisecond
	// DefaultRequestLogSize is how many API requests are kept for
	// GET /_admin/requests.
	DefaultRequestLogSize = 10000
	// DefaultMaxBodyBytes bounds request bodies; larger ones get 413.
	DefaultMaxBodyBytes = 10 << 20
	// DefaultShutdownTimeout bounds graceful shutdown in Run.
	DefaultShutdownTimeout = 5 * time.Second
)

// Documented Toloka rate limits, the defaults of RateLimits.
const (
	DefaultRequestsPerSecond      = 300
	DefaultCreateProjectPerMinute = 20
	DefaultCreateProjectPerDay    = 100
	DefaultCreatePoolPerMinute    = 20
	DefaultCreatePoolPerDay       = 100
	DefaultUserSkillsPerDay       = 100000
)

// Config configures a Server. The zero value is usable: no API keys (add
// them with AddAPIKey), operations that complete at once, documented rate
// limits, the real clock and slog.Default.
type Config struct {
	// Addr is the TCP address Run listens on (DefaultAddr when empty; use
	// "127.0.0.1:0" for a free port).
	Addr string
	// APIKeys maps an API key or OAuth token to the requester account that
	// owns it. Both "Authorization: ApiKey <key>" and "OAuth <key>" look
	// the key up here.
	APIKeys map[string]string
	// OperationDelay is how long (by Now) open/close/archive operations
	// stay PENDING/RUNNING before they succeed and the state changes. Zero
	// completes them at once (the 202 answer already says SUCCESS).
	OperationDelay time.Duration
	// RateLimits sets the per-account limits (zero fields mean the
	// documented default, negative ones turn a limit off).
	RateLimits RateLimits
	// Faults is the initial fault injection (none by default).
	Faults Faults
	// Now is the clock for every time-dependent behaviour: created dates,
	// operation completion, assignment expiry, pool will_expire and
	// rate-limit windows. Defaults to time.Now.
	Now func() time.Time
	// Logger receives the emulator's logs (slog.Default when nil). API keys
	// are never logged.
	Logger *slog.Logger
	// RequestLogSize bounds the ring buffer behind GET /_admin/requests
	// (DefaultRequestLogSize when zero, recording off when negative).
	RequestLogSize int
	// MaxBodyBytes bounds request bodies (DefaultMaxBodyBytes when zero).
	MaxBodyBytes int64
	// HonorAutoAccept makes submitted assignments follow the pool's
	// auto_accept_solutions (Toloka's default is true: accepted at once)
	// and auto_accept_period_day (accepted that many days after submit).
	// Off by default: a close_session submit always leaves the assignment
	// SUBMITTED for review.
	HonorAutoAccept bool
	// ShutdownTimeout bounds graceful shutdown in Run
	// (DefaultShutdownTimeout when zero).
	ShutdownTimeout time.Duration
}

// RateLimits are per-account request limits. A zero field means Toloka's
// documented default; a negative field turns that limit off.
type RateLimits struct {
	// RequestsPerSecond limits all API requests of an account (fixed
	// one-second windows of the clock).
	RequestsPerSecond int
	// CreateProjectPerMinute limits POST /projects in a sliding minute
	// (429 with payload.interval MIN).
	CreateProjectPerMinute int
	// CreateProjectPerDay limits POST /projects in a sliding day (429 with
	// payload.interval DAY).
	CreateProjectPerDay int
	// CreatePoolPerMinute limits POST /pools in a sliding minute.
	CreatePoolPerMinute int
	// CreatePoolPerDay limits POST /pools in a sliding day.
	CreatePoolPerDay int
	// UserSkillsPerDay limits PUT /user-skills.
	UserSkillsPerDay int
}

// UnlimitedRateLimits returns RateLimits with every limit turned off, for
// benchmarks and tests that create many resources.
func UnlimitedRateLimits() RateLimits {
	return RateLimits{
		RequestsPerSecond:      -1,
		CreateProjectPerMinute: -1,
		CreateProjectPerDay:    -1,
		CreatePoolPerMinute:    -1,
		CreatePoolPerDay:       -1,
		UserSkillsPerDay:       -1,
	}
}

// withDefaults replaces zero fields by the documented limits.
func (r RateLimits) withDefaults() RateLimits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&r.RequestsPerSecond, DefaultRequestsPerSecond)
	def(&r.CreateProjectPerMinute, DefaultCreateProjectPerMinute)
	def(&r.CreateProjectPerDay, DefaultCreateProjectPerDay)
	def(&r.CreatePoolPerMinute, DefaultCreatePoolPerMinute)
	def(&r.CreatePoolPerDay, DefaultCreatePoolPerDay)
	def(&r.UserSkillsPerDay, DefaultUserSkillsPerDay)
	return r
}

// UserState is the per-Toloker state that decides the flags of a
// tasks/external/submit answer.
type UserState struct {
	// Restricted is Toloka's own ban of the Toloker: a SYSTEM user
	// restriction, listed by GET /user-restrictions for every requester.
	// Like any restriction that covers the pool, it makes
	// restriction_match true.
	Restricted bool `json:"restricted"`
	// FilteredOut makes filter_match false.
	FilteredOut bool `json:"filtered_out"`
	// TopPerformer makes speed_quality_balance_match true in pools without
	// a speed_quality_balance (with one, the match is computed).
	TopPerformer bool `json:"top_performer"`
	// Profile makes the Toloker modelled: pool filters are evaluated
	// against it (filter_match), and the admin API starts an assignment
	// for them only where Toloka would show them the task (filters,
	// restrictions, training requirement). Without a profile the Toloker
	// passes every filter and may start any assignment.
	Profile Profile `json:"profile,omitempty"`
	// Trainings are the Toloker's results in trainings, a percentage of
	// correct answers by the training's id, for pools' training_requirement.
	Trainings map[string]float64 `json:"trainings,omitempty"`
}
