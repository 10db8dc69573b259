package benchreport

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// MachineConfig says where to ask PostgreSQL and Redis for their versions.
type MachineConfig struct {
	DatabaseURL string
	RedisURL    string
}

// Validate checks that both URLs are set.
func (c MachineConfig) Validate() error {
	if c.DatabaseURL == "" || c.RedisURL == "" {
		return fmt.Errorf("benchreport: the database and Redis URLs are required")
	}
	return nil
}

// Describe gathers the machine's description. A part it cannot learn says why instead
// (the report is still worth writing).
func Describe(ctx context.Context, cfg MachineConfig) (Machine, error) {
	if err := cfg.Validate(); err != nil {
		return Machine{}, err
	}
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	m.CPU = procField("/proc/cpuinfo", "model name")
	if kb, err := strconv.ParseFloat(strings.Fields(procField("/proc/meminfo", "MemTotal") + " 0")[0], 64); err == nil && kb > 0 {
		m.RAM = fmt.Sprintf("%.1f GiB", kb/(1<<20))
	}
	m.OS = osName()
	m.Postgres = postgresVersion(ctx, cfg.DatabaseURL)
	m.Redis = redisVersion(ctx, cfg.RedisURL)
	return m, nil
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func osName() string {
	name := ""
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				name = strings.Trim(v, `"`)
			}
		}
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		name = strings.TrimSpace(name + ", " + strings.TrimSpace(string(out)))
	}
	return strings.TrimPrefix(name, ", ")
}

func postgresVersion(ctx context.Context, url string) string {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer conn.Close(ctx)
	var version, buffers, commit string
	if err := conn.QueryRow(ctx, `SELECT version(), current_setting('shared_buffers'), current_setting('synchronous_commit')`).
		Scan(&version, &buffers, &commit); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if short, _, ok := strings.Cut(version, " on "); ok {
		version = short
	}
	return fmt.Sprintf("%s (shared_buffers %s, synchronous_commit %s)", version, buffers, commit)
}

func redisVersion(ctx context.Context, url string) string {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	client := redis.NewClient(opts)
	defer client.Close()
	info, err := client.Info(ctx, "server").Result()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return "unknown"
}
