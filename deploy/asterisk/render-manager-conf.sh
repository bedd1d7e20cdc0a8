#!/bin/sh
# Render manager.conf with the AMI secret from the environment (never from a file in git).
#
#   CCENGINE_AMI_SECRET=... render-manager-conf.sh TEMPLATE OUTPUT
#
# Used by the Asterisk container's entrypoint before Asterisk starts (docs/dialplans.md,
# "Deployment"): TEMPLATE is the read-only deploy/asterisk/manager.conf, OUTPUT the file
# Asterisk reads (/etc/asterisk/manager.conf in a writable tmpfs/volume). Exits non-zero, and
# writes nothing, when the secret is missing, too short, or contains a character that would
# change the meaning of the line (';' starts a comment in Asterisk config files).
set -eu

template=${1:?usage: render-manager-conf.sh TEMPLATE OUTPUT}
output=${2:?usage: render-manager-conf.sh TEMPLATE OUTPUT}
placeholder=CHANGE_ME_FROM_ENV
secret=${CCENGINE_AMI_SECRET:-}

if [ -z "$secret" ]; then
    echo "render-manager-conf: CCENGINE_AMI_SECRET is not set" >&2
    exit 2
fi
if [ "${#secret}" -lt 16 ]; then
    echo "render-manager-conf: CCENGINE_AMI_SECRET must be at least 16 characters" >&2
    exit 2
fi
case "$secret" in
    *[!A-Za-z0-9._~+/=-]*)
        echo "render-manager-conf: CCENGINE_AMI_SECRET may only contain A-Z a-z 0-9 . _ ~ + / = -" >&2
        exit 2 ;;
esac
if [ "$secret" = "$placeholder" ]; then
    echo "render-manager-conf: CCENGINE_AMI_SECRET is the placeholder" >&2
    exit 2
fi
if ! grep -q "^secret = $placeholder\$" "$template"; then
    echo "render-manager-conf: $template has no 'secret = $placeholder' line" >&2
    exit 2
fi

tmp="$output.tmp.$$"
umask 027
# The secret's characters were checked above, so it is safe as an awk -v value
# (no backslash) and cannot add a line to the file.
awk -v secret="$secret" -v ph="$placeholder" \
    '$0 == "secret = " ph { print "secret = " secret; next } { print }' "$template" > "$tmp"
if grep -q "$placeholder" "$tmp"; then
    rm -f "$tmp"
    echo "render-manager-conf: placeholder still present after rendering" >&2
    exit 2
fi
mv "$tmp" "$output"
