package storage

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// Store keeps records of one kind (credentials, projects, pools and the
// like) as binary protobuf, one key per record, each in its tenant's key
// space, with newest-first indexes for paged listing.
//
// Keys are laid out so that a tenant can only ever read its own records: the
// tenant id is part of every key, so a foreign id is simply not found. Each
// record key carries its own hash tag, so records spread over a Redis
// Cluster.
type Store[M proto.Message] struct {
	rdb    redis.UniversalClient
	prefix string
	kind   string
	newMsg func() M
}

// NewStore returns a store for records of kind ("project", "pool", ...)
// under the key prefix. newMsg returns an empty message to decode into.
func NewStore[M proto.Message](rdb redis.UniversalClient, prefix, kind string, newMsg func() M) *Store[M] {
	return &Store[M]{rdb: rdb, prefix: prefix, kind: kind, newMsg: newMsg}
}

// Key is the Redis key of one record.
func (s *Store[M]) Key(tenantID, id string) string {
	return fmt.Sprintf("%s%s:%s:{%s}", s.prefix, s.kind, tenantID, id)
}

// indexKey is the key of a listing index: all of a tenant's records of this
// kind (parent ""), or those under one parent (a project's pools).
func (s *Store[M]) indexKey(tenantID, parent string) string {
	if parent == "" {
		return fmt.Sprintf("%sidx:%s:%s", s.prefix, s.kind, tenantID)
	}
	return fmt.Sprintf("%sidx:%s:%s:%s", s.prefix, s.kind, tenantID, parent)
}

// Get reads a record; a missing one is a serviceerror.NotFound.
func (s *Store[M]) Get(ctx context.Context, tenantID, id string) (M, error) {
	var zero M
	if id == "" {
		return zero, &serviceerror.NotFound{Resource: s.kind, ID: id}
	}
	return s.Got(s.rdb.Get(ctx, s.Key(tenantID, id)), id)
}

// GetIn queues the read of a record in pipeline p, for a caller that reads
// records of several kinds in one round trip; Got decodes its answer.
func (s *Store[M]) GetIn(ctx context.Context, p redis.Pipeliner, tenantID, id string) *redis.StringCmd {
	return p.Get(ctx, s.Key(tenantID, id))
}

// Got decodes the answer to the read of record id (GetIn), as Get does: a
// missing one is a serviceerror.NotFound.
func (s *Store[M]) Got(cmd *redis.StringCmd, id string) (M, error) {
	var zero M
	b, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return zero, &serviceerror.NotFound{Resource: s.kind, ID: id}
	}
	if err != nil {
		return zero, Unavailable(err)
	}
	m := s.newMsg()
	if err := proto.Unmarshal(b, m); err != nil {
		return zero, fmt.Errorf("decode %s %s: %w", s.kind, id, err)
	}
	return m, nil
}

// setIfNewScript stores a value unless its key is taken (SetIfNew).
var setIfNewScript = redis.NewScript(SetIfNewScript)

// SetIfNew stores value at key unless the key is taken, and reports
// whether it stored it. A key that already holds the same bytes counts as
// stored by this call: the call sent again (go-redis resends a command
// whose reply was lost after Redis ran it) finds its own write, and must
// not report the key taken by another (its caller would then skip the
// rest of a create, or undo it).
func SetIfNew(ctx context.Context, rdb redis.Scripter, key string, value []byte) (bool, error) {
	ok, err := setIfNewScript.Run(ctx, rdb, []string{key}, value).Bool()
	return ok, Unavailable(err)
}

