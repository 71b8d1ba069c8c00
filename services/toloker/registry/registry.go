// Package registry is each tenant's register of the Tolokers who landed in
// its pools (seed 001's "account synchronisation"): who they are (Toloka's
// user_id), when they first and last landed, the projects and pools they
// worked in, their sessions and how each ended, their bans in force, and,
// read from the outbox, the submits Toloka accepted or refused for them and
// the reward it accepted. GetToloker and ListTolokers serve it (service.go).
//
// Who writes what, and the invariants:
//
//   - The landing writes only when it starts a session (an assignment's
//     first landing: StartedUnlessRestricted or Started, before the session
//     is stored, so no session exists that the registry missed; Abandoned
//     when it was not stored after all) and the session service when a
//     session ends (Ended). A
//     warm landing, a repeat click on an assignment that has its session,
//     writes nothing: it stays one Redis GET.
//   - A session is counted once and its end once: Started lists the
//     session live and counts it only when it was not listed (it reads
//     the Toloker's record once and writes it with one HSET);
//     Ended counts an end only when it takes the session off that list
//     (HDEL). Both may be repeated. started = live + every end counted +
//     expired, so the expired are what is left (sessions end by expiry
//     without an event).
//   - Money is not kept here. The outbox counts each Toloker's delivered
//     and dead submits and the reward delivered (integer units of 1e-8 USD)
//     in its finish script, atomically with the submission's state change
//     and only on that change, so a retried finish counts nothing twice
//     (submission.TolokerPay). The registry reads those counters: what it
//     shows is exactly what the outbox recorded as delivered.
//   - Restrictions (bans made with the ban service) are kept per Toloker,
//     without a retention (a ban for ever is for ever), and read by the
//     landing once it knows who lands (Restrictions for a known session or
//     a cached refusal, so a banned Toloker is refused without asking
//     Toloka when Crowdgate already knows them; on a first landing, in the
//     script that lists the session: StartedUnlessRestricted writes
//     nothing for a Toloker with any restriction stored, unless the
//     session is listed already, a call sent again, and Started answers
//     them as they are after listing). A ban writes its restriction before
//     it reads the live sessions to end, so one of the two sees the other;
//     a session listed but not stored yet when the ban looks is skipped
//     by the ban, and Confirmed, after the store, answers the bans again
//     so the landing ends it.
//   - A Toloker is forgotten Settings.Retention after their last activity
//     (landing or session end): every write renews the record's TTL, and
//     the activity indexes drop entries older than that.
//
// Redis layout (P is the configured prefix). Every key of a tenant carries
// the hash tag {tolk:<tenant>}, so a script changes the Toloker's record and
// the tenant's indexes atomically in one Cluster slot:
//
//	P tolk:{tolk:T}:u:<user>        the Toloker (hash): f first landing, l last
//	                                landing, a last activity (Unix ms), n sessions
//	                                started, e:<end> ends by kind, s:<session>
//	                                "<expiry ms>\t<pool>" while live,
//	                                p:<pool> and j:<project> last worked (ms);
//	                                TTL Retention
//	P tolk:{tolk:T}:act             zset: user -> last activity (ms); TTL Retention
//	P tolk:{tolk:T}:pool:<pool>     zset: user -> last activity in the pool; TTL Retention
//	P tolk:{tolk:T}:ban:<user>      hash: ban id -> restriction.Encode(); no TTL
//	P tolk:{tolk:T}:dl              zset: user TAB session -> expiry (ms), for
//	                                every session listed live
//	P tolk:{tolk:T}:snap            hash: session -> Session (protobuf, as it
//	                                started) while listed; p:<session> while
//	                                its session.started event is pending
//
// Session events. The registry records session.started and session.ended
// (services/notify/events) in the same scripts that list and unlist a
// session, in the tenant's slot where the event log lives, so each session
// has exactly one of each:
//
//   - session.started when the session is stored (Confirmed), or, if that
//     call was lost to a fault, together with its end;
//   - session.ended when the session is taken off the live list: by Ended
//     (close_session, Toloka's flags, the platform, an operator), or by the
//     expiry sweep (Sweep) once its deadline has passed, with reason
//     EXPIRED. The sweep reads a deadline index, not keyspace
//     notifications, and only the step that takes the listing records the
//     event, so however many replicas sweep, an abandoned session raises
//     one event. The event carries the session as the sweep reads it from
//     the session store (ReadSessionsFrom: its submits and reward; the
//     snapshot, taken at the start, has none), or the snapshot when the
//     store no longer keeps it. A replica killed between the session store's end and
//     Ended leaves the listing in place: the session then reads as EXPIRED
//     at its deadline, unless a repeated end (EndSession again) records it.
package registry

