// Package events is each tenant's event log: what happened to its
// sessions, submissions, assignments, pools, projects and webhook
// endpoints, in the order Crowdgate recorded it. ListEvents and WatchEvents
// read it (service.go); the webhook dispatcher follows it (Follow).
//
// Invariants:
//
//   - An event is recorded once. Its id is made from what it is about
//     (ID: the session and its end, the submission and its attempt), and
//     the log refuses an id it has recorded within the dedupe window (the
//     retention, at most DedupeWindow), so a step repeated after a fault
//     records nothing new. Steps whose repeat could come later than that
//     are guarded by their own state (a session's end by its live listing,
//     a submission's outcome by its state, a pool's change by the stored
//     state).
//   - An event is recorded atomically with the change it reports, or from a
//     durable intent written atomically with it. The Toloker registry's
//     scripts run in the tenant's slot and append with the same Lua
//     function (AppendLua). The outbox, whose keys live in other slots,
//     writes an intent (an Event, field IntentField) to a stream in its own
//     slot inside the script that changes the submission; Relay copies each
//     intent to its tenant's log and deletes it only after it is recorded,
//     one replica at a time per stream, so a stream's events keep the
//     order their intents were written in.
//     Requester actions (review, pools, archive) are appended after Toloka
//     confirmed them, with ids that make a repeat a no-op.
//   - The log is a Redis stream per tenant; an event's cursor is its entry
//     id, so a reader resumes exactly after the last event it saw. Entries
//     older than Settings.Retention are trimmed as new ones are added.
//
// Redis layout (P is the configured prefix; the hash tag is the tenant's
// slot, shared with the Toloker registry):
//
//	P events:{tolk:T}        stream: e = Event (protobuf, without cursor)
//	P events-seen:{tolk:T}   zset: event id -> when recorded (ms), trimmed
//	                         to the dedupe window
package events

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/settings"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// Event types.
const (
	TypeSessionStarted          = "session.started"
	TypeSessionEnded            = "session.ended"
	TypeSubmissionDelivered     = "submission.delivered"
	TypeSubmissionDead          = "submission.dead"
	TypeSubmissionRetried       = "submission.retried"
	TypeAssignmentAccepted      = "assignment.accepted"
	TypeAssignmentRejected      = "assignment.rejected"
	TypePoolOpened              = "pool.opened"
	TypePoolClosed              = "pool.closed"
	TypeProjectArchived         = "project.archived"
	TypeWebhookEndpointDisabled = "webhook_endpoint.disabled"
)

// Types lists every event type, in the order the README documents them.
var Types = []string{
	TypeSessionStarted, TypeSessionEnded,
	TypeSubmissionDelivered, TypeSubmissionDead, TypeSubmissionRetried,
	TypeAssignmentAccepted, TypeAssignmentRejected,
	TypePoolOpened, TypePoolClosed, TypeProjectArchived,
	TypeWebhookEndpointDisabled,
}

// DedupeWindow is the longest time the log remembers an event id to refuse
// it again (lua/append.lua): repeats come from retries within minutes.
const DedupeWindow = 24 * time.Hour

// IntentField is the stream field that carries an Event in an intent
// stream (and in the log itself).
const IntentField = "e"

// Settings tune the event log.
type Settings struct {
	// Retention is how long events are kept.
	Retention time.Duration
	// Poll is how often WatchEvents and Follow look for new events, and
	// the relay for new intents, when they have seen none (what this
	// replica records wakes them at once; what another replica records is
	// seen at the next poll).
	Poll time.Duration
	// MaxStreams bounds the WatchEvents streams one tenant holds open on
	// one replica: each one reads Redis while it waits.
	MaxStreams int
}

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("event-retention", "CROWDGATE_EVENT_RETENTION", "168h",
			"how long each tenant's event log keeps events (ListEvents, WatchEvents, webhook redelivery); a cursor older than this resumes at the oldest event kept",
			settings.Duration(&s.Retention)),
		settings.New("event-poll", "CROWDGATE_EVENT_POLL", "100ms",
			"how often WatchEvents streams and the webhook dispatcher look for new events, and the relay for submission events' intents, when idle",
			settings.Duration(&s.Poll)),
		settings.New("event-max-streams", "CROWDGATE_EVENT_MAX_STREAMS", "32",
			"most WatchEvents streams one tenant may hold open on one replica (each reads Redis while it waits); one more is RESOURCE_EXHAUSTED",
			settings.Int(&s.MaxStreams)),
	}
}

// DefaultSettings returns the settings' built-in defaults.
func DefaultSettings() Settings {
	var s Settings
	settings.Defaults(s.List())
	return s
}

var (
	//go:embed lua/append.lua
	appendFunc string
	//go:embed lua/append_one.lua
	appendOneLua string

	appendScript = redis.NewScript(appendFunc + appendOneLua)
)

// AppendLua is the Lua function crowdgate_append_event(log, seen, id,
// body, keep) (lua/append.lua). A script that runs in a tenant's slot
// prepends it to append events atomically with its own writes; Keys names
// log and seen, and keep is Retention in ms.
func AppendLua() string { return appendFunc }

// Config is what a Log needs.
type Config struct {
	Redis    redis.UniversalClient
	Prefix   string
	Settings Settings
	// Tenants lists every tenant, for Follow.
	Tenants func(ctx context.Context) ([]string, error)
	Now     func() time.Time
	Log     *slog.Logger
}

