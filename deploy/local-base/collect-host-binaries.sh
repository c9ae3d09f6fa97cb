#!/bin/sh
# Copies host binaries and every shared library `ldd` lists for them into <root>,
# keeping their paths, so `COPY root/ /` puts a working binary into an image whose
# libc matches the host's (the offline node base is made from this host, so it does).
# Usage: collect-host-binaries.sh <root> <binary>...
set -eu
root=$1
shift
copy_in() {
  mkdir -p "$root$(dirname "$1")"
  cp -L "$1" "$root$1"
}
for bin in "$@"; do
  path=$(command -v "$bin")
  copy_in "$path"
  for lib in $(ldd "$path" | grep -o '/[^ ]*\.so[^ ]*'); do copy_in "$lib"; done
done
