package access

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// The audit log.
//
// Every state-changing call (every method that is not Get* or List*,
// including calls refused for the caller's scope) is one AuditEvent,
// appended to two Redis streams: its tenant's ("<prefix>access:audit:t:<tenant>",
// at most AuditMaxEvents entries) and the administrators' view of every
// tenant ("<prefix>access:audit:all", ten times as many). Each append first
// trims entries older than AuditRetention (XTRIM MINID), then adds the event
// with an exact MAXLEN, and sets the stream to expire AuditRetention after
// its last write, so a quiet tenant's log goes away too. Reads never return
// an event older than AuditRetention, even before it is trimmed.
//
// Stream entry ids are the page tokens; AuditEvent's event_id is
// Crowdgate's own id.

// allTenantsFactor is how many more events the all-tenants view keeps.
const allTenantsFactor = 10

// auditWriteTimeout bounds an audit append, which runs even when the
// caller has gone away: the call it records has already happened.
const auditWriteTimeout = 2 * time.Second

func (s *Service) auditKey(tenantID string) string { return s.prefix + "audit:t:" + tenantID }

func (s *Service) auditAllKey() string { return s.prefix + "audit:all" }

// resourceFields are the request (then response) fields that name the
// resource a call acts on, most specific first.
var resourceFields = []protoreflect.Name{
	"submission_id", "session_id", "assignment_id", "pool_id", "project_id",
	"credential_id", "api_key_id", "tenant_id",
}

// maxResourceLen bounds the resource recorded (request fields are not
// validated yet when a call is refused).
const maxResourceLen = 128

// audit records one state-changing call. A failure to write is logged and
// counted, never returned: the call has already happened.
func (s *Service) audit(ctx context.Context, p *Principal, method string, req, resp any, callErr error) {
	msgs := messages(req, resp)
	ev := &crowdgatev1.AuditEvent{
		EventId:  storage.NewID("evt"),
		TenantId: p.Tenant,
		Actor:    p.Actor,
		Method:   method,
		Result:   CodeName(serviceerror.ToStatus(callErr).Code()),
		Time:     timestamp(s.now()),
	}
	for _, f := range resourceFields {
		if v := findString(msgs, f); v != "" {
			ev.Resource = truncate(v, maxResourceLen)
			break
		}
	}
	// A cross-tenant caller's management of a tenant or its keys
	// (CreateTenant, CreateApiKey, RevokeApiKey) belongs to that tenant's
	// log. A tenant's key only ever writes to its own tenant's log, even
	// when it names another tenant's id (and is refused).
	if adminMethods[method] && p.CrossTenant() {
		if t := findString(msgs, "tenant_id"); validTenantID(t) {
			ev.TenantId = t
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditWriteTimeout)
	defer cancel()
	if err := s.appendAudit(wctx, ev); err != nil {
		s.auditFailure.Inc()
		s.log.Error("could not write an audit event", "method", method, "actor", ev.Actor, "tenant", ev.TenantId, "err", err)
	}
}

// appendAudit writes ev to its tenant's stream and the all-tenants stream.
// Entry ids carry Crowdgate's clock ("<ms>-*"), so retention and the event
// times agree; when another replica with a clock ahead already wrote a
// later id, Redis picks the next id itself.
func (s *Service) appendAudit(ctx context.Context, ev *crowdgatev1.AuditEvent) error {
	b, err := proto.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	minID := s.minAuditID()
	id := strconv.FormatInt(ev.GetTime().AsTime().UnixMilli(), 10) + "-*"
	streams := []struct {
		key string
		max int64
	}{{s.auditKey(ev.TenantId), s.auditMax}, {s.auditAllKey(), allTenantsFactor * s.auditMax}}
	// Every state-changing call writes one, so concurrent calls' entries
	// share pipelines.
	adds := make([]*redis.StringCmd, len(streams))
	trim := make([]bool, len(streams))
	for i, st := range streams {
		trim[i] = s.trimDue(st.key, ev.GetTime().AsTime())
	}
	err = s.audits.Do(ctx, func(ctx context.Context, p redis.Pipeliner) {
		for i, st := range streams {
			if trim[i] {
				p.XTrimMinID(ctx, st.key, minID)
			}
			adds[i] = p.XAdd(ctx, &redis.XAddArgs{Stream: st.key, MaxLen: st.max, ID: id, Values: []any{"e", b}})
			if trim[i] {
				p.PExpire(ctx, st.key, s.auditAge)
			}
		}
	})
	if err != nil {
		return storage.Unavailable(err)
	}
	for i, st := range streams {
		if err := adds[i].Err(); err != nil && strings.Contains(err.Error(), "equal or smaller") {
			err = s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: st.key, MaxLen: st.max, ID: "*", Values: []any{"e", b}}).Err()
			if err != nil {
				return storage.Unavailable(err)
			}
		} else if err != nil {
			return storage.Unavailable(err)
		}
	}
	return nil
}