// Log is the tenants' event logs. It is safe for concurrent use.
type Log struct {
	rdb     redis.UniversalClient
	prefix  string
	set     Settings
	tenants func(ctx context.Context) ([]string, error)
	now     func() time.Time
	log     *slog.Logger
	wake    *broadcast // events recorded: the log's readers look
	intents *broadcast // intents written: the relay looks
}

// New returns the log; zero settings take the defaults.
func New(cfg Config) (*Log, error) {
	if cfg.Redis == nil {
		return nil, errors.New("events: no Redis")
	}
	def := DefaultSettings()
	if cfg.Settings.Retention <= 0 {
		cfg.Settings.Retention = def.Retention
	}
	if cfg.Settings.MaxStreams <= 0 {
		cfg.Settings.MaxStreams = def.MaxStreams
	}
	if cfg.Settings.Poll <= 0 {
		cfg.Settings.Poll = def.Poll
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Tenants == nil {
		cfg.Tenants = func(context.Context) ([]string, error) { return nil, nil }
	}
	return &Log{rdb: cfg.Redis, prefix: cfg.Prefix, set: cfg.Settings, tenants: cfg.Tenants,
		now: cfg.Now, log: cfg.Log, wake: newBroadcast(), intents: newBroadcast()}, nil
}

// Retention is how long events are kept.
func (l *Log) Retention() time.Duration { return l.set.Retention }

// Keys returns a tenant's event stream and its set of recorded ids. Both
// carry the tenant's hash tag {tolk:<tenant>}, the slot of the Toloker
// registry, so its scripts append in the same atomic step.
func Keys(prefix, tenantID string) (log, seen string) {
	tag := "{tolk:" + tenantID + "}"
	return prefix + "events:" + tag, prefix + "events-seen:" + tag
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// ID returns the event id made from parts: "evt_" and 26 lower-case
// characters of a hash of them. Parts name what the event reports (its
// type, the resource, which change of it), so producing it again gives the
// same id and the log records it once.
func ID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "evt_" + strings.ToLower(idEncoding.EncodeToString(h[:16]))
}

// Now is the log's clock: the time New gives an event made now.
func (l *Log) Now() time.Time { return l.now() }

// RepeatWindow is how long this log remembers an event id to refuse it
// again: DedupeWindow, or the retention when that is shorter
// (lua/append.lua). An event recorded longer ago than that is recorded
// again if appended again: a step that may be repeated later guards
// itself.
func (l *Log) RepeatWindow() time.Duration { return min(l.set.Retention, DedupeWindow) }

// New returns an event of type typ about resource, recorded now, with
// its id made from idParts.
func (l *Log) New(tenantID, typ, resource string, idParts ...string) *crowdgatev1.Event {
	return NewEvent(tenantID, typ, resource, l.now(), idParts...)
}

// NewEvent returns an event of type typ about resource at t, with its id
// made from typ, resource and idParts.
func NewEvent(tenantID, typ, resource string, t time.Time, idParts ...string) *crowdgatev1.Event {
	return &crowdgatev1.Event{
		EventId:    ID(append([]string{tenantID, typ, resource}, idParts...)...),
		Type:       typ,
		CreateTime: timestamppb.New(t),
		TenantId:   tenantID,
		Resource:   resource,
	}
}

// Encode returns ev as stored: protobuf, without its cursor.
func Encode(ev *crowdgatev1.Event) ([]byte, error) {
	if ev.GetEventId() == "" || ev.GetType() == "" || ev.GetTenantId() == "" {
		return nil, errors.New("events: an event needs an id, a type and a tenant")
	}
	c := proto.CloneOf(ev)
	c.Cursor = ""
	return proto.Marshal(c)
}

// decode reads a stored event and sets its cursor.
func decode(entryID string, values map[string]any) (*crowdgatev1.Event, error) {
	raw, _ := values[IntentField].(string)
	ev := &crowdgatev1.Event{}
	if err := proto.Unmarshal([]byte(raw), ev); err != nil {
		return nil, fmt.Errorf("events: entry %s: %w", entryID, err)
	}
	ev.Cursor = entryID
	return ev, nil
}

// Append records ev in its tenant's log, once: an id recorded within the
// retention is not recorded again. create_time is set when missing.
func (l *Log) Append(ctx context.Context, ev *crowdgatev1.Event) error {
	if ev.GetCreateTime() == nil {
		ev.CreateTime = timestamppb.New(l.now())
	}
	body, err := Encode(ev)
	if err != nil {
		return err
	}
	return l.appendRaw(ctx, ev.GetTenantId(), ev.GetEventId(), body)
}

func (l *Log) appendRaw(ctx context.Context, tenantID, id string, body []byte) error {
	log, seen := Keys(l.prefix, tenantID)
	err := appendScript.Run(ctx, l.rdb, []string{log, seen}, id, body, l.set.Retention.Milliseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return storage.Unavailable(err)
	}
	l.wake.notify()
	return nil
}

// Appended tells this replica's watchers that events were recorded by a
// script of another package (which appends with AppendLua), so they look
// at once rather than at their next poll.
func (l *Log) Appended() { l.wake.notify() }

// Intended tells this replica's relay (Relay) that a script of another
// package wrote intents, so it relays them at once rather than at its next
// poll. Recorded events do not wake the relay: it has nothing to do with
// them.
func (l *Log) Intended() { l.intents.notify() }
