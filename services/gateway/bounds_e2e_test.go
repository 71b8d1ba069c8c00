package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
)

// TestOversizedAndImpossibleRequestsAreRefusedBeforeToloka sends, through
// the real gateway over gRPC and REST, the requests a security review found
// accepted: a 100,000-character pool name, a 500 KB Toloka API key, a
// reward of "-0", a submit started in year 9999, and oversized lists. Each
// is INVALID_ARGUMENT naming the field (a BadRequest detail over both
// protocols), and the Toloka emulator receives no request at all.
func TestOversizedAndImpossibleRequestsAreRefusedBeforeToloka(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	pool := env.OpenPool(ctx, key)
	cred := env.MustCredential(ctx, key)
	aid := env.StartAssignment(pool, "toloker-1")
	sess, err := env.Sessions.StartSession(ctx, &crowdgatev1.StartSessionRequest{AssignmentId: aid})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	sessionID := sess.GetSession().GetSessionId()
	year9999 := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

	poolWith := func(mutate func(*crowdgatev1.Pool)) *crowdgatev1.Pool {
		p := gatewaytest.ValidPool(pool.GetProjectId(), env.Now())
		mutate(p)
		return p
	}
	projectWith := func(mutate func(*crowdgatev1.Project)) *crowdgatev1.Project {
		p := gatewaytest.FullProject(cred)
		mutate(p)
		return p
	}
	countries := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "RU"
		}
		return out
	}

	for _, tc := range []struct {
		name  string
		call  func(context.Context) error
		rest  [2]string // REST route and body, when the case is also sent over REST
		field string
	}{
		{
			name: "pool.private_name of 100,000 characters",
			call: func(ctx context.Context) error {
				_, err := env.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: poolWith(func(p *crowdgatev1.Pool) {
					p.PrivateName = strings.Repeat("x", 100000)
				})})
				return err
			},
			rest:  [2]string{"/v1/pools", restJSON(t, poolWith(func(p *crowdgatev1.Pool) { p.PrivateName = strings.Repeat("ы", 100000) }))},
			field: "pool.private_name",
		},
		{
			name: "a 500 KB api_key",
			call: func(ctx context.Context) error {
				_, err := env.Credentials.CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{
					DisplayName: "big", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: strings.Repeat("k", 500<<10),
				})
				return err
			},
			rest:  [2]string{"/v1/credentials", `{"display_name": "big", "environment": "ENVIRONMENT_SANDBOX", "api_key": "` + strings.Repeat("k", 500<<10) + `"}`},
			field: "api_key",
		},
		{
			name: "251 countries",
			call: func(ctx context.Context) error {
				_, err := env.Projects.CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: projectWith(func(p *crowdgatev1.Project) {
					p.TolokerRequirements.Countries = countries(251)
				})})
				return err
			},
			rest:  [2]string{"/v1/projects", restJSON(t, projectWith(func(p *crowdgatev1.Project) { p.TolokerRequirements.Countries = countries(1000) }))},
			field: "project.toloker_requirements.countries[250]",
		},
		{
			name: "an oversized country",
			call: func(ctx context.Context) error {
				_, err := env.Projects.CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: projectWith(func(p *crowdgatev1.Project) {
					p.TolokerRequirements.Countries = append(countries(3), strings.Repeat("R", 100000))
				})})
				return err
			},
			field: "project.toloker_requirements.countries[3]",
		},
		{
			name: "reward -0",
			call: func(ctx context.Context) error {
				_, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sessionID, Reward: "-0"})
				return err
			},
			rest:  [2]string{"/v1/submissions", `{"session_id": "` + sessionID + `", "reward": "-0.00"}`},
			field: "reward",
		},
		{
			name: "bonus_price_min -0",
			call: func(ctx context.Context) error {
				_, err := env.Projects.CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: projectWith(func(p *crowdgatev1.Project) { p.BonusPriceMin = "-0" })})
				return err
			},
			field: "project.bonus_price_min",
		},
		{
			name: "start_time in year 9999",
			call: func(ctx context.Context) error {
				_, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sessionID, Reward: "0.01", StartTime: timestamppb.New(year9999)})
				return err
			},
			rest:  [2]string{"/v1/submissions", `{"session_id": "` + sessionID + `", "reward": "0.01", "start_time": "9999-01-01T00:00:00Z"}`},
			field: "start_time",
		},
		{
			name: "end_time before Toloka",
			call: func(ctx context.Context) error {
				_, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sessionID, Reward: "0.01", EndTime: timestamppb.New(time.Unix(0, 0))})
				return err
			},
			field: "end_time",
		},
		{
			name: "will_expire in year 9999",
			call: func(ctx context.Context) error {
				_, err := env.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: poolWith(func(p *crowdgatev1.Pool) { p.WillExpire = timestamppb.New(year9999) })})
				return err
			},
			rest:  [2]string{"/v1/pools", restJSON(t, poolWith(func(p *crowdgatev1.Pool) { p.WillExpire = timestamppb.New(env.Now().AddDate(6, 0, 0)) }))},
			field: "pool.will_expire",
		},
		{
			name: "create_time_from in year 1",
			call: func(ctx context.Context) error {
				_, err := env.Submissions.ListSubmissions(ctx, &crowdgatev1.ListSubmissionsRequest{PoolId: pool.GetPoolId(), CreateTimeFrom: timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))})
				return err
			},
			field: "create_time_from",
		},
		{
			name: "a reject comment of 2049 characters",
			call: func(ctx context.Context) error {
				_, err := env.Reviews.RejectAssignment(ctx, &crowdgatev1.RejectAssignmentRequest{AssignmentId: aid, PublicComment: strings.Repeat("ж", 2049)})
				return err
			},
			field: "public_comment",
		},
		{
			name: "a pool id of 1 KiB",
			call: func(ctx context.Context) error {
				_, err := env.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: strings.Repeat("p", 1024)})
				return err
			},
			field: "pool_id",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env.Sim.ClearRequests()
			gatewaytest.WantField(t, tc.call(ctx), tc.field)
			if route, body := tc.rest[0], tc.rest[1]; route != "" {
				code, resp := env.REST(http.MethodPost, route, body)
				if code != http.StatusBadRequest || restField(resp) != tc.field {
					t.Errorf("POST %s: %d naming %q (%.300v), want 400 naming %s", route, code, restField(resp), resp, tc.field)
				}
			}
			if reqs := env.Sim.Requests(""); len(reqs) != 0 {
				t.Errorf("Toloka received %d requests, want none: first %s %s", len(reqs), reqs[0].Method, reqs[0].Path)
			}
		})
	}

	// The same requests within bounds go through.
	if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sessionID, Reward: "0", StartTime: timestamppb.New(env.Now().Add(-time.Minute)), EndTime: timestamppb.New(env.Now())}); err != nil {
		t.Errorf("a valid submit: %v", err)
	}
	if _, err := env.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: poolWith(func(p *crowdgatev1.Pool) { p.PrivateName = strings.Repeat("ы", 256) })}); err != nil {
		t.Errorf("a pool named with 256 characters: %v", err)
	}
}

