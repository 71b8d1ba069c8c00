package registry_test

import (
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// TestPagingEndsWhileTolokersStayActive: two Tolokers, each active
// again right after being listed (a busy pool). Paging down always ended
// (the cursor only falls); the walk up follows every new activity, so the
// paging never ends and lists a Toloker many times, while the proto/doc
// says "one may be listed twice".
func TestPagingEndsWhileTolokersStayActive(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	p := env.OpenPool(ctx, key)
	live := map[string]*crowdgatev1.Session{}
	for _, u := range []string{"toloker-a", "toloker-b"} {
		live[u] = env.LandSession(ctx, env.StartAssignment(p, u))
		env.Clock.Advance(time.Minute)
	}
	count := map[string]int{}
	tok, pages := "", 0
	for pages = 1; pages <= 12; pages++ {
		resp, err := env.Tolokers.ListTolokers(ctx, &crowdgatev1.ListTolokersRequest{PageSize: 1, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range resp.GetTolokers() {
			count[tk.GetUserId()]++
			// the Toloker just listed lands again
			env.Clock.Advance(time.Minute)
			u := tk.GetUserId()
			// lands in another pool of the tenant (tenant-wide activity)
			live[u] = env.LandSession(ctx, env.StartAssignment(env.OpenPool(ctx, key), u))
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	for u, n := range count {
		if n > 2 {
			t.Errorf("paging listed %s %d times, the proto says at most twice", u, n)
		}
	}
	if tok != "" {
		t.Errorf("paging 2 Tolokers with page_size 1 had not ended after %d pages", pages-1)
	}
}
