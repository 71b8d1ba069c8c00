// Package ban is the requester's bans of Tolokers: Toloka user
// restrictions (PUT and DELETE /user-restrictions) made through Crowdgate,
// in all of a credential's projects (ALL_PROJECTS: Toloka's restriction is
// per requester account, which Crowdgate knows as a credential), a project
// or a pool, until an expiry or for ever, with a private comment; stored
// with who made and lifted them (the access principal's actor), and
// audited like every write.
//
// A ban acts in Crowdgate as well as in Toloka:
//
//   - it is recorded on the Toloker in the registry (Tolokers.Restrict)
//     before anything else looks at their sessions, so a landing that
//     starts a session concurrently sees it (the landing reads the bans in
//     the script that lists the session, before listing it or after; this
//     reads the sessions after writing the ban: one of the two sees the
//     other; a session listed but not stored yet is skipped here, and the
//     landing, reading the bans again once it is stored, ends it);
//   - it ends the Toloker's live sessions in its scope (REVOKED, which also
//     bars pool+user submits to those pools), found through the registry's
//     per-Toloker list of live sessions;
//   - their landings in its scope get the "You cannot take this task" page
//     (session.BannedError): without asking Toloka when the landing's
//     assignment has a session (it names the Toloker) or was refused for the
//     ban before; the first landing of an assignment Crowdgate has never
//     seen must ask Toloka who it belongs to (the user_id comes from Toloka
//     only), and is refused as soon as Toloka answers.
//
// A ban of the same Toloker, scope and target replaces the one in force and
// keeps its id (Toloka's PUT is an upsert too), so a CreateBan retried after
// a failure converges on one ban. DeleteBan lifts it in Toloka, then in the
// registry, and keeps the ban, DELETED, with who lifted it.
//
// Redis layout (P is the configured prefix):
//
//	P ban:<tenant>:{<ban id>}                          the ban (storage.Store)
//	P idx:ban:<tenant>                                 the tenant's bans, newest first
//	P ban-key:{<tenant>}:<user>\t<scope>\t<target id>  the ban in force there -> its id
package ban

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/restriction"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// MaxCommentLength bounds a ban's private comment, in characters (Toloka's
// limit for a user restriction's private_comment).
const MaxCommentLength = 499

// Tolokers is the Toloker registry, where Crowdgate enforces bans
// (*registry.Registry).
type Tolokers interface {
	// Restrict records a ban of the Toloker (replacing one with its id).
	Restrict(ctx context.Context, tenantID, userID string, r restriction.Restriction) error
	// Lift removes a ban of the Toloker.
	Lift(ctx context.Context, tenantID, userID, banID string) error
	// LiveSessions returns the Toloker's live sessions.
	LiveSessions(ctx context.Context, tenantID, userID string) ([]restriction.LiveSession, error)
}

// Sessions ends sessions (*session.Service).
type Sessions interface {
	End(ctx context.Context, tenantID, sessionID string, reason crowdgatev1.EndReason) (*crowdgatev1.Session, error)
}

var (
	//go:embed lua/key_release.lua
	keyReleaseLua    string
	keyReleaseScript = redis.NewScript(keyReleaseLua)
)

// Service implements crowdgatev1.BanServiceServer.
type Service struct {
	crowdgatev1.UnimplementedBanServiceServer
	catalog  *catalog.Catalog
	tolokers Tolokers
	sessions Sessions
	rdb      redis.UniversalClient
	prefix   string
	bans     *storage.Store[*crowdgatev1.Ban]
	now      func() time.Time
	log      *slog.Logger
}

