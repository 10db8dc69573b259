#!/usr/bin/env bash
# ensure-services.sh: make sure PostgreSQL and Redis answer where Herald will look for them.
#
# Usage: docker/ensure-services.sh [--test] [--start-local] [--timeout SECONDS]
#
#   (default)      Check PostgreSQL at DATABASE_URL and Redis at REDIS_URL. If one on this machine
#                  does not answer and a Docker engine is running, start it from docker/compose.yaml
#                  and wait for it; otherwise print exactly how to start it and exit 1.
#   --test         Check TEST_DATABASE_URL and TEST_REDIS_URL instead (what `go test` uses).
#   --start-local  For CI and throwaway machines: start a missing service from Debian's packages
#                  (installing postgresql / redis-server with apt-get if the binaries are missing),
#                  and let PostgreSQL trust loopback connections if password-less login is refused.
#   --timeout N    Seconds to wait for services that are starting (default 60).
#
# Exit status: 0 when both services answer, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
compose_file="$here/compose.yaml"

log() { printf 'ensure-services: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() { sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# --- options -----------------------------------------------------------------------------------

mode=default     # default | start-local
for_tests=false
wait_seconds=60
while (($#)); do
  case $1 in
    --start-local) mode=start-local ;;
    --test) for_tests=true ;;
    --timeout) shift; wait_seconds=${1:?--timeout needs a number of seconds} ;;
    --timeout=*) wait_seconds=${1#--timeout=} ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
[[ $wait_seconds =~ ^[0-9]+$ ]] || die "--timeout: '$wait_seconds' is not a number of seconds"

if $for_tests; then
  pg_var=TEST_DATABASE_URL redis_var=TEST_REDIS_URL
  pg_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/herald_test?sslmode=disable}
  redis_url=${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
else
  pg_var=DATABASE_URL redis_var=REDIS_URL
  pg_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/herald?sslmode=disable}
  redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
fi

# --- where the services are --------------------------------------------------------------------

