package webhook

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// Shards is how many outbox streams deliveries are spread over.
const Shards = 16

// group is the consumer group of the delivery streams.
const group = "webhook"

// store is the Redis layout of endpoints and deliveries:
//
//	<prefix>whe:<tenant>:<endpoint id>          endpoint (hash: pb = WebhookEndpoint
//	                                            protobuf, sec = sealed secret, osec =
//	                                            sealed previous secret, oexp = when it
//	                                            stops signing (unix ms), osec2, oexp2 =
//	                                            the one before it, fs = failing since
//	                                            (unix ms), dev = the failing-since of a
//	                                            disable whose event is not yet recorded)
//	<prefix>wheidx:<tenant>                     the tenant's endpoints (zset by id; an
//	                                            entry is written before its record,
//	                                            which holds the bound of endpoints)
//	<prefix>whdidx:<tenant>:<endpoint id>       the endpoint's deliveries (zset by
//	                                            "<13-digit ms>:<event id>")
//	<prefix>wh*:{wh:N}:...                      the delivery outbox (outbox.Records:
//	                                            record pb = Event protobuf, ep, ev,
//	                                            ty, ct, nat; journal = WebhookAttempt
//	                                            protobufs)
type store struct {
	rdb redis.UniversalClient
	// workers carries the reads every delivery attempt makes (an
	// autopipelined rdb: the attempts in flight share round trips).
	workers redis.Cmdable
	prefix  string
	box     *secretbox.Box
	// now is the service's clock.
	now func() time.Time
}

func (s *store) endpointKey(tenantID, id string) string {
	return s.prefix + "whe:" + tenantID + ":" + id
}
func (s *store) endpointIndex(tenantID string) string { return s.prefix + "wheidx:" + tenantID }
func (s *store) deliveryIndex(tenantID, endpointID string) string {
	return s.prefix + "whdidx:" + tenantID + ":" + endpointID
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// newEndpointID returns "whe_" and 26 characters: the time in nanoseconds
// and random bytes, so ids sort by creation.
func newEndpointID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	if _, err := rand.Read(b[8:]); err != nil {
		panic("webhook: crypto/rand failed: " + err.Error())
	}
	return "whe_" + idEncoding.EncodeToString(b[:])
}

// validEndpointID reports whether id can be an endpoint id.
func validEndpointID(id string) bool {
	rest, ok := strings.CutPrefix(id, "whe_")
	if !ok || len(rest) != 26 {
		return false
	}
	for i := range len(rest) {
		if strings.IndexByte("0123456789abcdefghjkmnpqrstvwxyz", rest[i]) < 0 {
			return false
		}
	}
	return true
}

// item is the outbox item of an event's delivery to an endpoint.
func item(endpointID, eventID string) string { return endpointID + "/" + eventID }

// shardOf is an item's shard.
func shardOf(it string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(it))
	return int(h.Sum32() % Shards)
}

// deliveryID is the public id of an event's delivery to an endpoint.
func deliveryID(endpointID, eventID string) string {
	h := sha256.Sum256([]byte(endpointID + "\x00" + eventID))
	return "whd_" + idEncoding.EncodeToString(h[:16])
}

// sealContext binds a sealed secret to its endpoint.
func sealContext(tenantID, endpointID string) string {
	return "webhook-secret/" + tenantID + "/" + endpointID
}

// endpointRecord is a stored endpoint with its sealed secrets (opened only
// to sign: listing endpoints and fanning events out never opens one).
type endpointRecord struct {
	ep *crowdgatev1.WebhookEndpoint
	// sealed is the current secret; sealedPrevious signs too until
	// previousUntil, and sealedOlder (the one rotated out before it) until
	// olderUntil.
	sealed, sealedPrevious, sealedOlder []byte
	previousUntil, olderUntil           time.Time
	// failingSince is when its current run of failures started (zero when
	// its last attempt succeeded).
	failingSince time.Time
	// disabledSince, when not zero, is the failingSince of the disable
	// whose webhook_endpoint.disabled event is not recorded yet.
	disabledSince time.Time
}