// New returns the ban service over the catalog, the Toloker registry and
// the sessions, storing bans in rdb under prefix. cat, tolokers, sessions
// and rdb are required.
func New(cat *catalog.Catalog, tolokers Tolokers, sessions Sessions, rdb redis.UniversalClient, prefix string, now func() time.Time, log *slog.Logger) (*Service, error) {
	if cat == nil || tolokers == nil || sessions == nil || rdb == nil {
		return nil, errors.New("ban: the catalog, the Tolokers, the sessions and Redis are required")
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{
		catalog: cat, tolokers: tolokers, sessions: sessions, rdb: rdb, prefix: prefix, now: now, log: log,
		bans: storage.NewStore(rdb, prefix, "ban", func() *crowdgatev1.Ban { return new(crowdgatev1.Ban) }),
	}, nil
}

// keyOf is the key naming the ban in force of a Toloker at a target.
func (s *Service) keyOf(tenantID, userID string, scope restriction.Scope, t restriction.Target) string {
	id := t.PoolID
	switch scope {
	case restriction.Project:
		id = t.ProjectID
	case restriction.AllProjects:
		id = t.CredentialID
	}
	return s.prefix + "ban-key:{" + tenantID + "}:" + userID + "\t" + string(scope) + "\t" + id
}

// actor names the caller in the ban, as the audit log does.
func actor(ctx context.Context) string {
	if p, ok := access.PrincipalFromContext(ctx); ok && p.Actor != "" {
		return p.Actor
	}
	return "unknown"
}

// checkUserID refuses an empty user_id (when required) or one that could
// not be Toloka's.
func checkUserID(v string, required bool) error {
	if v == "" {
		if required {
			return serviceerror.NewInvalidArgument("user_id", "is required")
		}
		return nil
	}
	if strings.IndexFunc(v, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
	}) >= 0 {
		return serviceerror.NewInvalidArgument("user_id", "%q is not a Toloka user_id", v)
	}
	return nil
}

// target is a validated ban request's target, resolved in the catalog.
type target struct {
	scope   restriction.Scope
	ids     restriction.Target
	account *toloka.Account
	// tolokaProjectID and tolokaPoolID are Toloka's ids of the target.
	tolokaProjectID, tolokaPoolID string
}

// validate checks a CreateBanRequest before any I/O.
func (s *Service) validate(req *crowdgatev1.CreateBanRequest) (restriction.Scope, error) {
	if err := checkUserID(req.GetUserId(), true); err != nil {
		return "", err
	}
	scope, ok := restriction.FromProto(req.GetScope())
	if !ok {
		return "", serviceerror.NewInvalidArgument("scope", "is required: RESTRICTION_SCOPE_ALL_PROJECTS, _PROJECT or _POOL")
	}
	want := map[restriction.Scope]string{restriction.AllProjects: "credential_id", restriction.Project: "project_id", restriction.Pool: "pool_id"}
	for _, f := range []struct{ field, v string }{
		{"credential_id", req.GetCredentialId()}, {"project_id", req.GetProjectId()}, {"pool_id", req.GetPoolId()},
	} {
		switch {
		case f.field == want[scope] && f.v == "":
			return "", serviceerror.NewInvalidArgument(f.field, "is required with scope %s", req.GetScope())
		case f.field != want[scope] && f.v != "":
			return "", serviceerror.NewInvalidArgument(f.field, "must be empty with scope %s (it takes %s)", req.GetScope(), want[scope])
		}
	}
	if n := utf8.RuneCountInString(req.GetPrivateComment()); n > MaxCommentLength {
		return "", serviceerror.NewInvalidArgument("private_comment", "must be at most %d characters (Toloka's limit), got %d", MaxCommentLength, n)
	}
	if w := req.GetWillExpire(); w != nil {
		if err := w.CheckValid(); err != nil {
			return "", serviceerror.NewInvalidArgument("will_expire", "%v", err)
		}
		if !w.AsTime().After(s.now()) {
			return "", serviceerror.NewInvalidArgument("will_expire", "must be in the future (leave it unset for a ban for ever)")
		}
	}
	return scope, nil
}