import (
	"context"
	_ "embed"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/restriction"
	"github.com/crowdgate/crowdgate/services/platform/settings"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// Settings tune the registry.
type Settings struct {
	// Retention is how long a Toloker is kept after their last activity.
	Retention time.Duration
}

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("toloker-retention", "CROWDGATE_TOLOKER_RETENTION", "4320h",
			"how long the Toloker registry keeps a Toloker after their last landing or session end (4320h: 180 days)",
			settings.Duration(&s.Retention)),
	}
}

// DefaultSettings returns the settings' built-in defaults.
func DefaultSettings() Settings {
	var s Settings
	settings.Defaults(s.List())
	return s
}

var (
	//go:embed lua/started.lua
	startedLua string
	//go:embed lua/ended.lua
	endedLua string
	//go:embed lua/abandoned.lua
	abandonedLua string
	//go:embed lua/confirmed.lua
	confirmedLua string
	//go:embed lua/expired.lua
	expiredLua string

	startedScript   = redis.NewScript(startedLua)
	endedScript     = redis.NewScript(events.AppendLua() + endedLua)
	abandonedScript = redis.NewScript(abandonedLua)
	confirmedScript = redis.NewScript(events.AppendLua() + confirmedLua)
	expiredScript   = redis.NewScript(events.AppendLua() + expiredLua)
)

// Registry keeps the tenants' Tolokers in Redis. It is safe for
// concurrent use.
type Registry struct {
	rdb redis.UniversalClient
	// landing runs what an assignment's first landing does (Started,
	// Confirmed, Abandoned, Restrictions): rdb autopipelined, so
	// concurrent cold landings share round trips. Each is safe to send
	// again: a session is counted and its event recorded once however
	// often they run.
	landing   redis.UniversalClient
	prefix    string
	events    *events.Log
	retention time.Duration
	now       func() time.Time
	log       *slog.Logger
	// sessions, when set (ReadSessionsFrom), reads the sessions the
	// expiry sweep ends, for their events.
	sessions Sessions
}

// Sessions reads the sessions Crowdgate keeps (*session.Service): the
// expiry sweep reads a session as it is when it ends it, with the submits
// recorded since it started, for its session.ended event.
type Sessions interface {
	// OfAssignments returns the tenant's sessions of assignments, by
	// assignment id; those no longer kept are left out.
	OfAssignments(ctx context.Context, tenantID string, assignmentIDs []string) (map[string]*crowdgatev1.Session, error)
}

