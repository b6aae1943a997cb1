#!/usr/bin/env bash
# Make sure the real services the test suite talks to answer on 127.0.0.1:
# RabbitMQ :5672 (guest/guest), MariaDB :3306 (root, no password), PostgreSQL :5432
# (user postgres, trust) and Redis :6379. A service that answers is left alone; one that
# does not is installed from Debian's packages if missing, configured for those
# credentials, and started. Run as root. Exits non-zero naming what could not be started.
set -uo pipefail

log() { echo "services: $*"; }

answers() {  # host port
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

wait_for() {  # name port seconds
    local i
    for ((i = 0; i < $3; i++)); do
        answers 127.0.0.1 "$2" && return 0
        sleep 1
    done
    log "$1 did not answer on 127.0.0.1:$2 within $3 s"
    return 1
}

apt_ready=0
ensure_packages() {
    local missing="" p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    log "installing$missing"
    if [ "$apt_ready" = 0 ]; then apt-get update -qq && apt_ready=1; fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confold $missing >/dev/null
}

start_rabbitmq() {
    ensure_packages rabbitmq-server || return 1
    rabbitmq-server -detached >/dev/null 2>&1 || true
    wait_for RabbitMQ 5672 90
}

start_mariadb() {
    ensure_packages mariadb-server || return 1
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null
    wait_for MariaDB 3306 60 || return 1
    # Debian's root uses unix_socket auth; the tests log in over TCP without password.
    mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')" 2>/dev/null || true
}

start_postgresql() {
    ensure_packages postgresql || return 1
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    local hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    wait_for PostgreSQL 5432 60
}

start_redis() {
    ensure_packages redis-server || return 1
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
    wait_for Redis 6379 30
}

failed=""
check() {  # name port starter
    if answers 127.0.0.1 "$2"; then
        log "$1 answers on 127.0.0.1:$2"
    else
        log "$1 does not answer on 127.0.0.1:$2: starting it"
        "$3" || failed="$failed $1"
    fi
}

check RabbitMQ 5672 start_rabbitmq
check MariaDB 3306 start_mariadb
check PostgreSQL 5432 start_postgresql
check Redis 6379 start_redis

if [ -n "$failed" ]; then
    log "could not start:$failed"
    exit 1
fi
