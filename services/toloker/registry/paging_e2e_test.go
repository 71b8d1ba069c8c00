package registry_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// TestPagingListsATolokerWhoBecameActiveBetweenPages: a dashboard pages
// through ListTolokers (page_size=1 here, 50 in real life). Between two
// pages a Toloker who was present all along (listed further down) ends a
// session: that moves them above the cursor. They used to be never
// listed; every Toloker present for the whole paging is listed at least
// once.
func TestPagingListsATolokerWhoBecameActiveBetweenPages(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	var sess []*crowdgatev1.Session
	for _, u := range []string{"toloker-1", "toloker-2", "toloker-3"} {
		sess = append(sess, env.LandSession(ctx, env.StartAssignment(p, u)))
		env.Clock.Advance(time.Minute)
	}
	var seen []string
	page, err := env.Tolokers.ListTolokers(ctx, &crowdgatev1.ListTolokersRequest{PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range page.GetTolokers() {
		seen = append(seen, tk.GetUserId())
	}
	// toloker-1 (not listed yet) finishes between page 1 and page 2.
	env.Clock.Advance(time.Minute)
	if _, err := env.Sessions.EndSession(ctx, &crowdgatev1.EndSessionRequest{SessionId: sess[0].GetSessionId()}); err != nil {
		t.Fatal(err)
	}
	for tok := page.GetNextPageToken(); tok != ""; {
		next, err := env.Tolokers.ListTolokers(ctx, &crowdgatev1.ListTolokersRequest{PageSize: 1, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range next.GetTolokers() {
			seen = append(seen, tk.GetUserId())
		}
		tok = next.GetNextPageToken()
	}
	for _, u := range []string{"toloker-1", "toloker-2", "toloker-3"} {
		if !slices.Contains(seen, u) {
			t.Errorf("paging ListTolokers listed %v: %s, present throughout, was never listed", seen, u)
		}
	}
}

// TestTolokersActiveWhilePagingFollowTheBottomOfTheList: several Tolokers
// become active while a pool's Tolokers are paged, some listed already,
// some not yet, more than a page of them. The walk lists every Toloker:
// down to the least recently active, then those active since the first
// page, least recently active first, across as many pages as they fill; a
// Toloker listed already and active since is listed again, never twice on
// one page.
func TestTolokersActiveWhilePagingFollowTheBottomOfTheList(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	users := make([]string, 7)
	sess := map[string]*crowdgatev1.Session{}
	for i := range users {
		users[i] = fmt.Sprint("toloker-", i)
		sess[users[i]] = env.LandSession(ctx, env.StartAssignment(p, users[i]))
		env.Clock.Advance(time.Minute)
	}
	list := func(tok string) *crowdgatev1.ListTolokersResponse {
		t.Helper()
		resp, err := env.Tolokers.ListTolokers(ctx, &crowdgatev1.ListTolokersRequest{PoolId: p.GetPoolId(), PageSize: 2, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tk := range resp.GetTolokers() {
			if slices.Contains(ids, tk.GetUserId()) {
				t.Errorf("one page lists %s twice: %v", tk.GetUserId(), resp.GetTolokers())
			}
			ids = append(ids, tk.GetUserId())
		}
		return resp
	}
	var seen []string
	page := list("")
	for _, tk := range page.GetTolokers() {
		seen = append(seen, tk.GetUserId())
	}
	if want := []string{"toloker-6", "toloker-5"}; !slices.Equal(seen, want) {
		t.Fatalf("first page %v, want %v", seen, want)
	}
	// toloker-6, listed, and toloker-0 to toloker-2, not yet, end their
	// sessions, in this order.
	for _, u := range []string{"toloker-6", "toloker-2", "toloker-0", "toloker-1"} {
		env.Clock.Advance(time.Second)
		if _, err := env.Sessions.EndSession(ctx, &crowdgatev1.EndSessionRequest{SessionId: sess[u].GetSessionId()}); err != nil {
			t.Fatal(err)
		}
	}
	for tok := page.GetNextPageToken(); tok != ""; {
		next := list(tok)
		for _, tk := range next.GetTolokers() {
			seen = append(seen, tk.GetUserId())
		}
		tok = next.GetNextPageToken()
	}
	want := []string{"toloker-6", "toloker-5", "toloker-4", "toloker-3", "toloker-6", "toloker-2", "toloker-0", "toloker-1"}
	if !slices.Equal(seen, want) {
		t.Errorf("paging listed %v, want %v", seen, want)
	}

}
