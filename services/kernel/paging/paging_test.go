package paging

import (
	"errors"
	"testing"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

func TestTokensRoundTripWithinTheirList(t *testing.T) {
	first, err := Parse("pools/prj_1", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if first.Size != DefaultSize || first.After != "" {
		t.Fatalf("first page = %+v, want size %d from the start", first, DefaultSize)
	}
	tok := first.Token("pool_0042")
	next, err := Parse("pools/prj_1", 10, tok)
	if err != nil {
		t.Fatalf("Parse(own token): %v", err)
	}
	if next.After != "pool_0042" || next.Size != 10 {
		t.Errorf("next page = %+v, want after pool_0042, size 10", next)
	}
	if first.Token("") != "" {
		t.Error("the last page's token must be empty")
	}
}

func TestBadPageRequestsNameTheirField(t *testing.T) {
	valid := First("credentials", 10).Token("cred_1")
	for _, tc := range []struct {
		name  string
		list  string
		size  int32
		token string
		field string
	}{
		{"negative size", "credentials", -1, "", "page_size"},
		{"size over the maximum", "credentials", MaxSize + 1, "", "page_size"},
		{"garbage token", "credentials", 0, "zzz", "page_token"},
		{"not base64", "credentials", 0, "!!!!", "page_token"},
		{"token of another list", "pools/prj_1", 0, valid, "page_token"},
		{"token cut short", "credentials", 0, valid[:len(valid)-2], "page_token"},
		{"token with a byte changed", "credentials", 0, valid[:len(valid)-1] + string(valid[len(valid)-1]^1), "page_token"},
		{"huge token", "credentials", 0, string(make([]byte, 4096)), "page_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.list, tc.size, tc.token)
			var ia *serviceerror.InvalidArgument
			if !errors.As(err, &ia) || ia.Field != tc.field {
				t.Errorf("Parse = %v, want INVALID_ARGUMENT on %s", err, tc.field)
			}
		})
	}
}
