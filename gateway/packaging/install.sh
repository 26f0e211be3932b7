#!/bin/sh
# Install the Trellis node daemon on a Debian (or other systemd) server from
# this checkout:
#
#   sudo gateway/packaging/install.sh               install, enable and start trellis.service
#   sudo gateway/packaging/install.sh --uninstall   remove what it added (the node's state stays)
#
# It builds what the daemon needs (dependencies, the TUN addon) when it is not
# built, creates the system group trellis (whose members may use the daemon's
# socket), installs /usr/local/bin/trellis (a wrapper that runs this
# checkout's gateway/bin/trellis), the unit /etc/systemd/system/trellis.service
# and /etc/default/trellis (extra daemon flags; never overwritten), then
# enables and starts the unit. Running it again changes nothing that is
# already in place. The daemon runs from this checkout: keep it where it is.
#
# Options:
#   --prefix DIR  install under DIR instead of / (staging and tests): no
#                 systemctl; the group goes into DIR/etc/group when that exists
#   --no-start    install the files only: no enable, no start (no systemd needed)
#   --no-build    do not build; fail if the daemon's dependencies are missing
#   --uninstall   stop and disable the unit, remove the files and the group
set -eu

say() { printf 'trellis install: %s\n' "$*"; }
die() {
	printf 'trellis install: %s\n' "$*" >&2
	exit 1
}

here=$(dirname "$(readlink -f "$0")")
checkout=$(readlink -f "$here/../..")
prefix=""
start=yes
build=yes
action=install
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix)
		[ $# -ge 2 ] || die "--prefix needs a directory"
		prefix=$(readlink -f "$2")
		shift 2
		;;
	--prefix=*)
		prefix=$(readlink -f "${1#--prefix=}")
		shift
		;;
	--no-start)
		start=no
		shift
		;;
	--no-build)
		build=no
		shift
		;;
	--uninstall)
		action=uninstall
		shift
		;;
	-h | --help)
		sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done

[ -z "$prefix" ] || [ -d "$prefix" ] || die "--prefix $prefix: no such directory"
[ -n "$prefix" ] || [ "$(id -u)" = 0 ] || die "run it as root (sudo $0), or with --prefix DIR to stage the files"

# What this script installs. Each file it writes names this script, so that
# --uninstall removes only its own files.
MARK="installed by gateway/packaging/install.sh"
wrapper="$prefix/usr/local/bin/trellis"
unit="$prefix/etc/systemd/system/trellis.service"
defaults="$prefix/etc/default/trellis"
GROUP=trellis

# systemd as PID 1, and this is the real root (not a staging prefix).
use_systemd() { [ -z "$prefix" ] && [ -d /run/systemd/system ]; }

group_exists() {
	if [ -n "$prefix" ]; then
		grep -q "^$GROUP:" "$prefix/etc/group" 2>/dev/null
	else
		getent group "$GROUP" >/dev/null
	fi
}

# Write $2 (text) to $1 with mode $3 unless it already holds exactly that; says which.
put() {
	if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then
		say "unchanged $1"
		return 1
	fi
	mkdir -p "$(dirname "$1")"
	printf '%s\n' "$2" >"$1.tmp.$$"
	chmod "$3" "$1.tmp.$$"
	mv -f "$1.tmp.$$" "$1"
	say "installed $1"
}

# Remove $1 if this script wrote it (it carries the mark); leave anything else.
remove_ours() {
	if [ ! -e "$1" ]; then
		return 0
	elif grep -q "$MARK" "$1"; then
		rm -f "$1"
		say "removed $1"
	else
		say "kept $1: this script did not write it"
	fi
}

defaults_text="# Extra flags for \`trellis daemon\` (trellis.service), $MARK.
# Prometheus metrics, for example: TRELLIS_DAEMON_FLAGS=\"--metrics 127.0.0.1:9101\"
TRELLIS_DAEMON_FLAGS=\"\"
# The daemon's log level in the journal (fatal … trace, or silent).
TRELLIS_LOG_LEVEL=info"

if [ "$action" = uninstall ]; then
	if use_systemd; then
		if systemctl is-enabled --quiet trellis.service 2>/dev/null || systemctl is-active --quiet trellis.service; then
			# SIGTERM: the daemon takes its TUN device, routes and nftables table down.
			systemctl disable --now trellis.service
			say "stopped and disabled trellis.service"
		fi
	fi
	remove_ours "$unit"
	remove_ours "$wrapper"
	# The defaults file goes only as it was installed: changed flags are the admin's.
	if [ -f "$defaults" ] && [ "$(cat "$defaults")" = "$defaults_text" ]; then
		rm -f "$defaults"
		say "removed $defaults"
	elif [ -e "$defaults" ]; then
		say "kept $defaults: it was changed since it was installed"
	fi
	if use_systemd; then systemctl daemon-reload; fi
	if group_exists; then
		if [ -n "$prefix" ]; then groupdel --prefix "$prefix" "$GROUP"; else groupdel "$GROUP"; fi
		say "removed the group $GROUP"
	fi
	if [ -d "$prefix/var/lib/trellis" ]; then
		say "kept $prefix/var/lib/trellis (the node's key and prefs): \`trellis logout\` before uninstalling retires the node; delete the directory to forget it"
	fi
	exit 0
fi