// TestUnknownFieldsAreDroppedBeforeTheHandler: a gRPC client may send
// fields this build does not know; they are ignored, and not stored with
// the record the request creates.
func TestUnknownFieldsAreDroppedBeforeTheHandler(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	cred := env.MustCredential(ctx, key)
	p := gatewaytest.MinimalProject(cred)
	// Field 999 is unknown to Project: 100 KB of it.
	junk := append([]byte{0xba, 0x3e}, appendLen(nil, 100<<10)...) // tag 999, wire type 2
	junk = append(junk, make([]byte, 100<<10)...)
	p.ProtoReflect().SetUnknown(junk)
	var resp crowdgatev1.CreateProjectResponse
	if err := env.Conn.Invoke(ctx, "/crowdgate.v1.ProjectService/CreateProject", &crowdgatev1.CreateProjectRequest{Project: p}, &resp, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("CreateProject with unknown fields: %v", err)
	}
	got, err := env.Projects.GetProject(ctx, &crowdgatev1.GetProjectRequest{ProjectId: resp.GetProject().GetProjectId()})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.GetProject().ProtoReflect().GetUnknown()); n != 0 || proto.Size(got) > 10<<10 {
		t.Errorf("the stored project kept %d bytes of unknown fields (%d bytes in all)", n, proto.Size(got))
	}
}

// appendLen appends v as a protobuf varint.
func appendLen(b []byte, v int) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// restJSON is m as REST JSON (proto field names).
func restJSON(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// restField is the field a REST error's BadRequest detail names, or "".
func restField(body map[string]any) string {
	details, _ := body["details"].([]any)
	for _, d := range details {
		dm, _ := d.(map[string]any)
		violations, _ := dm["field_violations"].([]any)
		for _, v := range violations {
			vm, _ := v.(map[string]any)
			if f, ok := vm["field"].(string); ok {
				return f
			}
		}
	}
	return ""
}