// SetIfNewScript is the text of SetIfNew's script (tests that resend it
// match it).
const SetIfNewScript = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 1
end
return 0`

// Create stores a new record and lists it under parents ("" is the tenant's
// list of all records of this kind). It fails with AlreadyExists if the id
// is taken by another record; storing the same record again succeeds (a
// call sent twice).
func (s *Store[M]) Create(ctx context.Context, tenantID, id string, m M, parents ...string) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", s.kind, err)
	}
	ok, err := SetIfNew(ctx, s.rdb, s.Key(tenantID, id), b)
	if err != nil {
		return err
	}
	if !ok {
		return &serviceerror.AlreadyExists{Resource: s.kind, ID: id}
	}
	if len(parents) == 0 {
		parents = []string{""}
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, parent := range parents {
			p.ZAdd(ctx, s.indexKey(tenantID, parent), redis.Z{Member: id})
		}
		return nil
	})
	return Unavailable(err)
}

// Put overwrites an existing record.
func (s *Store[M]) Put(ctx context.Context, tenantID, id string, m M) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", s.kind, err)
	}
	ok, err := s.rdb.SetXX(ctx, s.Key(tenantID, id), b, 0).Result()
	if err != nil {
		return Unavailable(err)
	}
	if !ok {
		return &serviceerror.NotFound{Resource: s.kind, ID: id}
	}
	return nil
}

// Change applies change to a record as it is stored now and stores what
// it returns when it reports a change: a compare-and-set (WATCH), tried
// again when another writer stored the record in between, so a change
// made from an older read never overwrites a newer write. change may run
// more than once. It returns the record as stored afterwards.
func (s *Store[M]) Change(ctx context.Context, tenantID, id string, change func(cur M) (next M, changed bool, err error)) (M, error) {
	var zero M
	key := s.Key(tenantID, id)
	for range 10 {
		var out M
		var own error // the read's or change's error, passed on as it is
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			cur, err := s.Got(tx.Get(ctx, key), id)
			if err != nil {
				own = err
				return err
			}
			next, changed, err := change(cur)
			if err != nil {
				own = err
				return err
			}
			if !changed {
				out = cur
				return nil
			}
			b, err := proto.Marshal(next)
			if err != nil {
				return fmt.Errorf("encode %s: %w", s.kind, err)
			}
			if _, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.SetXX(ctx, key, b, 0)
				return nil
			}); err != nil {
				return err
			}
			out = next
			return nil
		}, key)
		switch {
		case own != nil:
			return zero, own
		case errors.Is(err, redis.TxFailedErr):
			continue
		case err != nil:
			return zero, Unavailable(err)
		}
		return out, nil
	}
	return zero, &serviceerror.Unavailable{Message: "the " + s.kind + " is being changed by other calls; try again"}
}

// Delete removes a record and its index entries under parents.
func (s *Store[M]) Delete(ctx context.Context, tenantID, id string, parents ...string) error {
	if len(parents) == 0 {
		parents = []string{""}
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.Key(tenantID, id))
		for _, parent := range parents {
			p.ZRem(ctx, s.indexKey(tenantID, parent), id)
		}
		return nil
	})
	return Unavailable(err)
}

// List returns a page of the records under parent, newest first, and the
// token of the next page ("" on the last). keep, when not nil, filters
// records (a filtered page may hold fewer than page.Size records).
func (s *Store[M]) List(ctx context.Context, tenantID, parent string, page paging.Page, keep func(M) bool) ([]M, string, error) {
	items, last, err := s.list(ctx, tenantID, parent, page, keep)
	return items, page.Token(last), err
}

// All returns every record under parent, newest first, reading a page at a
// time.
func (s *Store[M]) All(ctx context.Context, tenantID, parent string) ([]M, error) {
	var all []M
	for page := paging.First(s.kind, paging.MaxSize); ; {
		items, last, err := s.list(ctx, tenantID, parent, page, nil)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if last == "" {
			return all, nil
		}
		page = page.Next(last)
	}
}

// list reads one page; last is the cursor of the next page ("" when this
// is the last one).
func (s *Store[M]) list(ctx context.Context, tenantID, parent string, page paging.Page, keep func(M) bool) (items []M, last string, err error) {
	max := "+"
	if page.After != "" {
		max = "(" + page.After
	}
	ids, err := s.rdb.ZRevRangeByLex(ctx, s.indexKey(tenantID, parent), &redis.ZRangeBy{
		Max: max, Min: "-", Count: int64(page.Size) + 1,
	}).Result()
	if err != nil {
		return nil, "", Unavailable(err)
	}
	if len(ids) > page.Size {
		ids = ids[:page.Size]
		last = ids[len(ids)-1]
	}
	items = make([]M, 0, len(ids))
	for _, id := range ids {
		m, err := s.Get(ctx, tenantID, id)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue // deleted between index read and get
		}
		if err != nil {
			return nil, "", err
		}
		if keep == nil || keep(m) {
			items = append(items, m)
		}
	}
	return items, last, nil
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a new id with a kind prefix ("prj_..."): 8 bytes of the
// current time in nanoseconds then 8 random bytes, base32-encoded, so ids
// sort by creation time (newest-first listing relies on it) and never
// collide.
func NewID(kindPrefix string) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	if _, err := rand.Read(b[8:]); err != nil {
		panic("protostore: crypto/rand failed: " + err.Error())
	}
	return kindPrefix + "_" + idEncoding.EncodeToString(b[:])
}
