package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
	"herald/handlers/api"
	"herald/schema/schematest"
)

// routeTable walks the real router: "METHOD /v1/path/{param}" for every route.
func routeTable(t *testing.T) []string {
	db := schematest.New(t)
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	a, err := api.New(api.Config{}, s, events.DefaultRegistry(), zerolog.Nop())
	require.NoError(t, err)
	r := mux.NewRouter()
	a.Register(r)
	var out []string
	require.NoError(t, r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, err := route.GetMethods()
		if err != nil {
			return nil // the /v1 subrouter itself
		}
		for _, m := range methods {
			out = append(out, m+" "+path)
		}
		return nil
	}))
	sort.Strings(out)
	return out
}

type openAPIDoc struct {
	Paths map[string]map[string]struct {
		Role string `json:"x-herald-role"`
	} `json:"paths"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	raw, err := os.ReadFile("openapi.json")
	require.NoError(t, err)
	var doc openAPIDoc
	require.NoError(t, json.Unmarshal(raw, &doc))
	return doc
}

// TestOpenAPIDocumentsEveryRoute fails when a route exists that the document lacks, or the
// document describes a route that does not exist.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	routes := routeTable(t)
	var documented []string
	for path, ops := range loadOpenAPI(t).Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	sort.Strings(documented)
	assert.Equal(t, routes, documented)
	assert.Greater(t, len(routes), 30)
}

// TestEveryRouteIsAuthorized is generated from the route table: every route but the OpenAPI
// document answers 401 without a key, with a wrong key, or with the key in the query string;
// a read key gets 403 on every route the document marks admin and never 401/403 elsewhere.
func TestEveryRouteIsAuthorized(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := loadOpenAPI(t)
	param := regexp.MustCompile(`\{[a-z]+\}`)
	for _, rt := range routeTable(t) {
		method, path, _ := strings.Cut(rt, " ")
		role := doc.Paths[path][strings.ToLower(method)].Role
		concrete := param.ReplaceAllString(path, "x1")
		if strings.Contains(path, "{phone}") {
			concrete = strings.Replace(path, "{phone}", "+51987654321", 1)
			concrete = param.ReplaceAllString(concrete, "deals")
		}
		t.Run(rt, func(t *testing.T) {
			if role == "public" {
				assert.Equal(t, http.StatusOK, e.call(method, concrete, "", nil).status)
				return
			}
			assert.Equal(t, http.StatusUnauthorized, e.call(method, concrete, "", nil).status, "no key")
			assert.Equal(t, http.StatusUnauthorized, e.call(method, concrete, "not-a-key-0123456789", nil).status, "wrong key")
			sep := "?"
			if strings.Contains(concrete, "?") {
				sep = "&"
			}
			assert.Equal(t, http.StatusUnauthorized, e.call(method, concrete+sep+"api_key="+adminKey, "", nil).status, "key in the query string")
			res := e.call(method, concrete, readKey, nil)
			switch role {
			case "admin":
				assert.Equal(t, http.StatusForbidden, res.status, "read key on an admin route")
			case "read":
				assert.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, res.status, "read key on a read route: %s", res.raw)
			default:
				t.Fatalf("the document gives %s no x-herald-role", rt)
			}
		})
	}
}

func TestUnknownRoutesAnswerProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.admin(http.MethodGet, "/v1/nothing-here", nil)
	assert.Equal(t, http.StatusNotFound, res.status)
	assert.Equal(t, "application/problem+json", res.header.Get("Content-Type"))
	res = e.admin(http.MethodPatch, "/v1/segments", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, res.status)
	assert.Equal(t, "GET, POST", res.header.Get("Allow"))
}
