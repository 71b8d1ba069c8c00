package session

import (
	"context"
	"crypto/rand"
	_ "embed"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// store is the sessions' Redis layout. P is the configured prefix; the
// assignment id is the hash tag of every per-session key, so they share one
// Cluster slot:
//
//	P ses:{aid}            the session record (see record.go), TTL = expiry
//	P ses-used:{aid}:<n>   a used one-time code (n is its nonce), until it expires + MaxClockSkew
//	P ses-neg:{aid}        Toloka's cached final "no" for the assignment (or that its
//	                       Toloker is banned where it is: "b:...", see land.go)
//	P ses-lock:{aid}       the resolve lock while Toloka is asked
//	P ses-live:{tenant/pool} sorted set of active session ids by expiry
//	P ses-fence:{tenant/pool} an archive's token while it checks the pool (TTL), "archived" after,
//	                          "unsettled" when Toloka's answer about the archive was not heard (TTL);
//	                          see lua/fence.lua
//	P ses-unknown:{tenant/pool}:<window>  landings of ids Toloka does not know, this window
//	P ses-block:{tenant/pool}:<user>      the reason a Toloker's session in the pool was revoked,
//	                                      or "lifted:<ms>:<session>" once a later session's landing lifted it
type store struct {
	rdb redis.UniversalClient
	// landing runs the landing's commands (usually rdb autopipelined); it
	// is given only commands that are safe to repeat.
	landing redis.UniversalClient
	prefix  string
}

var (
	//go:embed lua/land.lua
	landLua string
	//go:embed lua/create.lua
	createLua string
	//go:embed lua/release.lua
	releaseLua string
	//go:embed lua/exchange.lua
	exchangeLua string
	//go:embed lua/enlist.lua
	enlistLua string
	//go:embed lua/lift.lua
	liftLua string
	//go:embed lua/fence.lua
	fenceLua string
	//go:embed lua/unfence.lua
	unfenceLua string
	//go:embed lua/forget.lua
	forgetLua string
	//go:embed lua/swap.lua
	swapLua string
	//go:embed lua/bar.lua
	barLua string

	landScript     = redis.NewScript(ratelimit.ReserveLua() + landLua)
	createScript   = redis.NewScript(createLua)
	releaseScript  = redis.NewScript(releaseLua)
	exchangeScript = redis.NewScript(exchangeLua)
	enlistScript   = redis.NewScript(enlistLua)
	liftScript     = redis.NewScript(liftLua)
	fenceScript    = redis.NewScript(fenceLua)
	unfenceScript  = redis.NewScript(unfenceLua)
	forgetScript   = redis.NewScript(forgetLua)
	swapScript     = redis.NewScript(swapLua)
	barScript      = redis.NewScript(barLua)
)

func (s *store) sessionKey(aid string) string { return s.prefix + "ses:{" + aid + "}" }
func (s *store) usedKey(aid, nonce string) string {
	return s.prefix + "ses-used:{" + aid + "}:" + nonce
}
func (s *store) negKey(aid string) string  { return s.prefix + "ses-neg:{" + aid + "}" }
func (s *store) lockKey(aid string) string { return s.prefix + "ses-lock:{" + aid + "}" }
func (s *store) liveKey(tenantID, poolID string) string {
	return s.prefix + "ses-live:{" + tenantID + "/" + poolID + "}"
}
func (s *store) fenceKey(tenantID, poolID string) string {
	return s.prefix + "ses-fence:{" + tenantID + "/" + poolID + "}"
}

// sideKey is the pool's index of side-door submits being accepted (by
// token, scored by when the listing expires), in the pool's slot.
func (s *store) sideKey(tenantID, poolID string) string {
	return s.prefix + "ses-side:{" + tenantID + "/" + poolID + "}"
}

// getMany reads the records of assignments (those that have one) in one
// pipeline.
func (s *store) getMany(ctx context.Context, aids []string) (map[string][]byte, error) {
	cmds := make([]*redis.StringCmd, len(aids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, aid := range aids {
			cmds[i] = p.Get(ctx, s.sessionKey(aid))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, storage.Unavailable(err)
	}
	out := make(map[string][]byte, len(aids))
	for i, c := range cmds {
		b, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, storage.Unavailable(err)
		}
		out[aids[i]] = b
	}
	return out, nil
}

// forget drops the cached answer about an assignment if it is still
// answer (a ban was lifted: the answer no longer holds).
func (s *store) forget(ctx context.Context, aid, answer string) error {
	return storage.Unavailable(forgetScript.Run(ctx, s.rdb, []string{s.negKey(aid)}, answer).Err())
}

// errNoRecord is get's answer for an assignment without a session.
var errNoRecord = errors.New("session: no record")

// get reads an assignment's record through the landing client (a warm
// landing's one GET).
func (s *store) get(ctx context.Context, aid string) ([]byte, error) {
	raw, err := s.landing.Get(ctx, s.sessionKey(aid)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, errNoRecord
	}
	return raw, storage.Unavailable(err)
}

// What landScript found.
const (
	foundSession = 1
	foundAnswer  = 2
	tookLock     = 3
	lockHeld     = 4
	limited      = 5
)

// land runs a first landing's step (landScript): the session, a slot in
// the assignment's landing limit (when limit is not nil; its refusal when
// there is none), a cached answer, the resolve lock taken with token, or
// the lock held by another.
func (s *store) land(ctx context.Context, aid, token string, lockTTL time.Duration, limit *ratelimit.Reservation) (kind int64, payload string, err error) {
	keys := []string{s.sessionKey(aid), s.negKey(aid), s.lockKey(aid)}
	args := []any{lockTTL.Milliseconds(), token}
	if limit != nil {
		keys = append(keys, limit.Keys...)
		args = append(args, limit.Args...)
	}
	res, err := landScript.Run(ctx, s.landing, keys, args...).Slice()
	if err != nil {
		return 0, "", storage.Unavailable(err)
	}
	kind, _ = res[0].(int64)
	switch {
	case kind == limited && len(res) == 3:
		wait, _ := res[1].(int64)
		worst, _ := res[2].(int64)
		return kind, "", &LimitedError{AssignmentID: aid, Exhausted: limit.Refused(wait, worst)}
	case len(res) > 1:
		payload, _ = res[1].(string)
	}
	return kind, payload, nil
}

// create stores a new record unless one exists and releases the lock;
// stored is whichever record the assignment now has ("" when none).
func (s *store) create(ctx context.Context, aid string, raw []byte, ttl time.Duration, token string) (created bool, stored string, err error) {
	res, err := createScript.Run(ctx, s.landing, []string{s.sessionKey(aid), s.lockKey(aid)}, raw, ttl.Milliseconds(), token).Slice()
	if err != nil {
		return false, "", storage.Unavailable(err)
	}
	n, _ := res[0].(int64)
	stored, _ = res[1].(string)
	return n == 1, stored, nil
}

// storedIs reports whether stored (a session record) is the session
// sessionID.
func storedIs(stored, sessionID string) bool {
	r, err := unmarshalRecord([]byte(stored))
	return err == nil && r.session.GetSessionId() == sessionID
}

// release stores a final answer (when answer is not empty) for ttl and
// releases the lock held with token.
func (s *store) release(ctx context.Context, aid, token, answer string, ttl time.Duration) error {
	return storage.Unavailable(releaseScript.Run(ctx, s.landing, []string{s.lockKey(aid), s.negKey(aid)}, token, answer, ttl.Milliseconds()).Err())
}

// errCodeUsed is exchange's answer for a code used before.
var errCodeUsed = errors.New("session: code used")

// sessionOfTenant reports whether the session of assignment aid is
// tenantID's (false when there is none).
func (s *store) sessionOfTenant(ctx context.Context, aid, tenantID string) (bool, error) {
	b, err := s.rdb.Get(ctx, s.sessionKey(aid)).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, storage.Unavailable(err)
	}
	r, err := unmarshalRecord(b)
	if err != nil {
		return false, err
	}
	return r.session.GetTenantId() == tenantID, nil
}

// exchange marks a code's nonce used for markerTTL and returns the
// session's record ("" when the session is gone).
func (s *store) exchange(ctx context.Context, aid, nonce string, markerTTL time.Duration) (string, error) {
	raw, err := exchangeScript.Run(ctx, s.rdb, []string{s.usedKey(aid, nonce), s.sessionKey(aid)}, markerTTL.Milliseconds(), newLockToken()).Text()
	if errors.Is(err, redis.Nil) {
		return "", errCodeUsed
	}
	return raw, storage.Unavailable(err)
}

// enlist's answers in a fenced pool.
var (
	// errFenced: an archive is checking the pool.
	errFenced = errors.New("session: an archive is checking the pool")
	// errSealed: the pool is archived.
	errSealed = errors.New("session: the pool is archived")
)

// enlist lists a new session under its pool until its expiry, before the
// session is stored: errFenced or errSealed, listing nothing, when the
// pool is fenced. Sent again after a lost reply (by the autopipeliner, as
// by any go-redis client's retries), it lists the same session again.
func (s *store) enlist(ctx context.Context, r *record, now time.Time) error {
	sess := r.session
	return s.enlistIn(ctx, s.liveKey(sess.TenantId, sess.PoolId), sess.TenantId, sess.PoolId, sess.SessionId, sess.GetExpireTime().AsTime(), now)
}

// enlistSide lists a side-door submit (token) in its pool's side-door
// index until expires, as enlist lists a session.
func (s *store) enlistSide(ctx context.Context, tenantID, poolID, token string, expires, now time.Time) error {
	return s.enlistIn(ctx, s.sideKey(tenantID, poolID), tenantID, poolID, token, expires, now)
}

// enlistIn lists member in index, one of the pool's indexes the archive's
// fence counts, until expires: errFenced or errSealed, listing nothing,
// when an archive holds the pool.
func (s *store) enlistIn(ctx context.Context, index, tenantID, poolID, member string, expires, now time.Time) error {
	got, err := enlistScript.Run(ctx, s.landing, []string{index, s.fenceKey(tenantID, poolID)},
		member, expires.UnixMilli(), now.UnixMilli()).Int64()
	switch {
	case err != nil:
		return storage.Unavailable(err)
	case got == 0:
		return errSealed
	case got < 0:
		return errFenced
	}
	return nil
}

// unlistSide takes a side-door submit off its pool's index.
func (s *store) unlistSide(ctx context.Context, tenantID, poolID, token string) error {
	return storage.Unavailable(s.rdb.ZRem(ctx, s.sideKey(tenantID, poolID), token).Err())
}

// lift lifts the Toloker's bar in a stored session's pool. Sent again, it
// leaves the bar as the first run left it: a bar set meanwhile would have
// to come from revoking this very session in the milliseconds before its
// landing is answered.
func (s *store) lift(ctx context.Context, r *record, now time.Time) error {
	sess := r.session
	return storage.Unavailable(liftScript.Run(ctx, s.landing,
		[]string{s.blockKey(sess.TenantId, sess.PoolId, sess.UserId)}, sess.SessionId, now.UnixMilli()).Err())
}

// errFenceHeld is fence's answer when another holder's fence is up.
var errFenceHeld = errors.New("session: another archive holds the pool's fence")

// fence fences a pool for holder for ttl (enlist then lists nothing) and
// counts its sessions live after now, in one step.
func (s *store) fence(ctx context.Context, tenantID, poolID, holder string, ttl time.Duration, now time.Time) (int64, error) {
	n, err := fenceScript.Run(ctx, s.rdb, []string{s.fenceKey(tenantID, poolID), s.liveKey(tenantID, poolID), s.sideKey(tenantID, poolID)},
		holder, ttl.Milliseconds(), now.UnixMilli()).Int64()
	if err != nil {
		return 0, storage.Unavailable(err)
	}
	if n < 0 {
		return 0, errFenceHeld
	}
	return n, nil
}

// unfence lets go of holder's fence of a pool (another's stays): lifts it,
// or, with unsettled or when holder took it over from an unsettled one,
// leaves it up and free for the next archive to take, for ttl (its
// remaining time when ttl is 0).
func (s *store) unfence(ctx context.Context, tenantID, poolID, holder string, unsettled bool, ttl time.Duration) error {
	mode := ""
	if unsettled {
		mode = "unsettled"
	}
	return storage.Unavailable(unfenceScript.Run(ctx, s.rdb, []string{s.fenceKey(tenantID, poolID)}, holder, mode, ttl.Milliseconds()).Err())
}

// sealedFence is the fence of an archived pool.
const sealedFence = "archived"

// seal fences an archived pool for good.
func (s *store) seal(ctx context.Context, tenantID, poolID string) error {
	return storage.Unavailable(s.rdb.Set(ctx, s.fenceKey(tenantID, poolID), sealedFence, 0).Err())
}

// unlistLive takes a session off its pool's live index: one that ended, or
// one that was listed and then not stored.
func (s *store) unlistLive(ctx context.Context, tenantID, poolID, sessionID string) error {
	return storage.Unavailable(s.rdb.ZRem(ctx, s.liveKey(tenantID, poolID), sessionID).Err())
}

// liveCount counts a pool's sessions listed live after now.
func (s *store) liveCount(ctx context.Context, tenantID, poolID string, now time.Time) (int64, error) {
	n, err := s.rdb.ZCount(ctx, s.liveKey(tenantID, poolID), "("+strconv.FormatInt(now.UnixMilli(), 10), "+inf").Result()
	return n, storage.Unavailable(err)
}

// read returns a tenant's session record by session id; NotFound for an
// unknown, expired or foreign one.
func (s *store) read(ctx context.Context, tenantID, sessionID string) (*record, error) {
	aid, ok := assignmentOfSession(sessionID)
	if !ok {
		return nil, &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	return s.getRecord(ctx, s.sessionKey(aid), tenantID, sessionID)
}

// getRecord reads and decodes the record at key, the tenant's session sessionID.
func (s *store) getRecord(ctx context.Context, key, tenantID, sessionID string) (*record, error) {
	b, err := s.landing.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	return decode(b, tenantID, sessionID)
}

// decode decodes a stored record that must be the tenant's session
// sessionID, keeping the bytes it was read from (record.stored).
func decode(b []byte, tenantID, sessionID string) (*record, error) {
	r, err := unmarshalRecord(b)
	if err != nil {
		return nil, err
	}
	if r.session.GetSessionId() != sessionID || r.session.GetTenantId() != tenantID {
		return nil, &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	r.stored = string(b)
	return r, nil
}

// update changes a tenant's session record atomically, keeping its TTL:
// it reads the record, changes it, and swaps the change in only if the
// record is still the one read (swap.lua), else reads again. from, when
// not empty, is the record as the caller read it (record.stored): the
// first try starts from it instead of reading. change reports whether it
// changed the record; the record as it is afterwards is returned.
//
// Both steps go through the landing's autopipelined client, so concurrent
// updates (a Submit's RecordSubmit, say) share round trips instead of
// each holding a connection for a WATCH transaction. A batch that is
// resent is safe: a read is, and a swap finds its change's new revision
// in the record (among the last keptRevisions, so also after other
// changes) and answers that it was applied.
func (s *store) update(ctx context.Context, tenantID, sessionID, from string, change func(*record) bool) (*record, error) {
	aid, ok := assignmentOfSession(sessionID)
	if !ok {
		return nil, &serviceerror.NotFound{Resource: "session", ID: sessionID}
	}
	key := s.sessionKey(aid)
	for try := range 50 {
		// The autopipelined client runs a command however long its
		// caller waits: the caller's end is checked here.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var (
			r   *record
			err error
		)
		if try == 0 && from != "" {
			r, err = decode([]byte(from), tenantID, sessionID)
		} else {
			r, err = s.getRecord(ctx, key, tenantID, sessionID)
		}
		if err != nil {
			return nil, err
		}
		old := r.stored
		if !change(r) {
			return r, nil
		}
		rev := newRevision()
		r.revisions = withRevision(r.revisions, rev)
		changed, err := r.marshal()
		if err != nil {
			return nil, err
		}
		swapped, err := swapScript.Run(ctx, s.landing, []string{key}, old, changed, rev).Int()
		if err != nil {
			return nil, storage.Unavailable(err)
		}
		if swapped == 1 {
			r.stored = string(changed)
			return r, nil
		}
		// Changed meanwhile: read again.
	}
	return nil, &serviceerror.Unavailable{Message: "the session is being changed concurrently; try again", RetryAfter: storage.RetryAfter}
}

// A record's revisions (record.revisions).
const (
	// revisionSize is a revision's length: random bytes, so one is found
	// in a record only where it was written.
	revisionSize = 8
	// keptRevisions bounds the revisions a record keeps: a swap resent
	// after more changes than this came after it could count twice. A
	// resend follows its first send within go-redis's retry backoff
	// (milliseconds), and a session changes a few times a minute.
	keptRevisions = 4
)

// withRevision returns revs with rev added, the oldest dropped past
// keptRevisions.
func withRevision(revs []string, rev string) []string {
	return append(slices.Clone(revs[max(0, len(revs)-keptRevisions+1):]), rev)
}

// newRevision returns a new record revision.
func newRevision() string {
	var b [revisionSize]byte
	_, _ = rand.Read(b[:])
	return string(b[:])
}

func (s *store) unknownKey(tenantID, poolID string, window int64) string {
	return s.prefix + "ses-unknown:{" + tenantID + "/" + poolID + "}:" + strconv.FormatInt(window, 10)
}

// unknownClientKey counts a client's landings of ids Toloka does not know
// in one Toloka pool (the id's first 10 hex digits, whatever tenant's pool
// holds it) and window.
func (s *store) unknownClientKey(aid, client string, window int64) string {
	return s.prefix + "ses-unknown-client:{" + aid[:10] + "}:" + client + ":" + strconv.FormatInt(window, 10)
}

// clientUnknowns reads a client's count of unknown ids in key's window (0
// when none).
func (s *store) clientUnknowns(ctx context.Context, key string) (int64, error) {
	n, err := s.rdb.Get(ctx, key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, storage.Unavailable(err)
}

func (s *store) blockKey(tenantID, poolID, userID string) string {
	return s.prefix + "ses-block:{" + tenantID + "/" + poolID + "}:" + userID
}

// spendUnknown counts one landing of an unknown id in a window, which
// lasts per, of the counter key (unknownKey's, a pool's, or
// unknownClientKey's, a client's share).
func (s *store) spendUnknown(ctx context.Context, key string, per time.Duration) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, key)
		p.PExpire(ctx, key, 2*per)
		return nil
	})
	return storage.Unavailable(err)
}