# split_hostport "host:port" | "[v6]:port" | "host" -> sets host and port (port may stay empty).
split_hostport() {
  local hp=$1
  if [[ $hp == \[* ]]; then
    host=${hp%%]*} host=${host#[}
    [[ $hp == *]:* ]] && port=${hp##*]:}
  elif [[ $hp == *:* ]]; then
    host=${hp%%:*} port=${hp##*:}
  else
    host=$hp
  fi
  return 0
}

# parse_pg URL-or-DSN -> sets pg_host, pg_port. Understands postgres:// URLs (first host of a
# list; host= and port= in the query override, as for a socket directory) and key=value DSNs.
parse_pg() {
  local url=$1 rest query="" kv host="" port=""
  case $url in
    postgres://* | postgresql://*)
      rest=${url#*://}
      if [[ $rest == *\?* ]]; then query=${rest#*\?}; fi
      rest=${rest%%\?*}   # drop ?query
      rest=${rest%%/*}    # drop /dbname
      rest=${rest##*@}    # drop user:password@
      rest=${rest%%,*}    # first of several hosts
      split_hostport "$rest"
      local -a kvs=()
      IFS='&' read -ra kvs <<<"$query"
      for kv in ${kvs[@]+"${kvs[@]}"}; do
        case $kv in
          host=*) host=${kv#host=} ;;
          port=*) port=${kv#port=} ;;
        esac
      done
      host=${host//%2F//} host=${host//%2f//}
      ;;
    *) # key=value DSN
      [[ $url =~ (^|[[:space:]])host=([^[:space:]]+) ]] && host=${BASH_REMATCH[2]}
      [[ $url =~ (^|[[:space:]])port=([^[:space:]]+) ]] && port=${BASH_REMATCH[2]}
      ;;
  esac
  pg_host=${host:-127.0.0.1} pg_port=${port:-5432}
  pg_port=${pg_port%%,*}
}

# parse_redis URL -> sets redis_host, redis_port, redis_scheme (redis, rediss or unix).
parse_redis() {
  local url=$1 rest host="" port=""
  redis_scheme=${url%%://*}
  case $url in
    unix://*)
      rest=${url#unix://} rest=${rest%%\?*}
      redis_host=${rest##*@} redis_port=""
      return 0
      ;;
    redis://* | rediss://*)
      rest=${url#*://} rest=${rest%%\?*} rest=${rest%%/*} rest=${rest##*@}
      split_hostport "$rest"
      ;;
    *) die "$redis_var: '$url' is not a redis://, rediss:// or unix:// URL" ;;
  esac
  redis_host=${host:-127.0.0.1} redis_port=${port:-6379}
}

parse_pg "$pg_url"
parse_redis "$redis_url"

hostport() { if [[ $1 == *:* ]]; then echo "[$1]:$2"; else echo "$1:$2"; fi; }
pg_where() { if [[ $pg_host == /* ]]; then echo "socket $pg_host/.s.PGSQL.$pg_port"; else hostport "$pg_host" "$pg_port"; fi; }
redis_where() { if [[ $redis_scheme == unix ]]; then echo "socket $redis_host"; else hostport "$redis_host" "$redis_port"; fi; }

is_loopback() {
  case $1 in
    localhost | 127.* | ::1 | 0:0:0:0:0:0:0:1 | /*) return 0 ;;
    *) return 1 ;;
  esac
}

# --- probes: 0 answering, 1 starting up, 2 not answering ----------------------------------------

with_timeout() {
  local secs=$1; shift
  if command -v timeout >/dev/null 2>&1; then timeout "$secs" "$@"; else "$@"; fi
}

tcp_probe() {
  # shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
  if with_timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; then return 0; fi
  return 2
}

pg_probe() {
  if command -v pg_isready >/dev/null 2>&1; then
    local rc=0
    pg_isready -q -h "$pg_host" -p "$pg_port" -t 3 || rc=$?
    case $rc in 0) return 0 ;; 1) return 1 ;; *) return 2 ;; esac
  fi
  if [[ $pg_host == /* ]]; then
    [[ -S $pg_host/.s.PGSQL.$pg_port ]] && return 0
    return 2
  fi
  tcp_probe "$pg_host" "$pg_port"
}

redis_probe() {
  if [[ $redis_scheme == unix ]]; then
    [[ -S $redis_host ]] || return 2
    command -v redis-cli >/dev/null 2>&1 || return 0
    local -a target=(-s "$redis_host")
  elif [[ $redis_scheme == rediss ]] || ! command -v redis-cli >/dev/null 2>&1; then
    tcp_probe "$redis_host" "$redis_port"
    return
  else
    local -a target=(-h "$redis_host" -p "$redis_port")
  fi
  local reply
  reply=$(with_timeout 3 redis-cli "${target[@]}" ping 2>/dev/null) || true
  case $reply in
    PONG) return 0 ;;
    LOADING*) return 1 ;;
    "") return 2 ;;
    *) return 0 ;; # NOAUTH and the like: a Redis server is answering
  esac
}

state() { local rc=0; "$@" || rc=$?; echo "$rc"; }

# wait_until_up: poll both until they answer or the time runs out.
wait_until_up() {
  local deadline=$((SECONDS + wait_seconds)) pg redis
  while :; do
    pg=$(state pg_probe) redis=$(state redis_probe)
    if [[ $pg == 0 && $redis == 0 ]]; then return 0; fi
    if ((SECONDS >= deadline)); then
      [[ $pg == 0 ]] || log "PostgreSQL at $(pg_where) still does not answer after ${wait_seconds}s"
      [[ $redis == 0 ]] || log "Redis at $(redis_where) still does not answer after ${wait_seconds}s"
      return 1
    fi
    sleep 1
  done
}

# --- how to start them by hand -----------------------------------------------------------------

# The newest PostgreSQL version with a cluster configured (Debian's layout), or nothing.
# shellcheck disable=SC2012 # version directories are plain numbers
newest_pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1 || true; }

# pg_cluster_hint SUDO: the pg_ctlcluster line that starts the cluster on pg_port, or what to
# change when no cluster uses that port.
pg_cluster_hint() {
  local sudo=$1 ver name port status _ first=""
  while read -r ver name port status _; do
    if [[ $port == "$pg_port" ]]; then
      echo "    ${sudo}pg_ctlcluster $ver $name start      # or: ${sudo}systemctl start postgresql"
      return 0
    fi
    [[ -n $first ]] || first="$ver $name $port $status"
  done < <(pg_lsclusters -h 2>/dev/null)
  read -r ver name port status <<<"$first"
  echo "    # no PostgreSQL cluster here uses port $pg_port; cluster $ver/$name uses port $port ($status)."
  [[ $status == online ]] || echo "    ${sudo}pg_ctlcluster $ver $name start"
  echo "    # then use port $port in $pg_var, e.g. $pg_var=postgres://postgres@127.0.0.1:$port/herald?sslmode=disable"
}

print_how_to_start() {
  local need_pg=$1 need_redis=$2
  {
    echo
    echo "Herald needs PostgreSQL >= 13 and Redis >= 6.2. Not answering:"
    $need_pg && echo "  - PostgreSQL at $(pg_where)   (from $pg_var)"
    $need_redis && echo "  - Redis at $(redis_where)   (from $redis_var)"
    echo
    echo "Start them in one of these ways, then run the command again:"
    echo
    if [[ $(uname -s) == Darwin ]]; then
      echo "  macOS with Homebrew:"
      $need_pg && echo "    brew install postgresql@16 && brew services start postgresql@16" &&
        echo "    createuser -s postgres        # Homebrew's superuser is your login name; Herald connects as postgres"
      $need_redis && echo "    brew install redis && brew services start redis"
    else
      local sudo="sudo "
      [[ $(id -u) == 0 ]] && sudo=""
      echo "  Debian / Ubuntu:"
      if $need_pg; then
        if command -v pg_lsclusters >/dev/null 2>&1 && [[ -n $(newest_pg_version) ]]; then
          pg_cluster_hint "$sudo"
        else
          echo "    ${sudo}apt-get install -y postgresql      # creates a cluster on port 5432"
          echo "    ${sudo}pg_ctlcluster \$(ls /etc/postgresql) main start   # if it is not running afterwards"
        fi
      fi
      if $need_redis; then
        command -v redis-server >/dev/null 2>&1 || echo "    ${sudo}apt-get install -y redis-server"
        echo "    redis-server --daemonize yes --bind 127.0.0.1 --port ${redis_port:-6379}   # or: ${sudo}systemctl start redis-server"
      fi
      echo "  (as root on a throwaway machine, docker/ensure-services.sh --start-local does all of this)"
    fi
    echo
    echo "  With Docker: start the Docker engine (Docker Desktop, or: sudo systemctl start docker), then"
    local ports=""
    [[ $pg_port != 5432 ]] && ports+="HERALD_PG_PORT=$pg_port "
    [[ $redis_port != 6379 && -n $redis_port ]] && ports+="HERALD_REDIS_PORT=$redis_port "
    echo "    ${ports}make up        # PostgreSQL 16 and Redis 7 from docker/compose.yaml, on 127.0.0.1"
    echo
    echo "  Or point $pg_var / $redis_var at servers you already run."
    echo
  } >&2
}

# --- starting them -----------------------------------------------------------------------------

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -f "$compose_file" "$@"
  elif command -v docker-compose >/dev/null 2>&1; then
    docker-compose -f "$compose_file" "$@"
  else
    die "Docker is running but Docker Compose is not installed: install the compose plugin, or start PostgreSQL and Redis yourself"
  fi
}

apt_updated=false
apt_install() {
  [[ $(id -u) == 0 ]] || die "--start-local must run as root to install $* with apt-get"
  command -v apt-get >/dev/null 2>&1 || die "--start-local: $* missing and apt-get not found; install them yourself"
  if ! $apt_updated; then
    log "apt-get update"
    apt-get update -qq
    apt_updated=true
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

start_local_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z $(newest_pg_version) ]]; then
    apt_install postgresql
  fi
  local ver
  ver=$(newest_pg_version)
  [[ -n $ver ]] || die "no PostgreSQL cluster under /etc/postgresql; create one with: pg_createcluster <version> main"
  log "starting PostgreSQL $ver (pg_ctlcluster)"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || log "pg_ctlcluster $ver main start failed; see /var/log/postgresql/"
}

start_local_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  log "starting Redis on port $redis_port"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || log "redis-server failed; see /var/log/redis/ci.log"
}

# pg_login_refused: true when PostgreSQL answers but refuses the login in the URL; the reason is
# left in login_error. Any other outcome (a missing database is fine: `herald migrate` makes it,
# and the test helper makes its own) is left for Herald to report.
pg_login_refused() {
  command -v psql >/dev/null 2>&1 || return 1
  login_error=$(PGCONNECT_TIMEOUT=5 psql "$pg_url" -Atqc 'SELECT 1' 2>&1 >/dev/null) && return 1
  case $login_error in
    *"authentication failed"* | *"no password supplied"* | *"no pg_hba.conf entry"* | *"role \""*"\" does not exist"*)
      return 0 ;;
  esac
  return 1
}

# check_pg_login: Herald logs in as postgres without a password by default, which a fresh
# PostgreSQL refuses over TCP. With --start-local, trust loopback logins; otherwise say how.
check_pg_login() {
  local login_error
  pg_login_refused || return 0
  local ver
  ver=$(newest_pg_version)
  if [[ $mode == start-local && $(id -u) == 0 && -n $ver ]] && is_loopback "$pg_host"; then
    local hba=/etc/postgresql/$ver/main/pg_hba.conf
    log "PostgreSQL refused the login (${login_error//$'\n'/ }); trusting loopback logins in $hba"
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
    sleep 1
    pg_login_refused || return 0
  fi
  {
    echo
    echo "PostgreSQL at $(pg_where) answers but refuses the login in $pg_var:"
    echo "  ${login_error//$'\n'/ }"
    if [[ $login_error == *"role \""* ]]; then
      echo "Create that role (sudo -u postgres createuser --superuser NAME), or use an existing one in $pg_var;"
    fi
    echo "Either put the right user and password in $pg_var, e.g."
    echo "  sudo -u postgres psql -c \"ALTER USER postgres PASSWORD 'secret'\""
    echo "  export $pg_var='postgres://postgres:secret@$pg_host:$pg_port/herald?sslmode=disable'"
    echo "or, on a development machine, trust loopback logins: add these lines at the top of pg_hba.conf"
    echo "  host all all 127.0.0.1/32 trust"
    echo "  host all all ::1/128      trust"
    echo "and reload PostgreSQL (sudo pg_ctlcluster ${ver:-<version>} main reload, or brew services restart postgresql@16)."
    echo
  } >&2
  return 1
}

# --- main --------------------------------------------------------------------------------------

pg_state=$(state pg_probe)
redis_state=$(state redis_probe)
need_pg=false need_redis=false
[[ $pg_state == 2 ]] && need_pg=true
[[ $redis_state == 2 ]] && need_redis=true

if $need_pg || $need_redis; then
  # A server on another machine is not ours to start.
  if $need_pg && ! is_loopback "$pg_host"; then
    die "cannot reach PostgreSQL at $(pg_where) ($pg_var); it is not on this machine, so check the URL and that server"
  fi
  if $need_redis && ! is_loopback "$redis_host"; then
    die "cannot reach Redis at $(redis_where) ($redis_var); it is not on this machine, so check the URL and that server"
  fi

  if [[ $mode == start-local ]]; then
    if $need_pg; then start_local_postgres; fi
    if $need_redis; then start_local_redis; fi
  elif docker info >/dev/null 2>&1 && [[ $pg_host != /* && $redis_scheme != unix ]]; then
    services=()
    $need_pg && services+=(postgres)
    $need_redis && services+=(redis)
    log "starting ${services[*]} with Docker Compose (docker/compose.yaml)"
    # The compose file publishes the ports these variables name, so the URLs keep working.
    HERALD_PG_PORT=$pg_port HERALD_REDIS_PORT=$redis_port compose up -d "${services[@]}" ||
      die "docker compose up failed; see the output above"
  else
    print_how_to_start "$need_pg" "$need_redis"
    exit 1
  fi
fi

if ! wait_until_up; then
  if [[ $mode == start-local ]]; then
    log "see /var/log/postgresql/ and /var/log/redis/ci.log"
  elif [[ -n ${services+set} ]]; then
    log "see: docker compose -f docker/compose.yaml logs ${services[*]}"
  fi
  exit 1
fi
check_pg_login
log "PostgreSQL at $(pg_where) and Redis at $(redis_where) are up"
