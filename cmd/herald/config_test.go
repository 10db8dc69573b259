package main

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		wantErr []string // every problem is named, all at once
	}{
		{name: "defaults", env: map[string]string{}},
		{name: "full", env: map[string]string{
			"DATABASE_URL": "postgres://u:p@db:5432/h", "REDIS_URL": "redis://r:6379/1", "HERALD_ADDR": "0.0.0.0:9000",
			"HERALD_API_KEYS": "key-one-0123456789, key-two-0123456789:read, key-three-012345678:admin", "HERALD_DEFAULT_REGION": "pe", "PUBLIC_BASE_URL": "https://herald.example.com",
			"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "tok", "HERALD_LOG_FORMAT": "console"}},
		{name: "every problem at once", env: map[string]string{
			"DATABASE_URL": "postgres://%zz", "REDIS_URL": "http://nope", "HERALD_ADDR": "8080",
			"HERALD_API_KEYS": "key-one-0123456789:root", "HERALD_DEFAULT_REGION": "XX", "PUBLIC_BASE_URL": "herald.example.com", "TWILIO_ACCOUNT_SID": "XX1",
			"HERALD_LOG_LEVEL": "loud", "HERALD_READY_MAX_LAG": "soon", "HERALD_ROLES": "api,sorcery,saga,divination",
			"HERALD_FAILPOINTS": "after-lunch=1"},
			wantErr: []string{"DATABASE_URL", "REDIS_URL", "HERALD_ADDR", "HERALD_API_KEYS", "HERALD_DEFAULT_REGION", "PUBLIC_BASE_URL",
				"TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID: \"XX1\"", "HERALD_LOG_LEVEL", "HERALD_READY_MAX_LAG",
				`HERALD_ROLES: unknown role "sorcery", "divination"`, `HERALD_FAILPOINTS: failpoint "after-lunch": unknown point`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(env(tc.env))
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
				assert.NotEmpty(t, cfg.DatabaseURL)
				return
			}
			require.Error(t, err)
			for _, want := range tc.wantErr {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: allRoles},
		{in: "all", want: allRoles},
		{in: "api", want: []string{roleAPI}},
		{in: " relay, Projections ,saga", want: []string{roleRelay, roleProjections, roleSaga}},
		{in: "api,scheduler,api", want: []string{roleAPI, roleScheduler}},
		{in: "saga,all", want: allRoles},
		{in: "api,worker", wantErr: `unknown role "worker"`},
		{in: ",", wantErr: "no role given"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(env(map[string]string{"HERALD_ROLES": tc.in}))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "HERALD_ROLES: "+tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, keys(cfg.Roles))
		})
	}
}

func TestUnreachableDependenciesFailWithOneLineNamingTheSetting(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, setting string
		env           map[string]string
	}{
		{"postgres", "DATABASE_URL", map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:1/herald?sslmode=disable&connect_timeout=2"}},
		{"redis", "REDIS_URL", map[string]string{"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "REDIS_URL": "redis://127.0.0.1:1/0"}},
		{"bad roles", "--roles", map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"serve"}
			if tc.name == "bad roles" {
				args = append(args, "--roles=api,sorcery")
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, env(tc.env), &stdout, &stderr)
			require.Error(t, err)
			line := oneLine(err)
			assert.NotContains(t, line, "\n")
			assert.Contains(t, line, tc.setting)
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"launch"}, env(nil), &stdout, &stderr)
	require.Error(t, err)
	assert.Contains(t, stderr.String(), "usage: herald")
}

// TestREADMEListsEveryVariable keeps README.md's configuration table complete: every variable
// the configuration reads has a row.
func TestREADMEListsEveryVariable(t *testing.T) {
	t.Parallel()
	read := map[string]bool{}
	_, _ = loadConfig(func(k string) string { read[k] = true; return "" })
	require.NotEmpty(t, read)
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for k := range read {
		assert.Contains(t, string(readme), "| `"+k+"` |", "README.md's configuration table lacks %s", k)
	}
}
