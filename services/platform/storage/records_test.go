package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

func newStore(t *testing.T) *Store[*crowdgatev1.Tenant] {
	r := redistest.New(t)
	return NewStore(r.Client, r.Prefix, "tenant", func() *crowdgatev1.Tenant { return new(crowdgatev1.Tenant) })
}

func TestCreateGetPutDeleteAndTenantIsolation(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	id := NewID("ten")
	if err := s.Create(ctx, "acme", id, &crowdgatev1.Tenant{TenantId: id, DisplayName: "Acme"}); err != nil {
		t.Fatal(err)
	}
	var ae *serviceerror.AlreadyExists
	if err := s.Create(ctx, "acme", id, &crowdgatev1.Tenant{}); !errors.As(err, &ae) {
		t.Errorf("second Create = %v, want AlreadyExists", err)
	}
	got, err := s.Get(ctx, "acme", id)
	if err != nil || got.GetDisplayName() != "Acme" {
		t.Fatalf("Get = %v, %v", got, err)
	}
	var nf *serviceerror.NotFound
	if _, err := s.Get(ctx, "globex", id); !errors.As(err, &nf) {
		t.Errorf("another tenant's Get = %v, want NotFound", err)
	}
	if err := s.Put(ctx, "globex", id, got); !errors.As(err, &nf) {
		t.Errorf("another tenant's Put = %v, want NotFound", err)
	}
	got.DisplayName = "Acme Inc"
	if err := s.Put(ctx, "acme", id, got); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Get(ctx, "acme", id); again.GetDisplayName() != "Acme Inc" {
		t.Errorf("after Put: %q", again.GetDisplayName())
	}
	if err := s.Delete(ctx, "acme", id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "acme", id); !errors.As(err, &nf) {
		t.Errorf("after Delete: %v, want NotFound", err)
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var ids []string
	for i := range 7 {
		id := NewID("ten")
		ids = append(ids, id)
		if err := s.Create(ctx, "acme", id, &crowdgatev1.Tenant{TenantId: id, DisplayName: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Create(ctx, "globex", NewID("ten"), &crowdgatev1.Tenant{DisplayName: "other"})

	var seen []string
	token := ""
	for pages := 0; ; pages++ {
		page, err := paging.Parse("tenants", 3, token)
		if err != nil {
			t.Fatal(err)
		}
		items, next, err := s.List(ctx, "acme", "", page, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			seen = append(seen, it.GetTenantId())
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		token = next
	}
	if len(seen) != len(ids) {
		t.Fatalf("listed %d records, want %d (only the tenant's own)", len(seen), len(ids))
	}
	for i, id := range seen {
		if want := ids[len(ids)-1-i]; id != want {
			t.Errorf("item %d = %s, want %s (newest first)", i, id, want)
		}
	}
	all, err := s.All(ctx, "acme", "")
	if err != nil || len(all) != len(ids) {
		t.Errorf("All = %d records, %v; want %d", len(all), err, len(ids))
	}
}

// A Create sent twice for one call (its reply lost, as in a Redis restart)
// stores the record and lists it, rather than answering AlreadyExists for
// the id the caller just made and leaving it unlisted (a pool that
// landings could not find, say).
func TestACreateSentTwiceIsStoredAndListed(t *testing.T) {
	ctx := context.Background()
	r := redistest.New(t)
	resend := &redistest.Resend{Script: redistest.ScriptOf(SetIfNewScript), Once: true}
	s := NewStore(r.HookedClient(t, resend), r.Prefix, "tenant", func() *crowdgatev1.Tenant { return new(crowdgatev1.Tenant) })
	id := NewID("ten")
	if err := s.Create(ctx, "acme", id, &crowdgatev1.Tenant{TenantId: id, DisplayName: "Acme"}); err != nil || !resend.Done() {
		t.Fatalf("Create sent twice (%v) = %v, want it stored", resend.Done(), err)
	}
	page, err := paging.Parse("tenants", 10, "")
	if err != nil {
		t.Fatal(err)
	}
	items, _, err := s.List(ctx, "acme", "", page, nil)
	if err != nil || len(items) != 1 || items[0].GetTenantId() != id {
		t.Errorf("listed %v, %v; want the record", items, err)
	}
	var ae *serviceerror.AlreadyExists
	if err := s.Create(ctx, "acme", id, &crowdgatev1.Tenant{TenantId: id, DisplayName: "Other"}); !errors.As(err, &ae) {
		t.Errorf("Create of another record with the id = %v, want AlreadyExists", err)
	}
}

// TestChangeAppliesToTheRecordAsStoredNow: another writer stores the
// record while a change is computed from an older read; the change is
// computed again from the newer record, so both are kept. A missing record
// is NotFound, and the change function's own errors come back as they are.
func TestChangeAppliesToTheRecordAsStoredNow(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	id := NewID("ten")
	if err := s.Create(ctx, "acme", id, &crowdgatev1.Tenant{TenantId: id, DisplayName: "Acme"}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	got, err := s.Change(ctx, "acme", id, func(cur *crowdgatev1.Tenant) (*crowdgatev1.Tenant, bool, error) {
		calls++
		if calls == 1 {
			// Another writer, between this read and the write.
			if err := s.Put(ctx, "acme", id, &crowdgatev1.Tenant{TenantId: id, DisplayName: "Acme Corp"}); err != nil {
				t.Fatal(err)
			}
		}
		next := proto.CloneOf(cur)
		next.DisplayName += " (changed)"
		return next, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := s.Get(ctx, "acme", id)
	if calls != 2 || got.GetDisplayName() != "Acme Corp (changed)" || stored.GetDisplayName() != "Acme Corp (changed)" {
		t.Errorf("%d calls, returned %q, stored %q; want 2 calls and %q", calls, got.GetDisplayName(), stored.GetDisplayName(), "Acme Corp (changed)")
	}
	var nf *serviceerror.NotFound
	if _, err := s.Change(ctx, "acme", "missing", func(cur *crowdgatev1.Tenant) (*crowdgatev1.Tenant, bool, error) { return cur, true, nil }); !errors.As(err, &nf) {
		t.Errorf("Change of a missing record = %v, want NotFound", err)
	}
	own := serviceerror.NewFailedPrecondition("no")
	if _, err := s.Change(ctx, "acme", id, func(*crowdgatev1.Tenant) (*crowdgatev1.Tenant, bool, error) { return nil, false, own }); err != own {
		t.Errorf("Change = %v, want the change function's own error", err)
	}
}