// keys returns the HMAC keys that sign at now: the previous secret's
// during a rotation's overlap (first), then the current one's.
func (r *endpointRecord) keys(box *secretbox.Box, now time.Time) ([][]byte, error) {
	sc := sealContext(r.ep.GetTenantId(), r.ep.GetEndpointId())
	open := func(sealed []byte) ([]byte, error) {
		b, err := box.Open(sealed, sc)
		if err != nil {
			return nil, fmt.Errorf("webhook: the secret of endpoint %s does not open (was CROWDGATE_ENCRYPTION_KEY changed?)", r.ep.GetEndpointId())
		}
		return secretKey(string(b))
	}
	var out [][]byte
	for _, prev := range []struct {
		sealed []byte
		until  time.Time
	}{{r.sealedOlder, r.olderUntil}, {r.sealedPrevious, r.previousUntil}} {
		if len(prev.sealed) > 0 && now.Before(prev.until) {
			// A rotated-out secret that does not open (the key ring lost
			// the key it was sealed with) no longer signs; only the
			// current one must.
			if k, err := open(prev.sealed); err == nil {
				out = append(out, k)
			}
		}
	}
	k, err := open(r.sealed)
	if err != nil {
		return nil, err
	}
	return append(out, k), nil
}

var endpointFields = []string{"pb", "sec", "osec", "oexp", "fs", "osec2", "oexp2", "dev"}

// getEndpoint reads an endpoint; NotFound when the tenant has none of
// that id.
func (s *store) getEndpoint(ctx context.Context, tenantID, id string) (*endpointRecord, error) {
	return s.readEndpoint(ctx, s.rdb, tenantID, id)
}

// attemptEndpoint is getEndpoint for a delivery attempt, read through
// workers.
func (s *store) attemptEndpoint(ctx context.Context, tenantID, id string) (*endpointRecord, error) {
	return s.readEndpoint(ctx, s.workers, tenantID, id)
}

func (s *store) readEndpoint(ctx context.Context, c redis.Cmdable, tenantID, id string) (*endpointRecord, error) {
	if !validEndpointID(id) {
		return nil, &serviceerror.NotFound{Resource: "webhook endpoint", ID: id}
	}
	vals, err := c.HMGet(ctx, s.endpointKey(tenantID, id), endpointFields...).Result()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	r, err := s.decodeEndpoint(tenantID, id, vals)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, &serviceerror.NotFound{Resource: "webhook endpoint", ID: id}
	}
	return r, nil
}

func (s *store) decodeEndpoint(tenantID, id string, vals []any) (*endpointRecord, error) {
	str := func(i int) string { v, _ := vals[i].(string); return v }
	if str(0) == "" {
		return nil, nil
	}
	ep := new(crowdgatev1.WebhookEndpoint)
	if err := proto.Unmarshal([]byte(str(0)), ep); err != nil {
		return nil, fmt.Errorf("webhook: decode endpoint %s: %w", id, err)
	}
	if ep.GetTenantId() != tenantID || ep.GetEndpointId() != id {
		return nil, fmt.Errorf("webhook: endpoint record %s/%s holds another endpoint", tenantID, id)
	}
	r := &endpointRecord{ep: ep, sealed: []byte(str(1)), sealedPrevious: []byte(str(2))}
	if ms, err := strconv.ParseInt(str(3), 10, 64); err == nil {
		r.previousUntil = time.UnixMilli(ms)
	}
	if ms, err := strconv.ParseInt(str(4), 10, 64); err == nil {
		r.failingSince = time.UnixMilli(ms)
	}
	r.sealedOlder = []byte(str(5))
	if ms, err := strconv.ParseInt(str(6), 10, 64); err == nil {
		r.olderUntil = time.UnixMilli(ms)
	}
	if ms, err := strconv.ParseInt(str(7), 10, 64); err == nil {
		r.disabledSince = time.UnixMilli(ms)
	}
	return r, nil
}

// reserveScript takes a place in a tenant's endpoint index for a new
// endpoint when the index has fewer than ARGV[2] entries (KEYS[1] the
// index, ARGV[1] the endpoint id). It returns 1 when the place is the
// endpoint's (also when this call is sent again after its reply was
// lost), 0 when the index is full.
var reserveScript = redis.NewScript(`
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], 0, ARGV[1])
return 1
`)

// reservationTTL is how long an index entry may name an endpoint whose
// record is not stored: a create between its reservation and its record
// (one round trip, bounded by recordWriteBound). An older such entry (by
// the time in its id; replicas' clocks are taken to agree within a few
// minutes) is a create that stopped there, and is taken out of the index
// when read.
const (
	reservationTTL   = 10 * time.Minute
	recordWriteBound = time.Minute
)

