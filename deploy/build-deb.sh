#!/usr/bin/env bash
# Builds the hotline Debian package from this checkout with dpkg-deb:
#   deploy/build-deb.sh            -> target/debian/hotline_VERSION_ARCH.deb
# The binary is the stripped release build; the configuration is the sample hotline.yaml
# moved to the packaged paths and listening on loopback until the admin edits it.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --bin hotline
bin=target/release/hotline
version=$(cargo pkgid -p hotline | sed 's/.*[@#]//')
arch=$(dpkg --print-architecture)
# The C library the binary links against is its only run-time dependency.
libc=$(dpkg-query -W -f='${Version}' libc6 | sed 's/-.*//')

stage=target/debian/hotline_${version}_${arch}
rm -rf "$stage"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/etc/hotline" \
    "$stage/usr/share/hotline" "$stage/usr/share/doc/hotline" "$stage/usr/share/man/man1" \
    "$stage/lib/systemd/system" "$stage/usr/share/bash-completion/completions" \
    "$stage/usr/share/zsh/vendor-completions" "$stage/usr/share/fish/vendor_completions.d"

install -m 0755 "$bin" "$stage/usr/bin/hotline"
cp -r flows prompts schemas "$stage/usr/share/hotline/"
find "$stage/usr/share/hotline" -type d -exec chmod 0755 {} +
find "$stage/usr/share/hotline" -type f -exec chmod 0644 {} +

# The sample configuration, at the packaged paths and on loopback.
sed -e 's#"udp:0\.0\.0\.0:5060", "tcp:0\.0\.0\.0:5060"#"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"#' \
    -e 's#\$schema=schemas/#$schema=/usr/share/hotline/schemas/#' \
    -e 's#^flows: flows#flows: /usr/share/hotline/flows#' \
    -e 's#^prompts: prompts#prompts: /usr/share/hotline/prompts#' \
    -e 's#^records: { store: data/hotline.db#records: { store: /var/lib/hotline/hotline.db#' \
    hotline.yaml > "$stage/etc/hotline/hotline.yaml"
printf 'data: /var/lib/hotline       # callback requests, messages, records\n' >> "$stage/etc/hotline/hotline.yaml"
for want in 'udp:127.0.0.1:5060' 'schema=/usr/share/hotline/schemas/hotline.schema.json' '/usr/share/hotline/flows' '/usr/share/hotline/prompts' \
    'store: /var/lib/hotline/hotline.db'; do
    grep -q "$want" "$stage/etc/hotline/hotline.yaml" ||
        { echo "build-deb: the sample hotline.yaml changed shape; '$want' not set" >&2; exit 1; }
done

install -m 0644 deploy/hotline.service "$stage/lib/systemd/system/hotline.service"
install -m 0644 README.md "$stage/usr/share/doc/hotline/README.md"
cp -r docs "$stage/usr/share/doc/hotline/docs"
install -m 0644 LICENSE "$stage/usr/share/doc/hotline/copyright"
"$bin" man | gzip -9n > "$stage/usr/share/man/man1/hotline.1.gz"
"$bin" completions bash > "$stage/usr/share/bash-completion/completions/hotline"
"$bin" completions zsh > "$stage/usr/share/zsh/vendor-completions/_hotline"
"$bin" completions fish > "$stage/usr/share/fish/vendor_completions.d/hotline.fish"

sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@DEPENDS@/libc6 (>= $libc)/" \
    deploy/debian/control.in > "$stage/DEBIAN/control"
printf 'Installed-Size: %s\n' "$(du -sk --exclude=DEBIAN "$stage" | cut -f1)" >> "$stage/DEBIAN/control"
install -m 0644 deploy/debian/conffiles "$stage/DEBIAN/conffiles"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$stage/DEBIAN/"

dpkg-deb --root-owner-group --build "$stage" "target/debian/" >/dev/null
echo "target/debian/hotline_${version}_${arch}.deb"
