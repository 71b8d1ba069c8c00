package storage

import (
	"context"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

func TestScanKeysFindsEachMatchingKeyOnce(t *testing.T) {
	ctx := context.Background()
	r := redistest.New(t)
	prefix := r.Prefix + "a*b:"
	want := []string{prefix + "1", prefix + "2", prefix + "3"}
	for _, k := range append(want, r.Prefix+"axb:4", r.Prefix+"other") {
		if err := r.Client.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ScanKeys(ctx, r.Client, GlobEscape(prefix)+"*")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ScanKeys (-want +got):\n%s", diff)
	}
}
