#!/usr/bin/env bash
# Builds Hearth.app and Hearth_<version>_<arch>.dmg on a Mac (macOS 13 or later, Xcode command
# line tools, Rust, Node). Run it from anywhere in the repository:
#
#   installers/macos/build-dmg.sh                  # the app and dmg for this Mac's architecture
#   HEARTH_TARGET=universal-apple-darwin installers/macos/build-dmg.sh   # Apple silicon + Intel
#   installers/macos/build-dmg.sh --sidecar-only   # just src-tauri/binaries/hearth-<triple>
#
# What it does, in order:
# 1. `npm ci` and `npm run build` in ui/ (the window's files, embedded in the app).
# 2. Builds the `hearth` CLI (hearth-cli) for the target and copies it to
#    src-tauri/binaries/hearth-<target triple>. Tauri's `bundle.externalBin` ("binaries/hearth" in
#    src-tauri/tauri.macos.conf.json) requires that suffix; it copies the file into the bundle
#    as Contents/MacOS/hearth, the BundleProgram of the supervisor's LaunchDaemon plist. For a
#    universal build the two architectures are joined with `lipo`. On a Mac, tauri-build wants
#    this file for every build of hearth-app (`cargo build`, `cargo test`, `tauri dev`), so
#    developers run `--sidecar-only` once, and again after changing hearth-cli.
# 3. Lints the supervisor's LaunchDaemon plist. It names no admin (SMAppService loads it only
#    from inside the signed bundle, so it cannot be per-Mac): the supervisor serves the first
#    member of the `admin` group to connect and remembers them, so one dmg serves every family.
# 4. `tauri build --bundles app,dmg` (without the ui build, done in step 1, passed in
#    `--config`); src-tauri/Info.plist and tauri.macos.conf.json are merged by Tauri.
# 5. Checks the bundle: the sidecar, the daemon plist, LSUIElement.
#
# Signing and notarization are optional and done by Tauri when the environment asks for them:
#   APPLE_SIGNING_IDENTITY   "Developer ID Application: …" (or "-" for an ad-hoc signature, for a
#                            Mac of your own; SMAppService may still refuse an ad-hoc daemon)
#   APPLE_ID, APPLE_PASSWORD (an app-specific password), APPLE_TEAM_ID
#     or APPLE_API_KEY, APPLE_API_ISSUER, APPLE_API_KEY_PATH   → Tauri notarizes the app; this
#                            script then signs, notarizes and staples the dmg as well.
# Without APPLE_SIGNING_IDENTITY the app is unsigned apart from the linker's ad-hoc signature;
# Gatekeeper will ask before opening it, and System Settings may not offer to approve the daemon.
#
# The commands the script runs are not checked on Linux; the configuration it feeds them is
# (src-tauri/tests/it/macos.rs).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
sidecar_only=false
while [ $# -gt 0 ]; do
  case "$1" in
    --sidecar-only) sidecar_only=true; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-dmg.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "build-dmg.sh: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

[ "$(uname -s)" = Darwin ] || die "this builds a macOS app and must run on a Mac (on Linux, installers/linux/build-deb)"
for tool in cargo rustc npm npx plutil; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done

host="$(rustc -vV | sed -n 's/^host: //p')"
target="${HEARTH_TARGET:-$host}"
case "$target" in
  aarch64-apple-darwin | x86_64-apple-darwin) arches=("$target") ;;
  universal-apple-darwin) arches=(aarch64-apple-darwin x86_64-apple-darwin) ;;
  *) die "HEARTH_TARGET must be aarch64-apple-darwin, x86_64-apple-darwin or universal-apple-darwin, not $target" ;;
esac
for arch in "${arches[@]}"; do
  if [ "$arch" != "$host" ] && command -v rustup >/dev/null; then
    rustup target add "$arch" >/dev/null
  fi
done

step "The hearth sidecar for $target"
sidecar="$root/src-tauri/binaries/hearth-$target"
mkdir -p "$root/src-tauri/binaries"
built=()
for arch in "${arches[@]}"; do
  (cd "$root" && cargo build --locked --release -p hearth-cli --bin hearth --target "$arch")
  built+=("$root/target/$arch/release/hearth")