// resolve finds the request's target within the caller's tenant (NotFound
// for another tenant's).
func (s *Service) resolve(ctx context.Context, tenantID string, scope restriction.Scope, req *crowdgatev1.CreateBanRequest) (*target, error) {
	t := &target{scope: scope}
	switch scope {
	case restriction.Pool:
		r, err := s.catalog.ResolvePool(ctx, tenantID, req.GetPoolId())
		if err != nil {
			return nil, err
		}
		if r.Pool.GetTolokaPoolId() == "" {
			return nil, serviceerror.NewFailedPrecondition("pool %s has no Toloka pool yet", req.GetPoolId())
		}
		t.account, t.tolokaPoolID = r.Account, r.Pool.GetTolokaPoolId()
		t.ids = restriction.Target{CredentialID: r.Project.GetCredentialId(), ProjectID: r.Project.GetProjectId(), PoolID: r.Pool.GetPoolId()}
	case restriction.Project:
		r, err := s.catalog.ResolveProject(ctx, tenantID, req.GetProjectId())
		if err != nil {
			return nil, err
		}
		if r.Project.GetTolokaProjectId() == "" {
			return nil, serviceerror.NewFailedPrecondition("project %s has no Toloka project yet", req.GetProjectId())
		}
		t.account, t.tolokaProjectID = r.Account, r.Project.GetTolokaProjectId()
		t.ids = restriction.Target{CredentialID: r.Project.GetCredentialId(), ProjectID: r.Project.GetProjectId()}
	case restriction.AllProjects:
		if _, err := s.catalog.Credential(ctx, tenantID, req.GetCredentialId()); err != nil {
			return nil, err
		}
		account, err := s.catalog.Account(ctx, tenantID, req.GetCredentialId())
		if err != nil {
			return nil, err
		}
		t.account = account
		t.ids = restriction.Target{CredentialID: req.GetCredentialId()}
	}
	return t, nil
}

// CreateBan restricts a Toloker in Toloka and in Crowdgate, and ends their
// live sessions in its scope.
func (s *Service) CreateBan(ctx context.Context, req *crowdgatev1.CreateBanRequest) (*crowdgatev1.CreateBanResponse, error) {
	scope, err := s.validate(req)
	if err != nil {
		return nil, err
	}
	tenantID, userID := tenant.FromContext(ctx), req.GetUserId()
	t, err := s.resolve(ctx, tenantID, scope, req)
	if err != nil {
		return nil, err
	}
	var expires time.Time
	tr := toloka.UserRestriction{Scope: string(scope), UserID: userID, ProjectID: t.tolokaProjectID, PoolID: t.tolokaPoolID, PrivateComment: req.GetPrivateComment()}
	if w := req.GetWillExpire(); w != nil {
		expires = w.AsTime().UTC()
		tr.WillExpire = toloka.Ptr(toloka.NewTime(expires))
	}
	// Toloka first: its PUT is an upsert, so a retry after a later failure
	// makes no second restriction.
	made, err := t.account.SetUserRestriction(ctx, tr)
	if err != nil {
		return nil, err
	}

	// The ban in force at this place keeps its id; otherwise a new one.
	key := s.keyOf(tenantID, userID, scope, t.ids)
	id := storage.NewID("ban")
	claimed, err := s.rdb.SetNX(ctx, key, id, 0).Result()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	existing := false
	if !claimed {
		if id, err = s.rdb.Get(ctx, key).Result(); err != nil {
			return nil, storage.Unavailable(err)
		}
		existing = true
	}
	now := s.now()
	b := &crowdgatev1.Ban{
		BanId: id, TenantId: tenantID, UserId: userID, Scope: req.GetScope(),
		CredentialId: t.ids.CredentialID, ProjectId: t.ids.ProjectID, PoolId: t.ids.PoolID,
		PrivateComment: req.GetPrivateComment(), WillExpire: req.GetWillExpire(),
		TolokaRestrictionId: made.ID, State: crowdgatev1.BanState_BAN_STATE_ACTIVE,
		CreatedBy: actor(ctx), CreateTime: timestamppb.New(now),
	}
	if existing {
		err = s.bans.Put(ctx, tenantID, id, b)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) { // the key was claimed, the record not yet written
			err = s.bans.Create(ctx, tenantID, id, b)
		}
	} else {
		err = s.bans.Create(ctx, tenantID, id, b)
	}
	if err != nil {
		var ae *serviceerror.AlreadyExists
		if !errors.As(err, &ae) {
			return nil, err
		}
		if err := s.bans.Put(ctx, tenantID, id, b); err != nil {
			return nil, err
		}
	}

	// Enforced in Crowdgate before the sessions are looked at.
	if err := s.tolokers.Restrict(ctx, tenantID, userID, restriction.Restriction{ID: id, Scope: scope, Target: t.ids, Expires: expires}); err != nil {
		return nil, err
	}
	ended, err := s.endSessions(ctx, tenantID, userID, restriction.Restriction{ID: id, Scope: scope, Target: t.ids, Expires: expires})
	if err != nil {
		return nil, err
	}
	if ended > 0 {
		b.SessionsEnded = int32(ended)
		if err := s.bans.Put(ctx, tenantID, id, b); err != nil {
			return nil, err
		}
	}
	s.log.InfoContext(ctx, "Toloker banned", "tenant_id", tenantID, "ban_id", id, "scope", string(scope),
		"pool_id", t.ids.PoolID, "project_id", t.ids.ProjectID, "credential_id", t.ids.CredentialID, "sessions_ended", ended)
	return &crowdgatev1.CreateBanResponse{Ban: s.view(b)}, nil
}

