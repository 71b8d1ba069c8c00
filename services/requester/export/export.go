// Package export streams a pool's records (submissions, live sessions,
// Tolokers) out of Crowdgate in full: the ExportService's server streams,
// which the gateway also serves over REST as JSON Lines or CSV (Encoder).
//
// Invariants:
//
//   - Constant memory. Each stream reads its index a batch at a time (a
//     few hundred records: submission.ExportBatch, session.ExportBatch,
//     registry.ExportBatch) and sends each row before reading the next
//     batch; Send blocks while the caller does not read (gRPC flow
//     control), so nothing accumulates whatever the pool's size.
//   - Resumable. Every row carries a cursor; a stream started with it
//     sends exactly the rows after that row. A cursor is opaque: the
//     position in the pool's index (a submission id, or a score and a
//     member), checksummed with the kind of export and the pool
//     (services/kernel/paging), so a cursor of another pool or export, or
//     one cut short, is INVALID_ARGUMENT naming cursor, never a silent
//     restart.
//   - The list RPCs' rules. Every RPC reads as the caller's tenant
//     (tenant.FromContext), and a pool the tenant does not have is
//     NOT_FOUND (the catalog's lookup, as ListSubmissions and ListTolokers
//     do) before anything is read; the methods' names start with Export,
//     which the access policy counts as reads (scope READ).
//   - Exact money. Rows are the API's own messages, whose amounts are
//     decimal strings as stored; the encodings never turn them into numbers.
//
// Orders: submissions oldest first (their ids begin with their creation
// time, so new ones come after any cursor); live sessions by expiry;
// Tolokers by their last activity in the pool, least recent first (one
// active during the export moves to the end, so may come twice, the later
// row newer; none present throughout is missed). Ended sessions have no
// index by pool (their records expire with the session), so only live
// sessions are exported.
package export

import (
	"context"
	"strings"
	"unicode"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
)

// Pools finds a tenant's pool: NOT_FOUND for one it does not have.
type Pools interface {
	Pool(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error)
}

// Walker walks one index of a tenant's pool after a raw cursor, calling
// emit with each row and its raw cursor (submission.Service.Export,
// session.Service.ExportLive, registry.Service.Export).
type Walker[T any] func(ctx context.Context, tenantID, poolID, after string, emit func(row T, cursor string) error) error

// Service is the ExportService.
type Service struct {
	crowdgatev1.UnimplementedExportServiceServer
	pools       Pools
	submissions Walker[*crowdgatev1.Submission]
	sessions    Walker[*crowdgatev1.Session]
	tolokers    Walker[*crowdgatev1.Toloker]
}

// NewService builds the ExportService over the catalog's pools and the
// three walkers.
func NewService(pools Pools, submissions Walker[*crowdgatev1.Submission], sessions Walker[*crowdgatev1.Session], tolokers Walker[*crowdgatev1.Toloker]) *Service {
	return &Service{pools: pools, submissions: submissions, sessions: sessions, tolokers: tolokers}
}

// ExportSubmissions streams a pool's submissions, oldest first.
func (s *Service) ExportSubmissions(req *crowdgatev1.ExportSubmissionsRequest, stream crowdgatev1.ExportService_ExportSubmissionsServer) error {
	return run(s, stream.Context(), "submissions", req.GetPoolId(), req.GetCursor(), s.submissions,
		func(row *crowdgatev1.Submission, cursor string) error {
			return stream.Send(&crowdgatev1.ExportSubmissionsResponse{Submission: row, Cursor: cursor})
		})
}

// ExportSessions streams a pool's live sessions, the soonest to expire first.
func (s *Service) ExportSessions(req *crowdgatev1.ExportSessionsRequest, stream crowdgatev1.ExportService_ExportSessionsServer) error {
	return run(s, stream.Context(), "sessions", req.GetPoolId(), req.GetCursor(), s.sessions,
		func(row *crowdgatev1.Session, cursor string) error {
			return stream.Send(&crowdgatev1.ExportSessionsResponse{Session: row, Cursor: cursor})
		})
}

// ExportTolokers streams the pool's Tolokers, the least recently active first.
func (s *Service) ExportTolokers(req *crowdgatev1.ExportTolokersRequest, stream crowdgatev1.ExportService_ExportTolokersServer) error {
	return run(s, stream.Context(), "tolokers", req.GetPoolId(), req.GetCursor(), s.tolokers,
		func(row *crowdgatev1.Toloker, cursor string) error {
			return stream.Send(&crowdgatev1.ExportTolokersResponse{Toloker: row, Cursor: cursor})
		})
}

// run checks the request and the pool, then walks with the raw cursor the
// request's cursor holds, sending each row with its cursor made opaque.
func run[T any](s *Service, ctx context.Context, kind, poolID, cursor string, walk Walker[T], send func(T, string) error) error {
	if err := checkPoolID(poolID); err != nil {
		return err
	}
	list := "export/" + kind + "/" + poolID
	after := ""
	if cursor != "" {
		p, err := paging.Parse(list, 0, cursor)
		if err != nil {
			return serviceerror.NewInvalidArgument("cursor", "is not a cursor of this export: pass back a row's cursor unchanged")
		}
		after = p.After
	}
	tenantID := tenant.FromContext(ctx)
	if _, err := s.pools.Pool(ctx, tenantID, poolID); err != nil {
		return err
	}
	page := paging.First(list, 1)
	return walk(ctx, tenantID, poolID, after, func(row T, raw string) error {
		return send(row, page.Token(raw))
	})
}

// maxIDLength bounds pool ids (as the submission service does).
const maxIDLength = 128

// checkPoolID refuses an empty pool id, and ids no Crowdgate pool has.
func checkPoolID(v string) error {
	if v == "" {
		return serviceerror.NewInvalidArgument("pool_id", "is required")
	}
	if len(v) > maxIDLength {
		return serviceerror.NewInvalidArgument("pool_id", "must be at most %d characters", maxIDLength)
	}
	if strings.ContainsAny(v, ":{}/") || strings.IndexFunc(v, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
	}) >= 0 {
		return serviceerror.NewInvalidArgument("pool_id", "%q is not a valid id", v)
	}
	return nil
}
