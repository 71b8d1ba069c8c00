package money

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		wantErr  bool
	}{
		{in: "10.52", want: "10.52"},
		{in: "10.520", want: "10.520"},
		{in: "0.01", want: "0.01"},
		{in: "007", want: "7"},
		// Zero has no sign: "-0" is malformed (a client that computed a
		// negative zero has a bug worth hearing about), like "+0".
		{in: "-0", wantErr: true},
		{in: "-0.00", wantErr: true},
		{in: "-000", wantErr: true},
		{in: "-0.00000000", wantErr: true},
		{in: "+0", wantErr: true},
		{in: "+0.00", wantErr: true},
		{in: "-", wantErr: true},
		{in: "-.0", wantErr: true},
		{in: "0.00", want: "0.00"},
		{in: "000", want: "0"},
		{in: "-0.01", want: "-0.01"},
		{in: "-00.5", want: "-0.5"},
		{in: "-3.5", want: "-3.5"},
		{in: "0.12345678", want: "0.12345678"},
		{in: "0.123456789", wantErr: true},
		{in: "", wantErr: true},
		{in: "1e3", wantErr: true},
		{in: "1.", wantErr: true},
		{in: ".5", wantErr: true},
		{in: "+1", wantErr: true},
		{in: " 1", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "1,5", wantErr: true},
		{in: "1234567890123", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d, err := Parse(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Parse(%q) = %s, want an error", tc.in, d)
				}
				return
			}
			if err != nil || d.String() != tc.want {
				t.Fatalf("Parse(%q) = %q, %v; want %q", tc.in, d, err, tc.want)
			}
		})
	}
}

func TestParseNegativeZeroIsErrNegativeZero(t *testing.T) {
	for _, in := range []string{"-0", "-0.0", "-00.000"} {
		if _, err := Parse(in); !errors.Is(err, ErrNegativeZero) {
			t.Errorf("Parse(%q) error = %v, want ErrNegativeZero", in, err)
		}
	}
	var d Decimal
	if err := d.UnmarshalJSON([]byte(`"-0"`)); err == nil {
		t.Errorf("UnmarshalJSON(\"-0\") = %s, want an error", d)
	}
}

func TestAddIsExact(t *testing.T) {
	// 0.1 added ten thousand times is exactly 1000 (a float64 sum is not).
	sum := Zero
	tenth := MustParse("0.1")
	for range 10000 {
		sum = sum.Add(tenth)
	}
	if sum.String() != "1000" {
		t.Errorf("sum = %s, want 1000", sum)
	}
	if got := MustParse("10.52").Add(MustParse("0.005")).String(); got != "10.525" {
		t.Errorf("10.52 + 0.005 = %s", got)
	}
	if MustParse("0.01").Cmp(MustParse("0.010")) != 0 || MustParse("-1").Sign() != -1 {
		t.Error("Cmp/Sign wrong")
	}
}

func TestJSONKeepsDigits(t *testing.T) {
	var body struct {
		Reward Decimal `json:"reward"`
	}
	if err := json.Unmarshal([]byte(`{"reward": 10.520}`), &body); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(body)
	if string(out) != `{"reward":10.520}` {
		t.Errorf("round trip = %s, want the same digits", out)
	}
	if err := json.Unmarshal([]byte(`{"reward": "0.05"}`), &body); err != nil || body.Reward.String() != "0.05" {
		t.Errorf("string form: %v %s", err, body.Reward)
	}
	if err := json.Unmarshal([]byte(`{"reward": 1e2}`), &body); err == nil {
		t.Error("exponent accepted")
	}
}
