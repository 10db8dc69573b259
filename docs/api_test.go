// Package docs holds Herald's documentation; its tests keep the generated parts current.
package docs

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	routesBegin = "<!-- routes: generated from handlers/api/openapi.json by docs/api_test.go; HERALD_UPDATE_DOCS=1 go test ./docs rewrites it -->"
	routesEnd   = "<!-- routes: end -->"
)

// TestAPIRoutesMatchOpenAPI checks that docs/api.md lists exactly the routes of the OpenAPI
// document the API serves (which handlers/api checks against its router), so the two cannot
// drift. HERALD_UPDATE_DOCS=1 rewrites the list instead.
func TestAPIRoutesMatchOpenAPI(t *testing.T) {
	raw, err := os.ReadFile("../handlers/api/openapi.json")
	require.NoError(t, err)
	want := routeTable(t, raw)

	doc, err := os.ReadFile("api.md")
	require.NoError(t, err)
	before, rest, ok := strings.Cut(string(doc), routesBegin+"\n")
	require.True(t, ok, "api.md has the line %s", routesBegin)
	got, after, ok := strings.Cut(rest, routesEnd)
	require.True(t, ok, "api.md has the line %s", routesEnd)

	if os.Getenv("HERALD_UPDATE_DOCS") != "" {
		require.NoError(t, os.WriteFile("api.md", []byte(before+routesBegin+"\n"+want+routesEnd+after), 0o644))
		return
	}
	assert.Equal(t, want, got, "docs/api.md's route list is stale: run HERALD_UPDATE_DOCS=1 go test ./docs")
}

// routeTable renders one Markdown table per tag: method, path, the role it needs, summary.
func routeTable(t *testing.T, raw []byte) string {
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(raw, &spec))
	type route struct{ method, path, role, summary, tag string }
	var routes []route
	for path, ops := range spec.Paths {
		for method, rawOp := range ops {
			var op struct {
				Summary string   `json:"summary"`
				Role    string   `json:"x-herald-role"`
				Tags    []string `json:"tags"`
			}
			if json.Unmarshal(rawOp, &op) != nil || op.Summary == "" {
				continue // parameters shared by a path's operations
			}
			tag := "other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			role := op.Role
			if role == "" {
				role = "none"
			}
			routes = append(routes, route{strings.ToUpper(method), path, role, op.Summary, tag})
		}
	}
	methodOrder := []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
	slices.SortFunc(routes, func(a, b route) int {
		if c := strings.Compare(a.tag, b.tag); c != 0 {
			return c
		}
		if c := strings.Compare(a.path, b.path); c != 0 {
			return c
		}
		return slices.Index(methodOrder, a.method) - slices.Index(methodOrder, b.method)
	})
	var b strings.Builder
	for i, r := range routes {
		if i == 0 || routes[i-1].tag != r.tag {
			if i > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "### %s\n\n| method | path | role | what |\n|---|---|---|---|\n", r.tag)
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", r.method, r.path, r.role, strings.ReplaceAll(r.summary, "|", `\|`))
	}
	return b.String()
}
