#!/bin/sh
# Render manager.conf with the AMI secret from the environment (never from a file in git), and
# optionally the ccengine globals override.
#
#   CCENGINE_AMI_SECRET=... render-manager-conf.sh TEMPLATE OUTPUT [GLOBALS_OUTPUT]
#
# Used by the Asterisk container's entrypoint before Asterisk starts (docs/dialplans.md,
# "Deployment"; docs/operations.md, "docker compose"): TEMPLATE is the read-only
# deploy/asterisk/manager.conf, OUTPUT the file Asterisk reads (/etc/asterisk/manager.conf).
#
# Optional environment (defaults = the template's loopback-only values):
#   CCENGINE_AMI_BINDADDR  IPv4 address AMI listens on (compose: 0.0.0.0 inside the container;
#                          port 5038 is never published)
#   CCENGINE_AMI_PERMIT    the only client network of the ccengine AMI user, ADDRESS/NETMASK
#                          (compose: the engine container's fixed address /255.255.255.255)
#   CCENGINE_AGI           host:port of the engine's FastAGI server. With GLOBALS_OUTPUT given,
#                          that file gets `CCENGINE_AGI=<value>` (or only a comment when unset);
#                          deploy/asterisk/extensions.conf includes it inside [globals] after
#                          ccengine/globals_ccengine.conf, so it overrides the 127.0.0.1:4573 default.
#   CCENGINE_AGI_2         host:port of a second engine (docs/scaling.md), written the same way
#                          as `CCENGINE_AGI_2=<value>`.
#
# Exits non-zero, and writes nothing, when the secret is missing, too short, or contains a
# character that would change the meaning of the line (';' starts a comment in Asterisk config
# files), or when an optional value is not exactly of its form.
set -eu

template=${1:?usage: render-manager-conf.sh TEMPLATE OUTPUT [GLOBALS_OUTPUT]}
output=${2:?usage: render-manager-conf.sh TEMPLATE OUTPUT [GLOBALS_OUTPUT]}
globals_output=${3:-}
placeholder=CHANGE_ME_FROM_ENV
secret=${CCENGINE_AMI_SECRET:-}
bindaddr=${CCENGINE_AMI_BINDADDR:-127.0.0.1}
permit=${CCENGINE_AMI_PERMIT:-127.0.0.1/255.255.255.255}
agi=${CCENGINE_AGI:-}
agi2=${CCENGINE_AGI_2:-}

fail() {
    echo "render-manager-conf: $*" >&2
    exit 2
}

# A dotted-quad IPv4 address, each part 0-255 without leading zeros.
is_ipv4() {
    printf '%s\n' "$1" | awk -F. 'NF != 4 { exit 1 }
        { for (i = 1; i <= 4; i++) if ($i !~ /^(0|[1-9][0-9]?[0-9]?)$/ || $i > 255) exit 1 }'
}

if [ -z "$secret" ]; then
    fail "CCENGINE_AMI_SECRET is not set"
fi
if [ "${#secret}" -lt 16 ]; then
    fail "CCENGINE_AMI_SECRET must be at least 16 characters"
fi
case "$secret" in
    *[!A-Za-z0-9._~+/=-]*)
        fail "CCENGINE_AMI_SECRET may only contain A-Z a-z 0-9 . _ ~ + / = -" ;;
esac
if [ "$secret" = "$placeholder" ]; then
    fail "CCENGINE_AMI_SECRET is the placeholder"
fi
is_ipv4 "$bindaddr" || fail "CCENGINE_AMI_BINDADDR must be an IPv4 address"
case "$permit" in
    */*) is_ipv4 "${permit%%/*}" && is_ipv4 "${permit#*/}" \
            || fail "CCENGINE_AMI_PERMIT must be ADDRESS/NETMASK (IPv4, dotted)" ;;
    *) fail "CCENGINE_AMI_PERMIT must be ADDRESS/NETMASK (IPv4, dotted)" ;;
esac
# host:port with host A-Za-z0-9.- and a port from 1 to 65535; $1 names the variable.
check_hostport() {
    name=$1
    value=$2
    host=${value%:*}
    port=${value##*:}
    case "$value" in *:*) ;; *) fail "$name must be host:port" ;; esac
    case "$host" in
        "" | *[!A-Za-z0-9.-]*) fail "$name host may only contain A-Z a-z 0-9 . -" ;;
    esac
    case "$port" in
        "" | *[!0-9]*) fail "$name port must be a number" ;;
    esac
    if [ "${#host}" -gt 253 ] || [ "${#port}" -gt 5 ] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
        fail "$name must be host:port with a port from 1 to 65535"
    fi
}
if [ -n "$agi" ]; then
    check_hostport CCENGINE_AGI "$agi"
fi
if [ -n "$agi2" ]; then
    check_hostport CCENGINE_AGI_2 "$agi2"
fi
for line in "secret = $placeholder" "bindaddr = 127.0.0.1" "permit = 127.0.0.1/255.255.255.255"; do
    grep -qx "$line" "$template" || fail "$template has no '$line' line"
done

tmp="$output.tmp.$$"
umask 027
# Every value was checked above, so it is safe as an awk -v value (no backslash) and cannot
# add a line to the file.
awk -v secret="$secret" -v ph="$placeholder" -v bind="$bindaddr" -v permit="$permit" '
    $0 == "secret = " ph { print "secret = " secret; next }
    $0 == "bindaddr = 127.0.0.1" { print "bindaddr = " bind; next }
    $0 == "permit = 127.0.0.1/255.255.255.255" { print "permit = " permit; next }
    { print }' "$template" > "$tmp"
if grep -q "$placeholder" "$tmp"; then
    rm -f "$tmp"
    fail "placeholder still present after rendering"
fi
if [ -n "$globals_output" ]; then
    gtmp="$globals_output.tmp.$$"
    {
        echo "; Written by render-manager-conf.sh at container start; do not edit."
        if [ -n "$agi" ]; then
            echo "CCENGINE_AGI=$agi"
        fi
        if [ -n "$agi2" ]; then
            echo "CCENGINE_AGI_2=$agi2"
        fi
    } > "$gtmp"
    chmod 0644 "$gtmp"
    mv "$gtmp" "$globals_output"
fi
mv "$tmp" "$output"
