# Sourced by scripts/test: checks the programs the tests take from the machine, installs
# the missing ones on Debian and Ubuntu (only those, without recommended packages, as root
# or with sudo), and elsewhere says what to install and stops. Keep this list in step with
# tests/api/support/tools.rs (what a test says when a program is missing) and
# CONTRIBUTING.md (Test).

# The Debian packages for what is missing here, one a line.
missing_packages() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 &&
    ! { command -v initdb && command -v postgres; } >/dev/null 2>&1; then
    echo postgresql
  fi
  command -v psql >/dev/null 2>&1 || echo postgresql-client
  command -v redis-server >/dev/null 2>&1 || echo redis-server
  command -v redis-cli >/dev/null 2>&1 || echo redis-tools
  [ -x /usr/bin/chromium ] || echo chromium
  [ -r /usr/share/java/postgresql.jar ] || echo libpostgresql-jdbc-java
  command -v javac >/dev/null 2>&1 || echo default-jdk-headless
  has_program mariadbd && has_program mariadb-install-db || echo mariadb-server
  has_program mariadb || echo mariadb-client
  curl_is_new_enough || echo curl
}

# `$1` on PATH, or where Debian's packages put server programs (as tests/api/support/
# mariadb.rs looks for them).
has_program() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}

# curl 7.82 or newer (the first with --json, which the curl recipe uses).
curl_is_new_enough() {
  local version major minor
  version=$(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }') || return 1
  major=${version%%.*}
  minor=${version#*.}
  minor=${minor%%.*}
  [ -n "$major" ] && [ "$major" -eq "$major" ] 2>/dev/null || return 1
  [ "$major" -gt 7 ] || { [ "$major" -eq 7 ] && [ "$minor" -ge 82 ]; }
}

machine_requirements() {
  local missing
  missing=$(missing_packages | tr '\n' ' ')
  missing=${missing% }
  [ -z "$missing" ] && return 0
  if [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; then
    local sudo_cmd=""
    if [ "$(id -u)" != 0 ]; then
      if ! command -v sudo >/dev/null 2>&1; then
        echo "scripts/test: missing here: $missing. Install them as root:" >&2
        echo "  apt-get install -y --no-install-recommends $missing" >&2
        exit 1
      fi
      sudo_cmd="sudo"
    fi
    echo "scripts/test: installing from the distribution's packages: $missing" >&2
    $sudo_cmd apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends $missing
    missing=$(missing_packages | tr '\n' ' ')
    missing=${missing% }
    if [ -n "$missing" ]; then
      echo "scripts/test: still missing after installing: $missing (curl must be 7.82 or newer)" >&2
      exit 1
    fi
    return 0
  fi
  echo "scripts/test: the tests need programs this machine lacks. Install them with your" >&2
  echo "system's package manager, then run scripts/test again:" >&2
  local package
  for package in $missing; do
    case $package in
      postgresql) echo "  PostgreSQL's server programs (13 or newer), initdb and postgres on PATH" ;;
      postgresql-client) echo "  psql (PostgreSQL's client) on PATH" ;;
      redis-server) echo "  Redis: redis-server on PATH" ;;
      redis-tools) echo "  Redis's client: redis-cli on PATH" ;;
      chromium) echo "  Chromium at /usr/bin/chromium" ;;
      libpostgresql-jdbc-java) echo "  the PostgreSQL JDBC driver at /usr/share/java/postgresql.jar" ;;
      default-jdk-headless) echo "  a JDK (17 or newer): javac and java on PATH" ;;
      mariadb-server) echo "  MariaDB's server programs: mariadbd and mariadb-install-db" ;;
      mariadb-client) echo "  MariaDB's client: mariadb on PATH" ;;
      curl) echo "  curl 7.82 or newer on PATH" ;;
    esac
  done >&2
  exit 1
}
