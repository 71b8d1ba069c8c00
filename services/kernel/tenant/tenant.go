// Package tenant carries the tenant (a requester organisation) a call acts
// for. Every stored resource belongs to one tenant, and every store reads
// and writes inside the tenant taken from the call's context.
//
// Until callers authenticate, every call acts for Default; authentication
// sets the tenant in the context and changes no data layout.
package tenant

import "context"

// Default is the tenant of every call while only one tenant exists.
const Default = "default"

type ctxKey struct{}

// WithID returns ctx acting for tenant id.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the tenant ctx acts for (Default when none was set).
func FromContext(ctx context.Context) string {
	if id, ok := ctx.Value(ctxKey{}).(string); ok && id != "" {
		return id
	}
	return Default
}