// New returns the registry over rdb (keys under prefix), recording session
// events in evs; zero settings take the defaults, now is the clock
// (time.Now when nil).
func New(rdb redis.UniversalClient, prefix string, s Settings, evs *events.Log, now func() time.Time, log *slog.Logger) *Registry {
	if s.Retention <= 0 {
		s.Retention = DefaultSettings().Retention
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Registry{rdb: rdb, landing: storage.AutoPipelined(rdb), prefix: prefix, events: evs, retention: s.Retention, now: now, log: log}
}

// ReadSessionsFrom has the expiry sweep read each session it ends from
// sessions (one read per expired session), so that its session.ended event
// carries the session as it ended: its submits and reward. Without it (or
// for a session no longer kept) the event carries the session as it
// started. Call it before Sweep or SweepTenant, not concurrently with them.
func (r *Registry) ReadSessionsFrom(sessions Sessions) { r.sessions = sessions }

// Retention is how long a Toloker is kept after their last activity.
func (r *Registry) Retention() time.Duration { return r.retention }

func (r *Registry) tag(tenantID string) string { return r.prefix + "tolk:{tolk:" + tenantID + "}:" }
func (r *Registry) userKey(tenantID, userID string) string {
	return r.tag(tenantID) + "u:" + userID
}
func (r *Registry) activityKey(tenantID string) string { return r.tag(tenantID) + "act" }
func (r *Registry) poolKey(tenantID, poolID string) string {
	return r.tag(tenantID) + "pool:" + poolID
}
func (r *Registry) banKey(tenantID, userID string) string {
	return r.tag(tenantID) + "ban:" + userID
}
func (r *Registry) deadlineKey(tenantID string) string { return r.tag(tenantID) + "dl" }
func (r *Registry) snapKey(tenantID string) string     { return r.tag(tenantID) + "snap" }

// Started records a session a first landing started, before it is
// stored: the session is counted once however often this is called for
// it, and listed live with its deadline. It returns the Toloker's
// restrictions in force after the write, so the landing catches a ban made
// while it asked Toloka (a ban writes its restriction before it looks for
// live sessions to end).
func (r *Registry) Started(ctx context.Context, sess *crowdgatev1.Session) ([]restriction.Restriction, error) {
	rs, _, err := r.started(ctx, sess, false)
	return rs, err
}

// StartedUnlessRestricted is Started for a Toloker with no restriction
// stored, in the same one script call: when the Toloker has any (in force
// or not, covering this pool or not), it records nothing and returns those
// in force with listed false, for the caller to judge them and call
// Started. A landing thus reads the Toloker's bans and lists the session
// in one step, and a barred Toloker leaves nothing to take back.
func (r *Registry) StartedUnlessRestricted(ctx context.Context, sess *crowdgatev1.Session) (rs []restriction.Restriction, listed bool, err error) {
	return r.started(ctx, sess, true)
}

func (r *Registry) started(ctx context.Context, sess *crowdgatev1.Session, unlessRestricted bool) ([]restriction.Restriction, bool, error) {
	guard := ""
	if unlessRestricted {
		guard = "1"
	}
	now := r.now()
	snap, err := proto.Marshal(sess)
	if err != nil {
		return nil, false, err
	}
	t := sess.GetTenantId()
	res, err := startedScript.Run(ctx, r.landing,
		[]string{r.userKey(t, sess.GetUserId()), r.activityKey(t), r.poolKey(t, sess.GetPoolId()), r.banKey(t, sess.GetUserId()),
			r.deadlineKey(t), r.snapKey(t)},
		sess.GetSessionId(), sess.GetPoolId(), sess.GetProjectId(), now.UnixMilli(), sess.GetExpireTime().AsTime().UnixMilli(),
		r.retention.Milliseconds(), sess.GetUserId(), snap, guard).Slice()
	if err != nil {
		return nil, false, storage.Unavailable(err)
	}
	counted, _ := res[0].(int64)
	return r.scriptRestrictions(res, now), counted >= 0, nil
}

// Confirmed records that a session Started listed was stored: its
// session.started event, once. It returns the Toloker's restrictions in
// force after the session was stored: a ban made between the listing and
// the store may have looked for the session before it existed (and found
// nothing to end), so the caller ends it when one covers it.
func (r *Registry) Confirmed(ctx context.Context, sess *crowdgatev1.Session) ([]restriction.Restriction, error) {
	started, err := sessionEvent(events.TypeSessionStarted, sess)
	if err != nil {
		return nil, err
	}
	t := sess.GetTenantId()
	now := r.now()
	log, seen := events.Keys(r.prefix, t)
	res, err := confirmedScript.Run(ctx, r.landing, []string{r.snapKey(t), log, seen, r.banKey(t, sess.GetUserId())},
		sess.GetSessionId(), started.id, started.body, r.events.Retention().Milliseconds()).Slice()
	r.events.Appended()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	return r.scriptRestrictions(res, now), nil
}

// Abandoned takes back a session Started counted that was not stored after
// all (another landing stored the assignment's session first, or the
// store failed); a session not listed is left alone. It raises no event.
func (r *Registry) Abandoned(ctx context.Context, tenantID, userID, sessionID string) error {
	return storage.Unavailable(abandonedScript.Run(ctx, r.landing,
		[]string{r.userKey(tenantID, userID), r.deadlineKey(tenantID), r.snapKey(tenantID)}, sessionID, userID).Err())
}

// encodedEvent is an event ready for a script.
type encodedEvent struct {
	id   string
	body []byte
}

// sessionEvent returns the event of type typ about sess, as of sess: a
// started event with the session as it started, an ended one as it ended
// (at its end time, or its deadline for an expiry).
func sessionEvent(typ string, sess *crowdgatev1.Session) (encodedEvent, error) {
	body := proto.CloneOf(sess)
	at := sess.GetCreateTime().AsTime()
	if typ == events.TypeSessionStarted {
		body.State = crowdgatev1.SessionState_SESSION_STATE_ACTIVE
		body.EndReason = crowdgatev1.EndReason_END_REASON_UNSPECIFIED
		body.EndTime = nil
		body.SubmitsCount, body.RewardTotal = 0, ""
	} else {
		at = sess.GetEndTime().AsTime()
	}
	ev := events.NewEvent(sess.GetTenantId(), typ, "sessions/"+sess.GetSessionId(), at)
	ev.Data = &crowdgatev1.Event_Session{Session: body}
	raw, err := events.Encode(ev)
	return encodedEvent{id: ev.GetEventId(), body: raw}, err
}

// endFields are the counters of each way a session ends (EXPIRED is not
// an event: it is what is left).
var endFields = map[crowdgatev1.EndReason]string{
	crowdgatev1.EndReason_END_REASON_CLOSE_SESSION: "e:closed",
	crowdgatev1.EndReason_END_REASON_RESTRICTED:    "e:restricted",
	crowdgatev1.EndReason_END_REASON_FILTERED_OUT:  "e:filtered_out",
	crowdgatev1.EndReason_END_REASON_ENDED:         "e:ended",
	crowdgatev1.EndReason_END_REASON_REVOKED:       "e:revoked",
}

// Ended records how sess ended. The end is counted once, and only while
// the session is listed live, in the same step as its session.ended event
// (and its session.started, if still pending); an EXPIRED "end" counts
// nothing here (the sweep records expiries). It reports whether it counted.
func (r *Registry) Ended(ctx context.Context, sess *crowdgatev1.Session) (bool, error) {
	field, ok := endFields[sess.GetEndReason()]
	if !ok {
		return false, nil
	}
	started, err := sessionEvent(events.TypeSessionStarted, sess)
	if err != nil {
		return false, err
	}
	ended, err := sessionEvent(events.TypeSessionEnded, sess)
	if err != nil {
		return false, err
	}
	t, user := sess.GetTenantId(), sess.GetUserId()
	log, seen := events.Keys(r.prefix, t)
	n, err := endedScript.Run(ctx, r.rdb,
		[]string{r.userKey(t, user), r.activityKey(t), r.poolKey(t, sess.GetPoolId()), r.deadlineKey(t), r.snapKey(t), log, seen},
		sess.GetSessionId(), field, r.now().UnixMilli(), r.retention.Milliseconds(), user,
		started.id, started.body, ended.id, ended.body, r.events.Retention().Milliseconds()).Int()
	if err != nil {
		return false, storage.Unavailable(err)
	}
	r.events.Appended()
	return n == 1, nil
}

// LiveSessions returns the Toloker's sessions listed live and not expired.
func (r *Registry) LiveSessions(ctx context.Context, tenantID, userID string) ([]restriction.LiveSession, error) {
	all, err := r.rdb.HGetAll(ctx, r.userKey(tenantID, userID)).Result()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	return liveSessions(all, r.now()), nil
}

// liveSessions reads the live sessions of a record, newest expiry first.
func liveSessions(record map[string]string, now time.Time) []restriction.LiveSession {
	var out []restriction.LiveSession
	for f, v := range record {
		sid, ok := strings.CutPrefix(f, "s:")
		if !ok {
			continue
		}
		ms, pool, _ := strings.Cut(v, "\t")
		exp, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || exp <= now.UnixMilli() {
			continue
		}
		out = append(out, restriction.LiveSession{SessionID: sid, PoolID: pool, Expires: time.UnixMilli(exp).UTC()})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Expires.Equal(out[j].Expires) {
			return out[i].Expires.After(out[j].Expires)
		}
		return out[i].SessionID < out[j].SessionID
	})
	return out
}