// endSessions ends the Toloker's live sessions that r covers (REVOKED) and
// returns how many it ended.
func (s *Service) endSessions(ctx context.Context, tenantID, userID string, r restriction.Restriction) (int, error) {
	live, err := s.tolokers.LiveSessions(ctx, tenantID, userID)
	if err != nil {
		return 0, err
	}
	now, ended := s.now(), 0
	for _, l := range live {
		route, err := s.catalog.Route(ctx, tenantID, l.PoolID)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue // the pool is gone
		}
		if err != nil {
			return ended, err
		}
		if !r.Covers(restriction.Target{CredentialID: route.CredentialID, ProjectID: route.ProjectID, PoolID: l.PoolID}, now) {
			continue
		}
		sess, err := s.sessions.End(ctx, tenantID, l.SessionID, crowdgatev1.EndReason_END_REASON_REVOKED)
		if errors.As(err, &nf) {
			continue // expired meanwhile
		}
		if err != nil {
			return ended, err
		}
		if sess.GetEndReason() == crowdgatev1.EndReason_END_REASON_REVOKED {
			ended++
		}
	}
	return ended, nil
}

// view presents a ban as of now: an ACTIVE one past will_expire is EXPIRED.
func (s *Service) view(b *crowdgatev1.Ban) *crowdgatev1.Ban {
	if b.GetState() == crowdgatev1.BanState_BAN_STATE_ACTIVE && b.GetWillExpire() != nil && !s.now().Before(b.GetWillExpire().AsTime()) {
		b = proto.CloneOf(b)
		b.State = crowdgatev1.BanState_BAN_STATE_EXPIRED
	}
	return b
}

// get reads one of the caller's bans.
func (s *Service) get(ctx context.Context, banID string) (*crowdgatev1.Ban, error) {
	if banID == "" {
		return nil, serviceerror.NewInvalidArgument("ban_id", "is required")
	}
	return s.bans.Get(ctx, tenant.FromContext(ctx), banID)
}