done
if [ "${#built[@]}" -gt 1 ]; then
  lipo -create -output "$sidecar" "${built[@]}"
else
  cp "${built[0]}" "$sidecar"
fi
chmod 0755 "$sidecar"
echo "$sidecar"
if [ "$sidecar_only" = true ]; then
  exit 0
fi

step "The window (ui/)"
(cd "$root/ui" && npm ci && npm run build)

step "The supervisor's LaunchDaemon plist"
plutil -lint "$here/com.hearth.supervisor.plist"
generated="$root/target/macos"
mkdir -p "$generated"

# Merged over tauri.conf.json + tauri.macos.conf.json (JSON Merge Patch): null drops
# beforeBuildCommand because step 1 built the ui.
overrides="$generated/tauri.build.conf.json"
cat > "$overrides" <<JSON
{ "build": { "beforeBuildCommand": null } }
JSON

step "Hearth.app and the dmg"
if command -v cargo-tauri >/dev/null; then
  tauri=(cargo tauri)
else
  tauri=(npx --yes @tauri-apps/cli@2)
fi
if [ -n "${APPLE_SIGNING_IDENTITY:-}" ]; then
  echo "Signing as $APPLE_SIGNING_IDENTITY with the hardened runtime."
else
  echo "APPLE_SIGNING_IDENTITY is not set: the app will not be signed for distribution."
fi
(cd "$root/src-tauri" && "${tauri[@]}" build --target "$target" --bundles app,dmg --config "$overrides")

bundle_dir="$root/target/$target/release/bundle"
app="$bundle_dir/macos/Hearth.app"
dmg="$(find "$bundle_dir/dmg" -maxdepth 1 -name 'Hearth_*.dmg' -print | head -1)"
[ -d "$app" ] || die "$app was not built"
[ -n "$dmg" ] || die "no dmg in $bundle_dir/dmg"

step "Checking the bundle"
[ -x "$app/Contents/MacOS/hearth" ] || die "the sidecar Contents/MacOS/hearth is missing"
"$app/Contents/MacOS/hearth" --version
daemon="$app/Contents/Library/LaunchDaemons/com.hearth.supervisor.plist"
plutil -lint "$daemon" "$app/Contents/Info.plist"
[ "$(plutil -extract LSUIElement raw "$app/Contents/Info.plist")" = true ] || die "Info.plist lacks LSUIElement"
[ "$(plutil -extract BundleProgram raw "$daemon")" = Contents/MacOS/hearth ] || die "the daemon's BundleProgram is not the sidecar"

if [ -n "${APPLE_SIGNING_IDENTITY:-}" ]; then
  codesign --verify --deep --strict --verbose=2 "$app"
  codesign --force --timestamp --sign "$APPLE_SIGNING_IDENTITY" "$dmg"
  if [ -n "${APPLE_API_KEY:-}" ] && [ -n "${APPLE_API_ISSUER:-}" ] && [ -n "${APPLE_API_KEY_PATH:-}" ]; then
    notary=(--key "$APPLE_API_KEY_PATH" --key-id "$APPLE_API_KEY" --issuer "$APPLE_API_ISSUER")
  elif [ -n "${APPLE_ID:-}" ] && [ -n "${APPLE_PASSWORD:-}" ] && [ -n "${APPLE_TEAM_ID:-}" ]; then
    notary=(--apple-id "$APPLE_ID" --password "$APPLE_PASSWORD" --team-id "$APPLE_TEAM_ID")
  else
    notary=()
  fi
  if [ "${#notary[@]}" -gt 0 ]; then
    step "Notarizing the dmg"
    xcrun notarytool submit "$dmg" "${notary[@]}" --wait
    xcrun stapler staple "$dmg"
    spctl --assess --type open --context context:primary-signature --verbose "$dmg"
  else
    echo "No notarization credentials (APPLE_ID… or APPLE_API_KEY…): the dmg is signed, not notarized."
  fi
fi

cat <<EOF

Built:
  $app
  $dmg

After copying Hearth to Applications on the closet Mac, open it; in Settings → "This Mac as an
appliance" it lists the remaining steps, among them allowing the Hearth supervisor in
System Settings → General → Login Items.
EOF