// Restrict records a ban of the Toloker (replacing one with the same id),
// dropping the Toloker's expired ones.
func (r *Registry) Restrict(ctx context.Context, tenantID, userID string, res restriction.Restriction) error {
	key := r.banKey(tenantID, userID)
	if err := r.dropExpired(ctx, key); err != nil {
		return err
	}
	return storage.Unavailable(r.rdb.HSet(ctx, key, res.ID, res.Encode()).Err())
}

// Lift removes a ban of the Toloker; lifting a lifted ban does nothing.
func (r *Registry) Lift(ctx context.Context, tenantID, userID, banID string) error {
	return storage.Unavailable(r.rdb.HDel(ctx, r.banKey(tenantID, userID), banID).Err())
}

// Restrictions returns the Toloker's bans in force.
func (r *Registry) Restrictions(ctx context.Context, tenantID, userID string) ([]restriction.Restriction, error) {
	all, err := r.landing.HGetAll(ctx, r.banKey(tenantID, userID)).Result()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	fields := make([]string, 0, 2*len(all))
	for k, v := range all {
		fields = append(fields, k, v)
	}
	return r.decodeRestrictions(fields, r.now()), nil
}

// scriptRestrictions reads the restrictions a script answered after its
// first element (started's and confirmed's): the field, value pairs of
// the Toloker's restrictions hash, those in force at now.
func (r *Registry) scriptRestrictions(res []any, now time.Time) []restriction.Restriction {
	fields := make([]string, 0, len(res))
	for _, v := range res[1:] {
		str, _ := v.(string)
		fields = append(fields, str)
	}
	return r.decodeRestrictions(fields, now)
}

// decodeRestrictions reads field, value pairs of a restrictions hash: the
// ones in force at now, by id.
func (r *Registry) decodeRestrictions(fields []string, now time.Time) []restriction.Restriction {
	var out []restriction.Restriction
	for i := 0; i+1 < len(fields); i += 2 {
		res, err := restriction.Decode(fields[i], fields[i+1])
		if err != nil {
			r.log.Error("registry: a stored restriction cannot be read", "ban_id", fields[i], "err", err)
			continue
		}
		if res.Active(now) {
			out = append(out, res)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// dropExpired removes the expired bans of a restrictions hash.
func (r *Registry) dropExpired(ctx context.Context, key string) error {
	all, err := r.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return storage.Unavailable(err)
	}
	now := r.now()
	var gone []string
	for id, v := range all {
		if res, err := restriction.Decode(id, v); err == nil && !res.Active(now) {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return storage.Unavailable(r.rdb.HDel(ctx, key, gone...).Err())
}