// blockTTL bounds how long a revoked Toloker stays barred from a pool
// without landing again.
const blockTTL = 90 * 24 * time.Hour

// block bars a Toloker's submits by pool and user in a pool after sess
// ended, for its end reason: unless a later session's landing lifted the
// bar (bar.lua).
func (s *store) block(ctx context.Context, sess *crowdgatev1.Session) error {
	return storage.Unavailable(barScript.Run(ctx, s.rdb, []string{s.blockKey(sess.TenantId, sess.PoolId, sess.UserId)},
		sess.GetEndReason().String(), sess.GetCreateTime().AsTime().UnixMilli(), sess.GetSessionId(), blockTTL.Milliseconds()).Err())
}

// liftedPrefix starts the value a lifted bar leaves (lift.lua).
const liftedPrefix = "lifted:"

// blocked returns the reason a Toloker is barred from a pool ("" when not,
// or when a landing lifted the bar).
func (s *store) blocked(ctx context.Context, tenantID, poolID, userID string) (string, error) {
	v, err := s.rdb.Get(ctx, s.blockKey(tenantID, poolID, userID)).Result()
	if errors.Is(err, redis.Nil) || strings.HasPrefix(v, liftedPrefix) {
		return "", nil
	}
	return v, storage.Unavailable(err)
}