// GetBan returns one of the caller's bans.
func (s *Service) GetBan(ctx context.Context, req *crowdgatev1.GetBanRequest) (*crowdgatev1.GetBanResponse, error) {
	b, err := s.get(ctx, req.GetBanId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetBanResponse{Ban: s.view(b)}, nil
}

// ListBans lists the caller's bans, newest first, filtered.
func (s *Service) ListBans(ctx context.Context, req *crowdgatev1.ListBansRequest) (*crowdgatev1.ListBansResponse, error) {
	if err := checkUserID(req.GetUserId(), false); err != nil {
		return nil, err
	}
	if _, ok := crowdgatev1.RestrictionScope_name[int32(req.GetScope())]; !ok {
		return nil, serviceerror.NewInvalidArgument("scope", "unknown scope %d", req.GetScope())
	}
	if _, ok := crowdgatev1.BanState_name[int32(req.GetState())]; !ok {
		return nil, serviceerror.NewInvalidArgument("state", "unknown state %d", req.GetState())
	}
	page, err := paging.Parse("bans", req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	tenantID := tenant.FromContext(ctx)
	// A filter naming another tenant's record is NOT_FOUND, like a Get.
	if id := req.GetCredentialId(); id != "" {
		if _, err := s.catalog.Credential(ctx, tenantID, id); err != nil {
			return nil, err
		}
	}
	if id := req.GetProjectId(); id != "" {
		if _, err := s.catalog.Project(ctx, tenantID, id); err != nil {
			return nil, err
		}
	}
	if id := req.GetPoolId(); id != "" {
		if _, err := s.catalog.Pool(ctx, tenantID, id); err != nil {
			return nil, err
		}
	}
	keep := func(b *crowdgatev1.Ban) bool {
		v := s.view(b)
		return (req.GetUserId() == "" || b.GetUserId() == req.GetUserId()) &&
			(req.GetScope() == crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_UNSPECIFIED || b.GetScope() == req.GetScope()) &&
			(req.GetCredentialId() == "" || b.GetCredentialId() == req.GetCredentialId()) &&
			(req.GetProjectId() == "" || b.GetProjectId() == req.GetProjectId()) &&
			(req.GetPoolId() == "" || b.GetPoolId() == req.GetPoolId()) &&
			(req.GetState() == crowdgatev1.BanState_BAN_STATE_UNSPECIFIED || v.GetState() == req.GetState())
	}
	bans, next, err := s.bans.List(ctx, tenantID, "", page, keep)
	if err != nil {
		return nil, err
	}
	for i, b := range bans {
		bans[i] = s.view(b)
	}
	return &crowdgatev1.ListBansResponse{Bans: bans, NextPageToken: next}, nil
}

// DeleteBan lifts a ban in Toloka and in Crowdgate, and keeps it DELETED.
func (s *Service) DeleteBan(ctx context.Context, req *crowdgatev1.DeleteBanRequest) (*crowdgatev1.DeleteBanResponse, error) {
	b, err := s.get(ctx, req.GetBanId())
	if err != nil {
		return nil, err
	}
	if b.GetState() == crowdgatev1.BanState_BAN_STATE_DELETED {
		return &crowdgatev1.DeleteBanResponse{Ban: b}, nil
	}
	tenantID := b.GetTenantId()
	if id := b.GetTolokaRestrictionId(); id != "" {
		account, err := s.catalog.Account(ctx, tenantID, b.GetCredentialId())
		if err != nil {
			return nil, err
		}
		// Gone in Toloka already (expired, or lifted there): lifted.
		var nf *serviceerror.NotFound
		if err := account.DeleteUserRestriction(ctx, id); err != nil && !errors.As(err, &nf) {
			return nil, err
		}
	}
	if err := s.tolokers.Lift(ctx, tenantID, b.GetUserId(), b.GetBanId()); err != nil {
		return nil, err
	}
	scope, _ := restriction.FromProto(b.GetScope())
	key := s.keyOf(tenantID, b.GetUserId(), scope, restriction.Target{CredentialID: b.GetCredentialId(), ProjectID: b.GetProjectId(), PoolID: b.GetPoolId()})
	if err := keyReleaseScript.Run(ctx, s.rdb, []string{key}, b.GetBanId()).Err(); err != nil {
		return nil, storage.Unavailable(err)
	}
	b.State, b.DeletedBy, b.DeleteTime = crowdgatev1.BanState_BAN_STATE_DELETED, actor(ctx), timestamppb.New(s.now())
	if err := s.bans.Put(ctx, tenantID, b.GetBanId(), b); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "Toloker ban lifted", "tenant_id", tenantID, "ban_id", b.GetBanId())
	return &crowdgatev1.DeleteBanResponse{Ban: b}, nil
}
