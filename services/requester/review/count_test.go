package review

import (
	"context"
	"fmt"
	"testing"

	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// fakeLister serves SUBMITTED assignments of one pool in pages.
type fakeLister struct {
	ids   []string
	calls []toloka.ListOptions
}

func (f *fakeLister) ListAssignments(_ context.Context, opts toloka.ListOptions) (*toloka.List[toloka.Assignment], error) {
	f.calls = append(f.calls, opts)
	var page toloka.List[toloka.Assignment]
	for _, id := range f.ids {
		if id <= opts.IDGt {
			continue
		}
		if len(page.Items) == opts.Limit {
			page.HasMore = true
			break
		}
		page.Items = append(page.Items, toloka.Assignment{ID: id, Status: toloka.AssignmentSubmitted})
	}
	return &page, nil
}

func TestCountSubmittedCountsEveryPage(t *testing.T) {
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("0000000007--%024x", i+1)
		}
		return out
	}
	for _, tc := range []struct {
		n        int
		want     int
		complete bool
		pages    int
	}{
		{0, 0, true, 1},
		{1, 1, true, 1},
		{2500, 2500, true, 3},
		{MaxCountedAwaitingReview + 5, MaxCountedAwaitingReview, false, 10},
	} {
		l := &fakeLister{ids: ids(tc.n)}
		got, complete, err := countSubmitted(context.Background(), l, "7")
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want || complete != tc.complete {
			t.Errorf("%d submitted: counted %d (complete %v), want %d (complete %v)", tc.n, got, complete, tc.want, tc.complete)
		}
		if len(l.calls) != tc.pages {
			t.Errorf("%d submitted: %d list calls, want %d", tc.n, len(l.calls), tc.pages)
		}
		if c := l.calls[0]; c.Status != "SUBMITTED" || c.Filters.Get("pool_id") != "7" || c.Sort != "id" {
			t.Errorf("list options = %+v, want SUBMITTED assignments of pool 7 by id", c)
		}
	}
}