# ---- checks, before anything changes -----------------------------------------------

command -v node >/dev/null || die "Node.js 20.19 or newer is needed (apt-get install nodejs, or nodejs.org); node is not on PATH"
node_version=$(node -p 'process.versions.node')
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
	die "Node.js 20.19 or newer is needed; this is $node_version"
node_bin=$(readlink -f "$(command -v node)")

if [ "$start" = yes ] && [ -z "$prefix" ] && [ ! -d /run/systemd/system ]; then
	die "systemd is not running here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)): use --no-start to install the files, then run \`trellis daemon --state-dir /var/lib/trellis --socket-group trellis\` under your service manager"
fi

# The unit runs as root without CAP_DAC_OVERRIDE: every directory down to the
# checkout must be enterable without it (a 0700 home directory is not).
dir=$checkout
while [ "$dir" != / ]; do
	perms=$(stat -c '%a %U' "$dir")
	mode=${perms% *}
	owner=${perms#* }
	if [ "$owner" != root ] && [ $((0$mode & 1)) = 0 ]; then
		die "the daemon runs as root without CAP_DAC_OVERRIDE and could not enter $dir (mode $mode, owner $owner): move the checkout (to /opt/trellis, say) or chmod o+x $dir"
	fi
	dir=$(dirname "$dir")
done

# The service gets a /tmp and /var/tmp of its own (PrivateTmp), and /tmp may be
# emptied at boot: a checkout there would vanish from under it.
if [ -z "$prefix" ]; then
	case "$checkout/" in
	/tmp/* | /var/tmp/*)
		die "the checkout $checkout is in a temporary directory, which the service cannot see (PrivateTmp) and which may be emptied at boot: clone it where it stays (to /opt/trellis, say) and run this from there"
		;;
	esac
fi

# ---- build -----------------------------------------------------------------------

if [ "$build" = yes ]; then
	say "building what the daemon needs in $checkout (npm ci on the first run: a few minutes)"
	(cd "$checkout" && node scripts/setup.mjs --only gateway) || die "the build failed (output above)"
fi
[ -f "$checkout/node_modules/tsx/package.json" ] ||
	die "$checkout/node_modules is missing: run it without --no-build, or npm ci in $checkout"
if [ ! -f "$checkout/gateway/build/Release/trellis_tun.node" ]; then
	say "warning: the TUN addon is not built (apt-get install build-essential python3, then run this again): only \`trellis up --userspace\` works until it is"
fi
if [ ! -f "$checkout/gateway/build/Release/trellis_dataplane.node" ]; then
	say "note: the native data plane is not built (install Rust with rustup, then run this again): TUN mode uses the slower WASM engine until it is"
fi

# ---- the group ---------------------------------------------------------------------

if group_exists; then
	say "unchanged group $GROUP"
elif [ -n "$prefix" ] && [ ! -f "$prefix/etc/group" ]; then
	say "skipped the group $GROUP: there is no $prefix/etc/group"
else
	if [ -n "$prefix" ]; then groupadd --prefix "$prefix" --system "$GROUP"; else groupadd --system "$GROUP"; fi
	say "created the group $GROUP: its members may run trellis without sudo (usermod -aG $GROUP NAME)"
fi

# ---- files -------------------------------------------------------------------------

changed=no
wrapper_text="#!/bin/sh
# The trellis CLI of the checkout $checkout, $MARK.
PATH=\"$(dirname "$node_bin"):\$PATH\" exec \"$checkout/gateway/bin/trellis\" \"\$@\""
put "$wrapper" "$wrapper_text" 0755 && changed=yes

unit_text="# $MARK from $checkout.
$(cat "$here/trellis.service")"
put "$unit" "$unit_text" 0644 && changed=yes

if [ -e "$defaults" ]; then
	say "unchanged $defaults (yours to edit)"
else
	put "$defaults" "$defaults_text" 0644
fi

# ---- systemd -----------------------------------------------------------------------

if use_systemd; then
	[ "$changed" = no ] || systemctl daemon-reload
	if [ "$start" = yes ]; then
		systemctl enable --quiet trellis.service
		if ! systemctl is-active --quiet trellis.service; then
			systemctl start trellis.service
			say "started trellis.service"
		elif [ "$changed" = yes ]; then
			# The daemon brings the node up again by itself after a restart.
			systemctl restart trellis.service
			say "restarted trellis.service (its files changed)"
		else
			say "unchanged trellis.service: enabled and running"
		fi
		sleep 1
		systemctl is-active --quiet trellis.service ||
			die "trellis.service did not stay up: journalctl -u trellis.service says why"
	else
		say "not started (--no-start): systemctl enable --now trellis.service starts it"
	fi
elif [ -n "$prefix" ]; then
	say "staged under $prefix: no systemctl"
else
	say "systemd is not running here: start the daemon yourself (trellis daemon --state-dir /var/lib/trellis --socket-group trellis)"
fi

cat <<EOF

Next: mint a pre-auth key in the console (Keys), then join the tailnet:
  trellis up --login-server https://vpn.example.com --auth-key file:/root/trellis.key
  trellis status
Members of the group $GROUP may run trellis without sudo: usermod -aG $GROUP NAME (then log in again).
Daemon flags (such as --metrics 127.0.0.1:9101) go in /etc/default/trellis; logs: journalctl -u trellis.
EOF
