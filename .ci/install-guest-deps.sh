#!/bin/sh
# Install what the test guest build and the QEMU e2e tests need on a fresh Debian 12 host.
# Why a script: CI and developers run the same idempotent step; it returns in well under a
# second when everything is present (no `apt-get update` unless a package is missing or the
# package lists are empty, since `apt-get download` in the guest builder needs them too).
# Run as root.
set -eu

# pasta (package passt) connects each VM's network namespace to the host as the VM user,
# which needs the tun device usable by anyone, as udev sets it up on Debian (0666): hosts
# without udev (containers, microVMs) leave it 0600.
fix_tun() {
  if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
    chmod 0666 /dev/net/tun
    echo "install-guest-deps: /dev/net/tun made 0666 (Debian's default)"
  fi
}
fix_tun

# busybox (udhcpc, ping) and isc-dhcp-client: DHCP clients against the VPN router in tests
# mmdebstrap builds the debian-12 catalog image (golem-provider image build debian-12).
# passt: pasta, the network of each QEMU guest (see golem_actor/adapters/qemu/_network.py)
# systemd: systemd-analyze verifies the unit `golem-provider service install` writes
# util-linux (unshare): the Net API's gate namespaces; iproute2 (ip): the tests' namespaces;
# dropbear-bin: the SSH server behind the TCP gate in tests/unit/test_vpn_gate.py
PKGS="qemu-system-x86 qemu-utils e2fsprogs openssh-client dpkg apt busybox isc-dhcp-client passt mmdebstrap systemd util-linux iproute2 dropbear-bin"

missing=""
for p in $PKGS; do
  st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  case "$st" in
    ii*) ;;
    *) missing="$missing $p" ;;
  esac
done

# The builder runs `apt-get download`, which needs package lists (absent on fresh images).
have_lists=no
if ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 \
  || ls /var/lib/apt/lists/*_Packages.* >/dev/null 2>&1; then
  have_lists=yes
fi

if [ -z "$missing" ] && [ "$have_lists" = yes ]; then
  echo "install-guest-deps: all present"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if [ "$have_lists" = no ] || [ -n "$missing" ]; then
  apt-get update -q
fi
if [ -n "$missing" ]; then
  echo "install-guest-deps: installing$missing"
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi
echo "install-guest-deps: done"
