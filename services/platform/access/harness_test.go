package access

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

const (
	testAdminKey     = "admin-0123456789abcdef0123456789abcdef"
	testServiceToken = "svc-token-0123456789abcdef0123456789abcdef"
)

// clock is a settable test clock.
type clock = fakeclock.Clock

func newClock() *clock { return fakeclock.New(time.Now()) }

// fixture is an access service in front of a small project service whose
// records live in protostore, tenant-scoped like every real store, served
// over a real gRPC socket.
type fixture struct {
	svc   *Service
	clock *clock
	redis *redistest.Redis
	conn  *grpc.ClientConn
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	r := redistest.New(t)
	clk := newClock()
	cfg := Config{
		Redis: r.Client, Prefix: r.Prefix, Mode: ModeKeys,
		AdminKey:      testAdminKey,
		ServiceTokens: map[string]string{"billing": testServiceToken},
		Now:           clk.Now,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.EnsureDefaultTenant(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn := serve(t, svc, nil)
	return &fixture{svc: svc, clock: clk, redis: r, conn: conn}
}

// serve runs svc's interceptor and services on a gRPC server and returns a
// client connection to it.
func serve(t *testing.T, svc *Service, opts []grpc.ServerOption, dial ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(opts, grpc.ChainUnaryInterceptor(toStatus, svc.Unary))...)
	crowdgatev1.RegisterAccessServiceServer(srv, svc)
	crowdgatev1.RegisterProjectServiceServer(srv, newProjects(svc.rdb, svc.prefix))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	if len(dial) == 0 {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(lis.Addr().String(), dial...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// toStatus is the gateway's errorUnary: domain errors become gRPC status.
func toStatus(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		return nil, serviceerror.ToStatus(err).Err()
	}
	return resp, nil
}

// projects is a minimal ProjectService over protostore: every record is
// read and written in tenant.FromContext(ctx), as the real services do.
type projects struct {
	crowdgatev1.UnimplementedProjectServiceServer
	store *storage.Store[*crowdgatev1.Project]
}

func newProjects(rdb redis.UniversalClient, prefix string) *projects {
	return &projects{store: storage.NewStore(rdb, prefix+"test:", "project", func() *crowdgatev1.Project { return new(crowdgatev1.Project) })}
}

func (p *projects) CreateProject(ctx context.Context, req *crowdgatev1.CreateProjectRequest) (*crowdgatev1.CreateProjectResponse, error) {
	pr := &crowdgatev1.Project{ProjectId: storage.NewID("prj"), TenantId: tenant.FromContext(ctx), PublicName: req.GetProject().GetPublicName()}
	if err := p.store.Create(ctx, pr.TenantId, pr.ProjectId, pr); err != nil {
		return nil, err
	}
	return &crowdgatev1.CreateProjectResponse{Project: pr}, nil
}

func (p *projects) GetProject(ctx context.Context, req *crowdgatev1.GetProjectRequest) (*crowdgatev1.GetProjectResponse, error) {
	pr, err := p.store.Get(ctx, tenant.FromContext(ctx), req.GetProjectId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetProjectResponse{Project: pr}, nil
}

func (p *projects) ArchiveProject(ctx context.Context, req *crowdgatev1.ArchiveProjectRequest) (*crowdgatev1.ArchiveProjectResponse, error) {
	tid := tenant.FromContext(ctx)
	pr, err := p.store.Get(ctx, tid, req.GetProjectId())
	if err != nil {
		return nil, err
	}
	pr.PublicName += " (archived)"
	if err := p.store.Put(ctx, tid, pr.ProjectId, pr); err != nil {
		return nil, err
	}
	return &crowdgatev1.ArchiveProjectResponse{Project: pr}, nil
}

// bearer returns ctx sending "authorization: Bearer <secret>" and, when
// given, the tenant header.
func bearer(secret string, tenantID ...string) context.Context {
	kv := []string{}
	if secret != "" {
		kv = append(kv, "authorization", "Bearer "+secret)
	}
	for _, t := range tenantID {
		kv = append(kv, TenantHeader, t)
	}
	return metadata.NewOutgoingContext(context.Background(), metadata.Pairs(kv...))
}

func (f *fixture) access() crowdgatev1.AccessServiceClient {
	return crowdgatev1.NewAccessServiceClient(f.conn)
}

func (f *fixture) projects() crowdgatev1.ProjectServiceClient {
	return crowdgatev1.NewProjectServiceClient(f.conn)
}

// newTenant creates a tenant with the admin key.
func (f *fixture) newTenant(t *testing.T, name string) string {
	t.Helper()
	resp, err := f.access().CreateTenant(bearer(testAdminKey), &crowdgatev1.CreateTenantRequest{DisplayName: name})
	if err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	return resp.GetTenant().GetTenantId()
}

// newKey creates a key with the admin key and returns its id and secret.
func (f *fixture) newKey(t *testing.T, tenantID string, scope crowdgatev1.ApiKeyScope) (string, string) {
	t.Helper()
	resp, err := f.access().CreateApiKey(bearer(testAdminKey), &crowdgatev1.CreateApiKeyRequest{TenantId: tenantID, DisplayName: "key " + scope.String(), Scope: scope})
	if err != nil {
		t.Fatalf("CreateApiKey: %v", err)
	}
	return resp.GetApiKey().GetApiKeyId(), resp.GetSecret()
}

func code(err error) codes.Code { return status.Code(err) }

func appendMD(ctx context.Context, k, v string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, k, v)
}

// incoming returns a server-side context carrying metadata kv.
func incoming(kv ...string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
}

type grpcInfo = grpc.UnaryServerInfo

// redisValue renders everything a Redis key holds, whatever its type.
func redisValue(t *testing.T, c redis.UniversalClient, key string) string {
	t.Helper()
	ctx := context.Background()
	var out []string
	switch typ := c.Type(ctx, key).Val(); typ {
	case "string":
		out = append(out, c.Get(ctx, key).Val())
	case "hash":
		for k, v := range c.HGetAll(ctx, key).Val() {
			out = append(out, k, v)
		}
	case "zset":
		out = append(out, c.ZRange(ctx, key, 0, -1).Val()...)
	case "stream":
		for _, m := range c.XRange(ctx, key, "-", "+").Val() {
			for k, v := range m.Values {
				out = append(out, k, fmt.Sprint(v))
			}
		}
	default:
		t.Fatalf("key %s has unexpected type %q", key, typ)
	}
	return strings.Join(out, "\n")
}
