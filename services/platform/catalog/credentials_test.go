package catalog_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// emulator serves the Toloka emulator with keys (key → account) and
// returns it with a client pointed at it.
func emulator(t *testing.T, keys map[string]string) (*tolokasim.Server, *toloka.Client) {
	t.Helper()
	sim, srv := tolokasim.NewTestServer(tolokasim.Config{APIKeys: keys, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(srv.Close)
	client, err := toloka.New(toloka.Config{SandboxURL: srv.URL + "/api/v1", ProductionURL: srv.URL + "/api/v1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return sim, client
}

func ring(t *testing.T, keys ...[]byte) *secretbox.Box {
	t.Helper()
	b, err := secretbox.NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sandboxCredential(id string) *crowdgatev1.Credential {
	return &crowdgatev1.Credential{CredentialId: id, TenantId: "default", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX}
}

// A key's fingerprint is an HMAC under a key derived from the encryption
// key, not a plain hash: it cannot be checked against guessed keys offline.
// It is stable for one API key and one encryption key, and it is what a
// stored credential carries.
func TestFingerprintIsKeyedByTheEncryptionKey(t *testing.T) {
	r := redistest.New(t)
	encryptionKey := secretbox.NewRandomKey()
	cat := catalog.New(r.Client, r.Prefix, ring(t, encryptionKey), nil, nil, slog.New(slog.DiscardHandler))
	const apiKey = "acme.0123456789abcdef.k3y"

	fp := cat.Fingerprint(apiKey)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(fp) {
		t.Fatalf("fingerprint %q is not 16 hex digits", fp)
	}
	sum := sha256.Sum256([]byte(apiKey))
	if fp == hex.EncodeToString(sum[:])[:16] {
		t.Error("the fingerprint is the key's plain SHA-256 prefix: a weak key can be found offline")
	}
	same := catalog.New(r.Client, r.Prefix, ring(t, append([]byte(nil), encryptionKey...)), nil, nil, nil)
	if same.Fingerprint(apiKey) != fp {
		t.Error("two catalogs with the same encryption key fingerprint one API key differently")
	}
	if cat.Fingerprint(apiKey+"x") == fp {
		t.Error("two API keys have one fingerprint")
	}
	other := catalog.New(r.Client, r.Prefix, ring(t, secretbox.NewRandomKey()), nil, nil, nil)
	if other.Fingerprint(apiKey) == fp {
		t.Error("another encryption key gives the same fingerprint")
	}

	// The catalog computes what it stores, whatever the caller put there.
	cred := sandboxCredential("one")
	cred.KeyFingerprint = hex.EncodeToString(sum[:])[:16]
	if err := cat.CreateCredential(ctx, cred, apiKey); err != nil {
		t.Fatal(err)
	}
	stored, err := cat.Credential(ctx, "default", "one")
	if err != nil || stored.GetKeyFingerprint() != fp {
		t.Errorf("stored fingerprint = %q, %v; want %q", stored.GetKeyFingerprint(), err, fp)
	}
}

// ReplaceAPIKey seals the new key over the old one and updates the
// fingerprint and verify time in one step; the account this replica had
// opened is dropped at once. Another tenant's credential, or one that does
// not exist, is not found.
func TestReplaceAPIKey(t *testing.T) {
	sim, client := emulator(t, map[string]string{"k1.a.b": "acme", "k2.a.b": "acme"})
	r := redistest.New(t)
	cat := catalog.New(r.Client, r.Prefix, ring(t, secretbox.NewRandomKey()), client, nil, slog.New(slog.DiscardHandler))
	if err := cat.CreateCredential(ctx, sandboxCredential("one"), "k1.a.b"); err != nil {
		t.Fatal(err)
	}
	if err := cat.UseCredential(ctx, "default", "one", "prj_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Account(ctx, "default", "one"); err != nil { // cached now
		t.Fatal(err)
	}
	before, _ := r.Client.Get(ctx, r.Prefix+"credential-secret:default:{one}").Bytes()

	verified := time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	got, err := cat.ReplaceAPIKey(ctx, "default", "one", "k2.a.b", verified)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetKeyFingerprint() != cat.Fingerprint("k2.a.b") || !got.GetVerifyTime().AsTime().Equal(verified) {
		t.Errorf("replaced credential = %v, want k2's fingerprint and the verify time", got)
	}
	stored, _ := cat.Credential(ctx, "default", "one")
	if !proto.Equal(stored, got) {
		t.Errorf("stored %v, returned %v", stored, got)
	}
	after, _ := r.Client.Get(ctx, r.Prefix+"credential-secret:default:{one}").Bytes()
	if string(after) == string(before) {
		t.Fatal("the sealed key did not change")
	}

	// The account opened before is forgotten: the next one opens k2. The
	// emulator tells keys of one account apart only by their existence, so
	// k1 is moved to another account: a call with k1 would read as "old".
	if err := sim.AddAPIKey("k1.a.b", "old"); err != nil {
		t.Fatal(err)
	}
	sim.ClearRequests()
	acct, err := cat.Account(ctx, "default", "one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.ListProjects(ctx, toloka.ListOptions{Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if reqs := sim.Requests("/api/v1/projects"); len(reqs) != 1 || reqs[0].Account != "acme" {
		t.Errorf("after the replacement the account called Toloka as %+v, want the new key's account", reqs)
	}

	var nf *serviceerror.NotFound
	if _, err := cat.ReplaceAPIKey(ctx, "globex", "one", "k2.a.b", verified); !errors.As(err, &nf) {
		t.Errorf("another tenant's credential = %v, want NotFound", err)
	}
	if _, err := cat.ReplaceAPIKey(ctx, "default", "nope", "k2.a.b", verified); !errors.As(err, &nf) {
		t.Errorf("an unknown credential = %v, want NotFound", err)
	}
	if n, _ := r.Client.Exists(ctx, r.Prefix+"credential-secret:default:{nope}", r.Prefix+"credential-secret:globex:{one}").Result(); n != 0 {
		t.Error("a refused replacement stored a key")
	}
}

// CredentialProjects are the projects that use a credential.
func TestCredentialProjects(t *testing.T) {
	r := redistest.New(t)
	cat := catalog.New(r.Client, r.Prefix, ring(t, secretbox.NewRandomKey()), nil, nil, nil)
	if err := cat.CreateCredential(ctx, sandboxCredential("one"), "k1.a.b"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"prj_b", "prj_a", "prj_gone"} {
		if err := cat.UseCredential(ctx, "default", "one", id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"prj_a", "prj_b"} {
		if err := cat.CreateProject(ctx, &crowdgatev1.Project{ProjectId: id, TenantId: "default", CredentialId: "one", TolokaProjectId: "7" + id}); err != nil {
			t.Fatal(err)
		}
	}
	prjs, err := cat.CredentialProjects(ctx, "default", "one")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range prjs {
		ids = append(ids, p.GetProjectId())
	}
	if len(ids) != 2 || ids[0] != "prj_a" || ids[1] != "prj_b" {
		t.Errorf("CredentialProjects = %v, want [prj_a prj_b] (a project whose record is gone left out)", ids)
	}
	if prjs, err := cat.CredentialProjects(ctx, "globex", "one"); err != nil || len(prjs) != 0 {
		t.Errorf("another tenant's view = %v, %v; want none", prjs, err)
	}
}

// A credential's create and delete sent twice for one call (their replies
// lost, as in a Redis restart) answer as the first time: the credential is
// stored with its secret, then deleted, without AlreadyExists or NotFound
// for the caller's own write.
func TestACredentialCreatedAndDeletedTwiceAnswersOnce(t *testing.T) {
	r := redistest.New(t)
	create := &redistest.Resend{Script: redistest.ScriptOf(storage.SetIfNewScript)}
	del := &redistest.Resend{Script: redistest.ReadScript(t, "lua/credential_delete.lua")}
	cat := catalog.New(r.HookedClient(t, create, del), r.Prefix, ring(t, secretbox.NewRandomKey()), nil, nil, nil)
	if err := cat.CreateCredential(ctx, sandboxCredential("one"), "k1.a.b"); err != nil || !create.Done() {
		t.Fatalf("CreateCredential sent twice (%v) = %v, want it stored", create.Done(), err)
	}
	if _, err := cat.Credential(ctx, "default", "one"); err != nil {
		t.Fatalf("the credential is not stored: %v", err)
	}
	if err := cat.DeleteCredential(ctx, "default", "one"); err != nil || !del.Done() {
		t.Fatalf("DeleteCredential sent twice (%v) = %v, want it deleted", del.Done(), err)
	}
	var nf *serviceerror.NotFound
	if _, err := cat.Credential(ctx, "default", "one"); !errors.As(err, &nf) {
		t.Errorf("after the delete: %v, want NotFound", err)
	}
	if err := cat.DeleteCredential(ctx, "default", "one"); !errors.As(err, &nf) {
		t.Errorf("a second delete = %v, want NotFound", err)
	}
}

// failWrite fails every command whose first key starts with prefix,
// before it reaches Redis.
type failWrite struct{ prefix string }

func (h failWrite) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h failWrite) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); len(a) > 3 {
			if key, _ := a[3].(string); strings.HasPrefix(key, h.prefix) {
				cmd.SetErr(errors.New("connection reset"))
				return cmd.Err()
			}
		}
		return next(ctx, cmd)
	}
}

func (h failWrite) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A credential whose record could not be stored takes its sealed key back:
// no secret stays in Redis for ever without its credential (it could be
// neither deleted nor re-sealed).
func TestACredentialNotStoredLeavesNoSecret(t *testing.T) {
	r := redistest.New(t)
	// The record's store (a script whose key is the record's) fails.
	hook := failWrite{prefix: r.Prefix + "credential:"}
	cat := catalog.New(r.HookedClient(t, hook), r.Prefix, ring(t, secretbox.NewRandomKey()), nil, nil, nil)
	if err := cat.CreateCredential(ctx, sandboxCredential("one"), "k1.a.b"); err == nil {
		t.Fatal("CreateCredential whose record failed succeeded")
	}
	keys, err := r.Client.Keys(ctx, r.Prefix+"credential*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("keys left by the failed create: %v; want none (the secret was stored first)", keys)
	}
}
