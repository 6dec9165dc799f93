#!/usr/bin/env bash
# Checks a built halosync .deb: every expected file is there with its mode
# and root ownership, the config is a conffile, the maintainer scripts create
# the user and never start the service on a fresh install.
# Usage: packaging/check-deb.sh target/debian/halosync_*.deb
set -euo pipefail
deb=${1:?usage: $0 PACKAGE.deb}
contents=$(dpkg-deb -c "$deb")
failures=0
fail() { echo "check-deb: $*" >&2; failures=$((failures + 1)); }

expect_file() { # mode path
    local line
    line=$(awk -v p="./$2" '$6 == p' <<<"$contents")
    if [ -z "$line" ]; then
        fail "missing $2"
    else
        local mode owner
        mode=$(awk '{print $1}' <<<"$line")
        owner=$(awk '{print $2}' <<<"$line")
        [ "$mode" = "$1" ] || fail "$2 has mode $mode, expected $1"
        # dpkg-deb shows owners by name or, for cargo-deb's archives, by id.
        case "$owner" in root/root | 0/0) ;; *) fail "$2 is owned by $owner, expected root" ;; esac
    fi
}
expect_file -rwxr-xr-x usr/bin/halosync
expect_file -rw-r--r-- etc/halosync/halosync.toml
expect_file -rw-r--r-- usr/lib/systemd/system/halosync.service
expect_file -rw-r--r-- usr/lib/sysusers.d/halosync.conf
expect_file -rw-r--r-- usr/share/doc/halosync/examples/config.example.toml
expect_file -rw-r--r-- usr/share/doc/halosync/README.md
expect_file -rw-r--r-- usr/share/doc/halosync/copyright
expect_file -rw-r--r-- usr/share/doc/halosync/changelog.Debian.gz
if grep -q -- '^-..s\|^-.....s' <<<"$contents"; then
    fail "no file may be setuid or setgid"
fi
# /etc/halosync holds the administrator's secrets; the package ships only
# the secret-free config there.
others=$(awk '$6 ~ /^\.\/etc\/halosync\/./ && $6 != "./etc/halosync/halosync.toml"' <<<"$contents")
[ -z "$others" ] || fail "unexpected files in /etc/halosync: $others"

control=$(mktemp -d)
trap 'rm -rf "$control"' EXIT
dpkg-deb -e "$deb" "$control"
grep -qx /etc/halosync/halosync.toml "$control/conffiles" ||
    fail "/etc/halosync/halosync.toml is not a conffile"
[ "$(grep -c 'systemd-sysusers.*halosync.conf' "$control/postinst")" = 1 ] ||
    fail "postinst does not create the halosync user exactly once"
grep -q 'install -d -o halosync -g halosync -m 0750 /var/lib/halosync' "$control/postinst" ||
    fail "postinst does not create the state directory"
# On a fresh install ($2 empty) nothing may start the unit: only a
# try-restart on upgrade, which does nothing unless it was running.
if grep -E '^\s*(deb-systemd-invoke (start|restart)|systemctl (--system )?(start|enable))' "$control/postinst"; then
    fail "postinst starts or enables the service before it is configured"
fi

if [ "$failures" -gt 0 ]; then
    echo "check-deb: $failures problem(s) in $deb" >&2
    exit 1
fi
echo "check-deb: $deb: files, modes, conffile and maintainer scripts OK"
