package toloka

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

func TestCredentialNeverFormatsToken(t *testing.T) {
	t.Parallel()
	for _, token := range []string{oauthToken, apiKeyToken} {
		cred := Credential{Environment: Sandbox, Token: token}
		c, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		acct, err := c.Account(cred)
		if err != nil {
			t.Fatal(err)
		}
		holder := struct {
			Cred Credential
			Acct *Account
			cred Credential
		}{cred, acct, cred}
		var outputs []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
			for _, v := range []any{cred, &cred, acct, *acct, holder.Cred, holder.Acct} {
				outputs = append(outputs, fmt.Sprintf(verb, v))
			}
		}
		outputs = append(outputs, fmt.Sprint(cred), fmt.Sprintln(acct), cred.String(), cred.GoString(), acct.String())
		var logs bytes.Buffer
		for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
			slog.New(h).Info("credential", "cred", cred, "acct", acct, "ptr", &cred)
		}
		outputs = append(outputs, logs.String())
		b, err := json.Marshal(cred)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(b))
		for _, out := range outputs {
			if containsSecret(out) {
				t.Errorf("token leaked: %s", out)
			}
		}
	}
}

// TestTokenNeverInErrorsOrLogs drives failures of every kind with debug
// logging on and searches every error string and log line for the token.
func TestTokenNeverInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	steps := []step{
		tolokaError(http.StatusUnauthorized, CodeAuthenticationError, "Bad token", ""),
		tolokaError(http.StatusBadRequest, CodeValidationError, "bad", `{"reward":{"code":"INVALID","message":"m"}}`),
		reply(http.StatusServiceUnavailable, ``), reply(http.StatusBadGateway, ``), reply(http.StatusGatewayTimeout, ``), reply(http.StatusRequestTimeout, ``),
		tolokaError(http.StatusTooManyRequests, CodeTooManyRequests, "slow", `{"interval":"DAY"}`),
		reply(http.StatusOK, `not json`),
		tolokaError(http.StatusForbidden, CodeAccessDenied, "no", ""),
	}
	for _, token := range []string{oauthToken, apiKeyToken} {
		h := newHarness(t, nil, steps...)
		acct, err := h.client.Account(Credential{Environment: Production, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var errs []error
		_, err = acct.GetProject(ctx, "1")
		errs = append(errs, err)
		_, err = acct.CreatePool(ctx, &Pool{})
		errs = append(errs, err)
		_, err = acct.GetPool(ctx, "2") // four failures
		errs = append(errs, err)
		_, err = acct.SubmitExternal(ctx, &ExternalSubmit{PoolID: "1", UserID: "u", Reward: money.MustParse("1")})
		errs = append(errs, err)
		_, err = acct.GetAssignment(ctx, "a")
		errs = append(errs, err)
		_, err = acct.ClosePool(ctx, "3")
		errs = append(errs, err)
		h.fake.srv.Close()
		_, err = acct.GetOperation(ctx, "op")
		errs = append(errs, err)
		for i, err := range errs {
			if err == nil {
				t.Fatalf("call %d succeeded", i)
			}
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
				if containsSecret(s) {
					t.Errorf("token in error %d: %s", i, s)
				}
			}
		}
		logs := h.logs.String()
		if containsSecret(logs) {
			t.Errorf("token in logs:\n%s", logs)
		}
		if len(logs) == 0 {
			t.Error("no debug logs captured: the check above proves nothing")
		}
	}
}