// createEndpoint stores a new endpoint with its secret, unless its tenant
// has max endpoints already (FAILED_PRECONDITION). The endpoint's place in
// the index is taken first, in one step with the count, so concurrent
// creates cannot pass the bound; readers skip an entry whose record is not
// stored yet.
func (s *store) createEndpoint(ctx context.Context, ep *crowdgatev1.WebhookEndpoint, secret string, max int) error {
	pb, err := proto.Marshal(ep)
	if err != nil {
		return err
	}
	index := []string{s.endpointIndex(ep.GetTenantId())}
	placed, err := reserveScript.Run(ctx, s.rdb, index, ep.GetEndpointId(), max).Int()
	if err != nil {
		return storage.Unavailable(err)
	}
	if placed == 0 {
		// Full: the places of creates that stopped before their record
		// are freed (endpoints does that as it reads), and the place asked
		// for again.
		if _, err := s.allEndpoints(ctx, ep.GetTenantId()); err != nil {
			return err
		}
		if placed, err = reserveScript.Run(ctx, s.rdb, index, ep.GetEndpointId(), max).Int(); err != nil {
			return storage.Unavailable(err)
		}
	}
	if placed == 0 {
		return serviceerror.NewFailedPrecondition("the tenant has reached its limit of %d webhook endpoints (CROWDGATE_WEBHOOK_MAX_ENDPOINTS): delete one first", max)
	}
	sealed := s.box.Seal([]byte(secret), sealContext(ep.GetTenantId(), ep.GetEndpointId()))
	// Bounded well within reservationTTL, after which a place without its
	// record is freed.
	ctx, cancel := context.WithTimeout(ctx, recordWriteBound)
	defer cancel()
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.endpointKey(ep.GetTenantId(), ep.GetEndpointId()), "pb", pb, "sec", sealed)
		return nil
	})
	if err != nil {
		// The place is left: the record may be stored after all (a lost
		// reply). If it is not, the place is freed once reservationTTL
		// has passed (endpoints).
		return storage.Unavailable(err)
	}
	return nil
}

// errConflict is a concurrent change of one endpoint.
var errConflict = errors.New("webhook: the endpoint changed concurrently")

// changeEndpoint applies change to a stored endpoint atomically (WATCH;
// retried on a concurrent change). change may set fields to write besides
// pb (name, value pairs) and fields to delete.
func (s *store) changeEndpoint(ctx context.Context, tenantID, id string,
	change func(r *endpointRecord) (set []any, del []string, err error)) (*endpointRecord, error) {
	key := s.endpointKey(tenantID, id)
	for range 10 {
		var out *endpointRecord
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			vals, err := tx.HMGet(ctx, key, endpointFields...).Result()
			if err != nil {
				return storage.Unavailable(err)
			}
			r, err := s.decodeEndpoint(tenantID, id, vals)
			if err != nil {
				return err
			}
			if r == nil {
				return &serviceerror.NotFound{Resource: "webhook endpoint", ID: id}
			}
			set, del, err := change(r)
			if err != nil {
				return err
			}
			if set == nil && del == nil {
				out = r
				return nil
			}
			pb, err := proto.Marshal(r.ep)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, key, append([]any{"pb", pb}, set...)...)
				if len(del) > 0 {
					p.HDel(ctx, key, del...)
				}
				return nil
			})
			if errors.Is(err, redis.TxFailedErr) {
				return errConflict
			}
			if err != nil {
				return storage.Unavailable(err)
			}
			out = r
			return nil
		}, key)
		if errors.Is(err, errConflict) || errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, serviceerror.NewFailedPrecondition("the webhook endpoint is being changed concurrently; try again")
}

// deleteEndpoint removes an endpoint and its index entries. Its owed
// webhook_endpoint.disabled event (the record's dev mark) is recorded
// first, by record, which reports whether it was: the delete waits for
// it (Unavailable when it cannot be recorded), so no disable goes
// unannounced. The record is deleted only if its mark is still the one
// recorded (a disable in between is read and recorded again).
func (s *store) deleteEndpoint(ctx context.Context, tenantID, id string, record func(owed *endpointRecord) bool) error {
	key := s.endpointKey(tenantID, id)
	for range 3 {
		r, err := s.getEndpoint(ctx, tenantID, id)
		if err != nil {
			return err
		}
		dev := ""
		if !r.disabledSince.IsZero() {
			if !record(r) {
				return errDisabledEventOwed()
			}
			dev = strconv.FormatInt(r.disabledSince.UnixMilli(), 10)
		}
		n, err := deleteUnlessOwedScript.Run(ctx, s.rdb, []string{key}, dev).Int()
		switch {
		case err != nil:
			return storage.Unavailable(err)
		case n == 0:
			return &serviceerror.NotFound{Resource: "webhook endpoint", ID: id}
		case n < 0:
			continue // disabled meanwhile: its event first
		}
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.ZRem(ctx, s.endpointIndex(tenantID), id)
			p.Del(ctx, s.deliveryIndex(tenantID, id))
			return nil
		}); err != nil {
			return storage.Unavailable(err)
		}
		return nil
	}
	return serviceerror.NewFailedPrecondition("the webhook endpoint is being changed concurrently; try again")
}

