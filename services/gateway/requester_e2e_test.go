package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestRequesterFlowThroughTheGateway drives the requester flow through the
// gateway's own ports, wired as in production, against the emulator:
// credential, project, pool, open, close, archive over REST, reads over
// gRPC, and no API key in any response or log line.
func TestRequesterFlowThroughTheGateway(t *testing.T) {
	const apiKey = "gw.s3cr3t-requester-key.v1"
	sim, simSrv := tolokasim.NewTestServer(tolokasim.Config{APIKeys: map[string]string{apiKey: "acme"}, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(simSrv.Close)

	r := redistest.New(t)
	cfg, err := Load([]string{
		"-http-addr=127.0.0.1:0", "-grpc-addr=127.0.0.1:0",
		"-public-url=https://gate.example.com/",
		"-toloka-sandbox-url=" + simSrv.URL + "/api/v1",
		"-toloka-production-url=" + simSrv.URL + "/api/v1",
		"-redis-url=" + r.URL,
		"-redis-prefix=" + r.Prefix,
		"-log-level=debug",
	}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	g, _ := startLoggingGateway(t, cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	base := "http://" + g.HTTPAddr()
	ctx := context.Background()

	var seen bytes.Buffer
	call := func(method, path, body string, wantCode int) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		seen.Write(b)
		if resp.StatusCode != wantCode {
			t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, b, wantCode)
		}
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return out
	}

	call("POST", "/v1/credentials", `{"display_name": "typo", "environment": "ENVIRONMENT_SANDBOX", "api_key": "gw.wrong-key.v1"}`, http.StatusBadRequest)
	cred := call("POST", "/v1/credentials", `{"display_name": "Acme", "environment": "ENVIRONMENT_SANDBOX", "api_key": "`+apiKey+`"}`, http.StatusOK)["credential"].(map[string]any)
	prj := call("POST", "/v1/projects", `{"credential_id": "`+cred["credential_id"].(string)+`", "public_name": "Signs",
		"public_description": "Boxes", "platform_url": "https://label.example.com/start", "partner_name": "Acme",
		"partner_url": "https://label.example.com", "toloker_requirements": {"languages": ["EN"]}}`, http.StatusOK)["project"].(map[string]any)
	if prj["landing_url"] != "https://gate.example.com/start" {
		t.Errorf("landing_url = %v, want CROWDGATE_PUBLIC_URL + /start", prj["landing_url"])
	}
	posts := sim.Requests("/api/v1/projects")
	var sent map[string]any
	if err := json.Unmarshal(posts[len(posts)-1].Body, &sent); err != nil {
		t.Fatal(err)
	}
	if sent["assignments_issuing_type"] != "EXTERNAL" ||
		sent["assignments_issuing_view_config"].(map[string]any)["redirect_url"] != "https://gate.example.com/start" {
		t.Errorf("project sent to Toloka = %v", sent)
	}

	pool := call("POST", "/v1/pools", `{"project_id": "`+prj["project_id"].(string)+`", "private_name": "p1",
		"will_expire": "`+time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339)+`", "reward_per_assignment": "0.05",
		"assignment_max_duration_seconds": "600", "defaults": {"default_overlap_for_new_task_suites": 1}}`, http.StatusOK)["pool"].(map[string]any)
	poolID := pool["pool_id"].(string)
	call("POST", "/v1/pools", `{"project_id": "`+prj["project_id"].(string)+`", "private_name": "p1",
		"will_expire": "2020-01-01T00:00:00Z", "reward_per_assignment": "0.05",
		"assignment_max_duration_seconds": "600", "defaults": {"default_overlap_for_new_task_suites": 1}}`, http.StatusBadRequest)
	if got := call("POST", "/v1/pools/"+poolID+"/open", `{}`, http.StatusOK)["pool"].(map[string]any)["status"]; got != "POOL_STATUS_OPEN" {
		t.Errorf("open: status %v", got)
	}
	// An open pool is changed as Toloka does it: stopped for the update
	// (close-for-update), saved, opened again.
	patched := call("PATCH", "/v1/pools/"+poolID, `{"reward_per_assignment": "0.06"}`, http.StatusOK)["pool"].(map[string]any)
	if patched["status"] != "POOL_STATUS_OPEN" || patched["last_close_reason"] != "CLOSE_REASON_FOR_UPDATE" || patched["reward_per_assignment"] != "0.06" {
		t.Errorf("PATCH of an open pool = %v, want it open again, last closed FOR_UPDATE, with the new reward", patched)
	}

	conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pools := crowdgatev1.NewPoolServiceClient(conn)
	got, err := pools.GetPool(ctx, &crowdgatev1.GetPoolRequest{PoolId: poolID})
	if err != nil || got.GetPool().GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_OPEN {
		t.Fatalf("gRPC GetPool = %v, %v", got, err)
	}
	updated, err := pools.UpdatePool(ctx, &crowdgatev1.UpdatePoolRequest{
		Pool: &crowdgatev1.Pool{PoolId: poolID, RewardPerAssignment: "0.07"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"reward_per_assignment"}},
	})
	if err != nil || updated.GetPool().GetRewardPerAssignment() != "0.07" || updated.GetPool().GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_OPEN {
		t.Errorf("gRPC UpdatePool of an open pool: %v, %v; want it updated and open again", updated, err)
	}
	_, err = crowdgatev1.NewReviewServiceClient(conn).GetAssignment(ctx, &crowdgatev1.GetAssignmentRequest{AssignmentId: "0000000fff--000000000000000000000001"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetAssignment of an unknown pool: %v, want NOT_FOUND", err)
	}

	archived := call("POST", "/v1/projects/"+prj["project_id"].(string)+"/archive", `{}`, http.StatusOK)["project"].(map[string]any)
	if archived["status"] != "PROJECT_STATUS_ARCHIVED" {
		t.Errorf("archive: %v", archived)
	}
	call("DELETE", "/v1/credentials/"+cred["credential_id"].(string), "", http.StatusOK)

	for name, text := range map[string]string{"a response": seen.String(), "a log line": logs.String()} {
		if strings.Contains(text, apiKey) || strings.Contains(text, "gw.wrong-key.v1") {
			t.Errorf("an API key appears in %s", name)
		}
	}
	if !strings.Contains(logs.String(), "pool created") {
		t.Error("no log line from the requester flow was captured: the key check above saw nothing")
	}
}