// auditTrimEvery is how often a replica trims an audit stream to the
// retention and renews its TTL: every call writes an entry (its length
// bound, MaxLen, is applied by each), but trimming by age and the TTL need
// not follow each one. A stream then keeps entries past the retention for
// at most this long, and expires at most this long before the retention
// after its last entry (ListAuditEvents never shows entries past the
// retention).
const auditTrimEvery = time.Second

// trimDue reports whether the audit stream key is due to be trimmed and
// its TTL renewed at now, and if so counts it done.
func (s *Service) trimDue(key string, now time.Time) bool {
	s.trimMu.Lock()
	defer s.trimMu.Unlock()
	if last, ok := s.trimmed[key]; ok && !now.Before(last) && now.Sub(last) < auditTrimEvery {
		return false
	}
	if s.trimmed == nil || len(s.trimmed) >= 10_000 {
		s.trimmed = map[string]time.Time{}
	}
	s.trimmed[key] = now
	return true
}

// minAuditID is the oldest stream id still within retention.
func (s *Service) minAuditID() string {
	ms := s.now().Add(-s.auditAge).UnixMilli()
	if ms < 0 {
		ms = 0
	}
	return strconv.FormatInt(ms, 10) + "-0"
}

// listAudit pages through one tenant's events (or every tenant's), newest
// first.
func (s *Service) listAudit(ctx context.Context, tenantID string, all bool, pageSize int32, pageToken string) ([]*crowdgatev1.AuditEvent, string, error) {
	key, list := s.auditKey(tenantID), "audit/"+tenantID
	if all {
		key, list = s.auditAllKey(), "audit"
	}
	page, err := paging.Parse(list, pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	end := "+"
	if page.After != "" {
		if !validStreamID(page.After) {
			return nil, "", serviceerror.NewInvalidArgument("page_token", "is not a next_page_token of this list")
		}
		end = "(" + page.After
	}
	msgs, err := s.rdb.XRevRangeN(ctx, key, end, s.minAuditID(), int64(page.Size)+1).Result()
	if err != nil {
		return nil, "", storage.Unavailable(err)
	}
	next := ""
	if len(msgs) > page.Size {
		msgs = msgs[:page.Size]
		next = page.Token(msgs[len(msgs)-1].ID)
	}
	out := make([]*crowdgatev1.AuditEvent, 0, len(msgs))
	for _, m := range msgs {
		ev := new(crowdgatev1.AuditEvent)
		if err := proto.Unmarshal([]byte(str(m.Values["e"])), ev); err != nil {
			return nil, "", fmt.Errorf("decode audit event %s: %w", m.ID, err)
		}
		out = append(out, ev)
	}
	return out, next, nil
}

// validStreamID accepts "<ms>-<seq>".
func validStreamID(s string) bool {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

// CodeName is the canonical name of a gRPC code, as the audit log records
// it: "OK", "NOT_FOUND", "FAILED_PRECONDITION".
func CodeName(c codes.Code) string {
	if n, ok := rpccode.Code_name[int32(c)]; ok {
		return n
	}
	return "UNKNOWN"
}

// messages returns the proto messages among vs (a nil response is skipped).
func messages(vs ...any) []protoreflect.Message {
	var out []protoreflect.Message
	for _, v := range vs {
		if m, ok := v.(proto.Message); ok {
			if r := m.ProtoReflect(); r.IsValid() {
				out = append(out, r)
			}
		}
	}
	return out
}

// findString returns the first non-empty string field called name in msgs,
// at the top level or one message deep (UpdatePool's pool.pool_id,
// CreateProject's response project.project_id).
func findString(msgs []protoreflect.Message, name protoreflect.Name) string {
	for _, m := range msgs {
		if v := lookupString(m, name, 1); v != "" {
			return v
		}
	}
	return ""
}

func lookupString(m protoreflect.Message, name protoreflect.Name, depth int) string {
	fields := m.Descriptor().Fields()
	if fd := fields.ByName(name); fd != nil && fd.Kind() == protoreflect.StringKind && fd.Cardinality() != protoreflect.Repeated {
		if v := m.Get(fd).String(); v != "" {
			return v
		}
	}
	if depth == 0 {
		return ""
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && m.Has(fd) {
			if v := lookupString(m.Get(fd).Message(), name, depth-1); v != "" {
				return v
			}
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