// errDisabledEventOwed answers a change of an endpoint (enabling it again,
// deleting it) that waits for its webhook_endpoint.disabled event, which
// could not be recorded yet.
func errDisabledEventOwed() error {
	return &serviceerror.Unavailable{Message: "the endpoint's webhook_endpoint.disabled event is not recorded yet; try again", RetryAfter: time.Second}
}

// deleteUnlessOwedScript deletes the endpoint KEYS[1] unless it owes a
// webhook_endpoint.disabled event other than the one of ARGV[1] (the
// disable recorded, "" for none): 1 when deleted, 0 when there was no
// such endpoint, -1 when it owes another.
var deleteUnlessOwedScript = redis.NewScript(`
local dev = redis.call('HGET', KEYS[1], 'dev')
if dev and dev ~= ARGV[1] then
  return -1
end
return redis.call('DEL', KEYS[1])
`)

// listEndpoints returns up to n of the tenant's endpoints after the id
// after, oldest first, and the last id read ("" at the end).
func (s *store) listEndpoints(ctx context.Context, tenantID, after string, n int) ([]*endpointRecord, string, error) {
	min := "-"
	if after != "" {
		min = "(" + after
	}
	ids, err := s.rdb.ZRangeByLex(ctx, s.endpointIndex(tenantID), &redis.ZRangeBy{Min: min, Max: "+", Count: int64(n + 1)}).Result()
	if err != nil {
		return nil, "", storage.Unavailable(err)
	}
	more := len(ids) > n
	if more {
		ids = ids[:n]
	}
	out, err := s.endpoints(ctx, tenantID, ids)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more && len(ids) > 0 {
		next = ids[len(ids)-1]
	}
	return out, next, nil
}

// allEndpoints returns every endpoint of the tenant.
func (s *store) allEndpoints(ctx context.Context, tenantID string) ([]*endpointRecord, error) {
	ids, err := s.rdb.ZRange(ctx, s.endpointIndex(tenantID), 0, -1).Result()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	return s.endpoints(ctx, tenantID, ids)
}

func (s *store) endpoints(ctx context.Context, tenantID string, ids []string) ([]*endpointRecord, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.endpointKey(tenantID, id), endpointFields...)
		}
		return nil
	}); err != nil {
		return nil, storage.Unavailable(err)
	}
	out := make([]*endpointRecord, 0, len(ids))
	var stale []any
	for i, c := range cmds {
		r, err := s.decodeEndpoint(tenantID, ids[i], c.Val())
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		} else if created, ok := endpointCreated(ids[i]); ok && s.now().Sub(created) > reservationTTL {
			stale = append(stale, ids[i])
		}
	}
	if len(stale) > 0 {
		// A create that stopped between its place and its record (or a
		// delete between its record and its place): the place is freed.
		_ = s.rdb.ZRem(ctx, s.endpointIndex(tenantID), stale...).Err()
	}
	return out, nil
}

// endpointCreated reads the creation time newEndpointID wrote into id.
func endpointCreated(id string) (time.Time, bool) {
	if !validEndpointID(id) {
		return time.Time{}, false
	}
	b, err := idEncoding.DecodeString(strings.TrimPrefix(id, "whe_"))
	if err != nil || len(b) != 16 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))), true
}

// indexMember is a delivery's member in its endpoint's index: it sorts by
// the event's time.
func indexMember(at time.Time, eventID string) string {
	return fmt.Sprintf("%013d:%s", max(at.UnixMilli(), 0), eventID)
}

// memberEvent is the event id of an index member.
func memberEvent(m string) string {
	_, ev, _ := strings.Cut(m, ":")
	return ev
}
