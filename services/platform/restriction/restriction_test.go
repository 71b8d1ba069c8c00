package restriction

import (
	"testing"
	"time"
)

func TestCovers(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	here := Target{CredentialID: "cred_1", ProjectID: "prj_1", PoolID: "pool_1"}
	for _, tc := range []struct {
		name string
		r    Restriction
		want bool
	}{
		{"pool", Restriction{Scope: Pool, Target: Target{PoolID: "pool_1"}}, true},
		{"another pool", Restriction{Scope: Pool, Target: Target{CredentialID: "cred_1", ProjectID: "prj_1", PoolID: "pool_2"}}, false},
		{"project", Restriction{Scope: Project, Target: Target{ProjectID: "prj_1"}}, true},
		{"another project", Restriction{Scope: Project, Target: Target{CredentialID: "cred_1", ProjectID: "prj_2"}}, false},
		{"all projects of the account", Restriction{Scope: AllProjects, Target: Target{CredentialID: "cred_1"}}, true},
		{"all projects of another account", Restriction{Scope: AllProjects, Target: Target{CredentialID: "cred_2"}}, false},
		{"expired", Restriction{Scope: Pool, Target: Target{PoolID: "pool_1"}, Expires: now}, false},
		{"not expired yet", Restriction{Scope: Pool, Target: Target{PoolID: "pool_1"}, Expires: now.Add(time.Millisecond)}, true},
		{"an empty target covers nothing", Restriction{Scope: Pool}, false},
		{"an unknown scope covers nothing", Restriction{Scope: "SYSTEM", Target: here}, false},
	} {
		if got := tc.r.Covers(here, now); got != tc.want {
			t.Errorf("%s: Covers = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	for _, r := range []Restriction{
		{ID: "ban_1", Scope: Pool, Target: Target{CredentialID: "cred_1", ProjectID: "prj_1", PoolID: "pool_1"}},
		{ID: "ban_2", Scope: AllProjects, Target: Target{CredentialID: "cred_1"}, Expires: time.UnixMilli(1767225600123).UTC()},
	} {
		got, err := Decode(r.ID, r.Encode())
		if err != nil || got != r {
			t.Errorf("Decode(Encode(%+v)) = %+v, %v", r, got, err)
		}
	}
	for _, bad := range []string{"", "POOL\tc\tp\tpl", "POOL\tc\tp\tpl\tsoon"} {
		if _, err := Decode("ban_x", bad); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}
