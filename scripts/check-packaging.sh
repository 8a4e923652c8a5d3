#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Packaging and style checks of kvelect, as a downstream user and CI see them:
#   subproject  tests/consumer builds against kvelect as a Meson subproject, and runs
#   install     kvelect installs (shared + static) into a temporary prefix; the installed tree is
#               complete, each public header compiles on its own, kvelect.pc is valid, and
#               tests/consumer builds against it through pkg-config (shared and static) and runs;
#               -lnats once in `pkg-config --static`; bin/kvelect runs without LD_LIBRARY_PATH;
#               tests/consumer includes every installed header
#   cmake       tests/consumer-cmake builds with find_package(kvelect) against the install step's
#               tree (shared, static, the prometheus component, a moved copy) and runs; a missing
#               component and an incompatible version fail find_package
#   deb         the Debian packages build (dpkg-buildpackage -b in a copy of the sources), lintian
#               finds no error or warning, their dependencies are declared and installable here;
#               unpacked into one tree (dpkg -x), kvelect --help runs and both consumers
#               (pkg-config and CMake) build against the tree and run
#   format      clang-format-14 --dry-run --Werror over include/ lib/ tests/ tools/ examples/ bench/
#   tidy        clang-tidy-14 over lib/**/*.cpp (config: .clang-tidy); any warning fails
#   docs        Doxygen API reference of include/kvelect (skipped when doxygen is not installed);
#               any warning fails
#
# Usage: scripts/check-packaging.sh [STEP...]     (default: all steps, in the order above)
# Every step runs; the script exits non-zero if any failed, and names them at the end.
# Environment: KEEP_TMP=1 keeps the temporary directory; JOBS=N caps parallel jobs.
# Needs: meson, ninja, pkg-config, a C++20 compiler, python3 (Meson's), clang-format-14,
# clang-tidy-14, cmake; debhelper, dpkg-dev, lintian and the build dependencies of debian/control
# for the deb step; doxygen for the docs step. Nothing is written into the source tree.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
ALL_STEPS=(subproject install cmake deb format tidy docs)

header() { printf '\n==== check-packaging: %s ====\n' "$*"; }
fail() {
  printf 'check-packaging: FAIL: %s\n' "$*" >&2
  exit 1
}
need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is not installed (./dev deps installs it)"
  done
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kvelect-packaging.XXXXXX")
cleanup() {
  if [[ ${KEEP_TMP:-0} == 1 ]]; then
    echo "check-packaging: kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

# Quiet `meson setup`: its log is shown only when it fails.
meson_setup() { # meson_setup BUILDDIR SOURCEDIR [options...]
  local log=$1.setup.log
  if ! meson setup "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "meson setup $*"
  fi
}

meson_build() { # meson_build BUILDDIR
  ninja -C "$1" -j "$JOBS" >"$1.build.log" 2>&1 || {
    cat "$1.build.log" >&2
    fail "build in $1"
  }
}

# The kvelect sources as a fresh clone has them: what git tracks or would track (not ignored),
# else the tree without build directories, .git and unpacked subprojects.
copy_sources() { # copy_sources DEST
  local dest=$1
  mkdir -p "$dest"
  if git -C "$ROOT" rev-parse --show-toplevel 2>/dev/null | grep -qxF "$ROOT"; then
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard) |
      (cd "$ROOT" && while IFS= read -r -d '' f; do
        if [[ -e $f || -L $f ]]; then printf '%s\0' "$f"; fi
      done) |
      tar -C "$ROOT" --null --no-recursion -T - -cf - | tar -C "$dest" -xf -
  else
    (cd "$ROOT" && find . \( -path ./.git -o \( -path './build*' -type d \) \
      -o \( -path './_build*' -type d \) -o -path ./tests/consumer/subprojects \
      -o \( -path './subprojects/*' -type d ! -path ./subprojects/packagefiles \) \) -prune \
      -o \( -type f -o -type l \) -print0) |
      tar -C "$ROOT" --null --no-recursion -T - -cf - | tar -C "$dest" -xf -
  fi
  [[ -f $dest/meson.build ]] || fail "copying the sources to $dest"
}

copy_consumer() { # copy_consumer DEST
  mkdir -p "$1"
  cp -R "$ROOT/tests/consumer/." "$1/"
  rm -rf "$1/subprojects"
}

run_consumer() { # run_consumer EXE [LD_LIBRARY_PATH [PROMETHEUS]]
  local out
  out=$(LD_LIBRARY_PATH=${2:-${LD_LIBRARY_PATH:-}} "$1") || fail "$1 exited with status $?"
  echo "$out"
  grep -q "^kvelect-consumer: kvelect " <<<"$out" || fail "$1 printed no version line"
  # PROMETHEUS=yes: the consumer was built with the component and must have used it.
  if [[ ${3:-no} == yes ]]; then
    grep -q "prometheus: 0 elections" <<<"$out" || fail "$1 did not use kvelect_prometheus"
  fi
}

# The consumer's -Dprometheus for an installed tree: enabled where the component's library was
# installed, so that a broken kvelect-prometheus.pc fails instead of being skipped.
consumer_prometheus() { # consumer_prometheus LIBDIR
  if [[ -e $1/libkvelect_prometheus.so ]]; then echo enabled; else echo disabled; fi
}

project_version() {
  meson introspect --projectinfo "$MAIN_BUILD" | python3 -c 'import json, sys
print(json.load(sys.stdin)["version"])'
}

# Checks that EXE, run with LD_LIBRARY_PATH=LIBPATH, loads libkvelect from DIR (DIR "none": does
# not load it at all). ldd's output is captured first: under pipefail, `ldd | grep -q` fails
# when grep exits at its first match and ldd dies of SIGPIPE.
check_loads_libkvelect() { # check_loads_libkvelect EXE DIR|none [LIBPATH]
  local out
  out=$(LD_LIBRARY_PATH=${3:-} ldd "$1") || fail "ldd $1"
  if [[ $2 == none ]]; then
    if grep -q 'libkvelect' <<<"$out"; then fail "$1 (linked statically) loads libkvelect.so"; fi
  else
    grep -q "libkvelect\.so[^ ]* => $2/" <<<"$out" || fail "$1 does not load libkvelect from $2"
  fi
}

# PREFIX/bin/kvelect runs without LD_LIBRARY_PATH, and loads libkvelect from PREFIX/lib (its
# RUNPATH), not from anywhere else.
check_cli_runs() { # check_cli_runs PREFIX
  local exe=$1/bin/kvelect out lib
  out=$(env -u LD_LIBRARY_PATH "$exe" --version 2>&1) || fail "$exe --version: $out"
  out=$(env -u LD_LIBRARY_PATH ldd "$exe") || fail "ldd $exe"
  lib=$(sed -n 's/^[[:space:]]*libkvelect\.so[^ ]* => \([^ ]*\) .*/\1/p' <<<"$out")
  [[ -n $lib ]] || fail "$exe does not find libkvelect without LD_LIBRARY_PATH"
  [[ $(realpath "$(dirname "$lib")") == "$(realpath "$1/lib")" ]] ||
    fail "$exe loads libkvelect from $lib, not from $1/lib"
  echo "$exe --version: $out (RUNPATH $(readelf -d "$exe" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p'), libkvelect: $lib)"
}

# `pkg-config --static --libs PACKAGE` links libnats exactly once, and names none of kvelect's own
# libraries or fmt twice (libnats.pc of cnats 3.4 lists -lnats in Libs and in Libs.private, so a
# Requires.private: libnats would repeat it). Other packages' repeats (prometheus-cpp's -lpthread)
# are theirs.
check_pc_libs_once() { # check_pc_libs_once PACKAGE
  local libs lib count
  libs=$(pkg-config --static --libs "$1") || fail "pkg-config --static --libs $1"
  for lib in -lnats -lfmt -lkvelect -lkvelect_prometheus; do
    count=$(tr ' ' '\n' <<<"$libs" | grep -c -x -- "$lib" || true)
    if [[ $lib == -lnats ]] && ((count != 1)); then
      fail "pkg-config --static --libs $1 names -lnats $count times, not once: $libs"
    fi
    ((count <= 1)) || fail "pkg-config --static --libs $1 repeats $lib: $libs"
  done
}

# Public headers of optional components, installed only along with the component's library.
declare -A OPTIONAL_HEADERS=([prometheus.hpp]=libkvelect_prometheus)

# One build of kvelect itself, shared by the install, tidy and docs steps.
MAIN_BUILD=$TMP/build-kvelect
PREFIX=$TMP/prefix
main_build_setup() {
  [[ -f $MAIN_BUILD/build.ninja ]] && return 0
  need meson ninja
  meson_setup "$MAIN_BUILD" "$ROOT" --prefix="$PREFIX" --libdir=lib -Ddefault_library=both \
    -Dtests=disabled -Dbenchmarks=disabled -Dexamples=disabled
}

# The value of a feature option of the main build ("enabled", "disabled" or "auto").
build_option() { # build_option NAME
  meson introspect --buildoptions "$MAIN_BUILD" |
    python3 -c 'import json, sys
name = sys.argv[1]
print(next((str(o["value"]) for o in json.load(sys.stdin) if o["name"] == name), ""))' "$1"
}

step_subproject() {
  header "subproject: tests/consumer with kvelect in subprojects/kvelect"
  need meson ninja
  local dir=$TMP/subproject
  copy_consumer "$dir/consumer"
  copy_sources "$dir/consumer/subprojects/kvelect"
  meson_setup "$dir/build" "$dir/consumer" --force-fallback-for=kvelect
  meson_build "$dir/build"
  # kvelect must have come from the subproject, and built only its library there: its tests,
  # benchmarks, examples and CLI are off by default in a parent project.
  meson introspect --targets "$dir/build" | python3 -c 'import json, sys
targets = json.load(sys.stdin)
sub = [t for t in targets if t.get("subproject") == "kvelect"]
if not sub:
    sys.exit("kvelect was not built as a subproject")
extra = [t["name"] for t in sub if t["type"] in ("executable", "run")]
if extra:
    sys.exit("the kvelect subproject builds more than its library: " + ", ".join(extra))
print("subproject targets: " + ", ".join(t["name"] for t in sub))' ||
    fail "the consumer's kvelect is not a library-only subproject"
  run_consumer "$dir/build/kvelect-consumer"
}

# The main build, installed into $PREFIX (once: the install and cmake steps share it).
main_install() {
  [[ -f $TMP/installed.stamp ]] && return 0
  main_build_setup
  meson_build "$MAIN_BUILD"
  meson install -C "$MAIN_BUILD" --quiet >"$TMP/install.log" 2>&1 || {
    cat "$TMP/install.log" >&2
    fail "meson install"
  }
  touch "$TMP/installed.stamp"
}

step_install() {
  header "install: kvelect into a temporary prefix, consumer through pkg-config"
  need meson ninja pkg-config python3
  main_install

  # The installed tree: every public header (those of optional components only when the
  # component's library was built), the generated version.hpp, both libraries, kvelect.pc.
  local h name missing=()
  for h in "$ROOT"/include/kvelect/*.hpp; do
    name=$(basename "$h")
    if [[ -n ${OPTIONAL_HEADERS[$name]:-} && ! -e $PREFIX/lib/${OPTIONAL_HEADERS[$name]}.so ]]; then
      echo "not built in this configuration: ${OPTIONAL_HEADERS[$name]} (include/kvelect/$name)"
      continue
    fi
    [[ -f $PREFIX/include/kvelect/$name ]] || missing+=("include/kvelect/$name")
  done
  for h in include/kvelect/version.hpp lib/libkvelect.so lib/libkvelect.a lib/pkgconfig/kvelect.pc \
    lib/cmake/kvelect/kvelectConfig.cmake lib/cmake/kvelect/kvelectConfigVersion.cmake \
    lib/cmake/kvelect/kvelectTargets.cmake; do
    [[ -e $PREFIX/$h ]] || missing+=("$h")
  done
  if [[ -e $PREFIX/lib/libkvelect_prometheus.so ]]; then
    for h in lib/pkgconfig/kvelect-prometheus.pc lib/cmake/kvelect/kvelectPrometheusTargets.cmake; do
      [[ -e $PREFIX/$h ]] || missing+=("$h (libkvelect_prometheus is installed)")
    done
  fi
  if [[ -d $ROOT/tools && $(build_option cli) != disabled ]]; then
    [[ -x $PREFIX/bin/kvelect ]] || missing+=("bin/kvelect (tools/ exists and -Dcli is not disabled)")
  fi
  ((${#missing[@]} == 0)) || fail "not installed: ${missing[*]}"
  echo "installed: $(cd "$PREFIX" && find . -type f -o -type l | sed 's|^\./||' | sort | tr '\n' ' ')"

  if [[ -x $PREFIX/bin/kvelect ]]; then
    check_cli_runs "$PREFIX"
    # The RUNPATH is relative to the executable: the tree still works when moved elsewhere.
    cp -a "$PREFIX" "$TMP/moved-prefix"
    check_cli_runs "$TMP/moved-prefix"
    rm -rf "$TMP/moved-prefix"
  fi

  # Each public header compiles on its own, with strict flags, against the installed tree.
  export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  # $CXX may carry arguments (a compiler cache: "ccache g++").
  local cxx cflags
  read -r -a cxx <<<"${CXX:-c++}"
  for h in "$PREFIX"/include/kvelect/*.hpp; do
    name=$(basename "$h")
    # A component's header (prometheus.hpp) gets its own package's flags (kvelect-prometheus).
    if [[ -f $PREFIX/lib/pkgconfig/kvelect-${name%.hpp}.pc ]]; then
      cflags=$(pkg-config --cflags "kvelect-${name%.hpp}")
    else
      cflags=$(pkg-config --cflags kvelect)
    fi
    # shellcheck disable=SC2086 # pkg-config output is a list of flags
    echo "#include <kvelect/$name>" |
      "${cxx[@]}" -std=c++20 -Wall -Wextra -Wpedantic -Werror -fsyntax-only $cflags -x c++ - ||
      fail "installed header kvelect/$name does not compile on its own"
  done
  echo "each installed header compiles on its own"

  # tests/consumer includes every installed header, so that what a header needs from the package
  # (fmt for format.hpp) is tried by each consumer build, not only by the compile above.
  local not_included=()
  for h in "$PREFIX"/include/kvelect/*.hpp; do
    name=$(basename "$h")
    grep -q "^#include <kvelect/$name>" "$ROOT/tests/consumer/main.cpp" || not_included+=("$name")
  done
  ((${#not_included[@]} == 0)) ||
    fail "tests/consumer/main.cpp does not include: ${not_included[*]}"

  # kvelect.pc: valid, the project's version, fmt public (format.hpp), libnats private.
  pkg-config --validate kvelect || fail "kvelect.pc does not validate"
  local version
  version=$(pkg-config --modversion kvelect)
  [[ $version == "$(project_version)" ]] ||
    fail "kvelect.pc has version $version, meson.build $(project_version)"
  pkg-config --print-requires kvelect | grep -q '^fmt' || fail "kvelect.pc: fmt is not in Requires"
  if pkg-config --libs kvelect | grep -q -- '-lnats'; then
    fail "pkg-config --libs kvelect links libnats (only a static link needs it)"
  fi
  check_pc_libs_once kvelect
  [[ -f $PREFIX/lib/pkgconfig/kvelect-prometheus.pc ]] && check_pc_libs_once kvelect-prometheus
  echo "kvelect.pc: version $version; $(pkg-config --libs kvelect); static: $(pkg-config --static --libs kvelect)"

  # The consumer against the installed package, never a subproject.
  local dir=$TMP/installed prom prom_used=no
  prom=$(consumer_prometheus "$PREFIX/lib")
  [[ $prom == enabled ]] && prom_used=yes
  copy_consumer "$dir/consumer"
  meson_setup "$dir/build-shared" "$dir/consumer" --wrap-mode=nofallback -Dprometheus="$prom"
  meson_build "$dir/build-shared"
  check_loads_libkvelect "$dir/build-shared/kvelect-consumer" "$PREFIX/lib" "$PREFIX/lib"
  run_consumer "$dir/build-shared/kvelect-consumer" "$PREFIX/lib" "$prom_used"

  meson_setup "$dir/build-static" "$dir/consumer" --wrap-mode=nofallback -Dstatic_kvelect=true \
    -Dprometheus="$prom"
  meson_build "$dir/build-static"
  check_loads_libkvelect "$dir/build-static/kvelect-consumer" none
  run_consumer "$dir/build-static/kvelect-consumer" "" "$prom_used"
}

# Configures and builds tests/consumer-cmake in BUILDDIR; the log is shown only when it fails.
cmake_consumer() { # cmake_consumer SRCDIR BUILDDIR PREFIX_PATH [cmake options...]
  local src=$1 build=$2 prefix_path=$3
  shift 3
  if ! cmake -S "$src" -B "$build" -DCMAKE_PREFIX_PATH="$prefix_path" "$@" >"$build.log" 2>&1 ||
    ! cmake --build "$build" -j "$JOBS" >>"$build.log" 2>&1; then
    cat "$build.log" >&2
    fail "CMake consumer in $build (CMAKE_PREFIX_PATH=$prefix_path $*)"
  fi
  sed -n 's/^-- \(kvelect .* from .*\)/\1/p' "$build.log"
}

# Configuring tests/consumer-cmake fails, and says WHY (a pattern of its output).
cmake_consumer_fails() { # cmake_consumer_fails WHY SRCDIR BUILDDIR PREFIX_PATH [cmake options...]
  local why=$1 src=$2 build=$3 prefix_path=$4
  shift 4
  if cmake -S "$src" -B "$build" -DCMAKE_PREFIX_PATH="$prefix_path" "$@" >"$build.log" 2>&1; then
    fail "find_package(kvelect) with $* succeeded; it should have failed with: $why"
  fi
  grep -q -- "$why" <(tr -s ' \n' ' ' <"$build.log") || {
    cat "$build.log" >&2
    fail "find_package(kvelect) with $* failed, but without saying: $why"
  }
  echo "as expected, find_package(kvelect) with $* fails: $why"
}

step_cmake() {
  header "cmake: tests/consumer-cmake through find_package(kvelect) against the installed tree"
  need meson ninja cmake
  main_install
  local dir=$TMP/cmake prom=OFF prom_used=no
  # tests/consumer-cmake builds ../consumer/main.cpp: both, side by side.
  mkdir -p "$dir/tests"
  cp -R "$ROOT/tests/consumer-cmake" "$dir/tests/"
  copy_consumer "$dir/tests/consumer"
  local src=$dir/tests/consumer-cmake
  if [[ -e $PREFIX/lib/libkvelect_prometheus.so ]]; then
    prom=ON
    prom_used=yes
  fi

  # Shared libraries (and the component where it was built): C++20, fmt and threads come with
  # the imported targets; libkvelect is the prefix's.
  cmake_consumer "$src" "$dir/build-shared" "$PREFIX" -DKVELECT_CONSUMER_PROMETHEUS="$prom"
  check_loads_libkvelect "$dir/build-shared/kvelect-consumer" "$PREFIX/lib" "$PREFIX/lib"
  run_consumer "$dir/build-shared/kvelect-consumer" "$PREFIX/lib" "$prom_used"

  # Static libraries, where they were installed.
  if [[ -e $PREFIX/lib/libkvelect.a ]]; then
    cmake_consumer "$src" "$dir/build-static" "$PREFIX" -DKVELECT_CONSUMER_PROMETHEUS="$prom" \
      -DKVELECT_USE_STATIC_LIBS=ON
    check_loads_libkvelect "$dir/build-static/kvelect-consumer" none
    run_consumer "$dir/build-static/kvelect-consumer" "" "$prom_used"
  fi

  # The package computes its prefix from where it lies: a moved copy of the tree works. In that
  # copy, without the component's targets file (as a build without prometheus-cpp installs it),
  # asking for the component fails clearly.
  local moved=$dir/moved-prefix
  cp -a "$PREFIX" "$moved"
  rm -f "$moved/lib/cmake/kvelect/kvelectPrometheusTargets.cmake"
  cmake_consumer "$src" "$dir/build-moved" "$moved"
  check_loads_libkvelect "$dir/build-moved/kvelect-consumer" "$moved/lib" "$moved/lib"
  run_consumer "$dir/build-moved/kvelect-consumer" "$moved/lib"
  cmake_consumer_fails "kvelect was built without its prometheus component" "$src" \
    "$dir/build-no-component" "$moved" -DKVELECT_CONSUMER_PROMETHEUS=ON

  # 0.x: another minor version is another API.
  cmake_consumer_fails 'compatible with requested version "0.2"' "$src" "$dir/build-0.2" \
    "$PREFIX" -DKVELECT_CONSUMER_VERSION=0.2
}

# The binary packages of debian/control, and what each must depend on (a package name, or a
# name and the relation it must carry): the runtime libraries they link, the -dev packages the
# headers and .pc files need, and the exact version of our own packages for the -dev ones.
DEB_PACKAGES=(libkvelect0 libkvelect-prometheus0 libkvelect-dev libkvelect-prometheus-dev kvelect)
declare -A DEB_DEPENDS=(
  [libkvelect0]="libfmt9 libnats3.4 libstdc++6"
  [libkvelect-prometheus0]="libkvelect0 libprometheus-cpp-core1.0"
  [libkvelect-dev]="libkvelect0:(=VERSION) libfmt-dev libnats-dev libssl-dev"
  [libkvelect-prometheus-dev]="libkvelect-dev:(=VERSION) libkvelect-prometheus0:(=VERSION) prometheus-cpp-dev"
  [kvelect]="libkvelect0"
)

# Every dependency of DEB is satisfied by the packages built alongside it or by what this Debian
# system has installed (so the set installs on Debian 12), and DEB_DEPENDS' are declared.
check_deb_depends() { # check_deb_depends DEB VERSION
  local deb=$1 version=$2 pkg depends
  pkg=$(dpkg-deb -f "$deb" Package)
  depends=$(dpkg-deb -f "$deb" Depends)
  echo "$pkg: Depends: $depends"
  python3 - "$pkg" "$version" "$depends" "${DEB_DEPENDS[$pkg]}" "${DEB_PACKAGES[@]}" <<'PY' ||
import re, subprocess, sys
pkg, version, depends, wanted, built = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def installed(name):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", name],
                         capture_output=True, text=True).stdout
    return out.split()[-1] if out.startswith("install ok installed") else None
def satisfies(have, rel):
    if not rel:
        return True
    op, ver = rel
    return subprocess.run(["dpkg", "--compare-versions", have, {"=": "eq"}.get(op, op), ver]).returncode == 0
errors, declared = [], {}
for group in filter(None, (g.strip() for g in depends.split(","))):
    ok = False
    for alt in (a.strip() for a in group.split("|")):
        m = re.fullmatch(r"([a-z0-9][a-z0-9+.-]*)(?::\S+)?(?:\s*\((<<|<=|=|>=|>>)\s*([^)\s]+)\))?", alt)
        if not m:
            errors.append(f"cannot parse dependency {alt!r}")
            continue
        name, rel = m.group(1), (m.group(2), m.group(3)) if m.group(2) else None
        declared[name] = rel
        have = version if name in built else installed(name)
        ok = ok or (have is not None and satisfies(have, rel))
    if not ok:
        errors.append(f"{group}: neither built here nor installed in a version that satisfies it")
for want in wanted.split():
    name, _, rel = want.partition(":")
    if name not in declared:
        errors.append(f"does not depend on {name}")
    elif rel == "(=VERSION)" and declared[name] != ("=", version):
        errors.append(f"depends on {name} {declared[name]}, not (= {version})")
for e in errors:
    print(f"{pkg}: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
    fail "$pkg's dependencies"
}

step_deb() {
  header "deb: Debian packages (dpkg-buildpackage, lintian), consumers against the unpacked packages"
  need dpkg-buildpackage dpkg-deb dpkg-architecture lintian meson ninja pkg-config cmake python3
  local dir=$TMP/deb
  # dpkg-buildpackage writes the packages next to the source tree: $dir/src/*.deb.
  copy_sources "$dir/src/kvelect"
  local start=$SECONDS
  # nocheck: no test suite (debian/rules does not build one anyway); noautodbgsym: no -dbgsym
  # packages, which this check would only spend time on.
  (cd "$dir/src/kvelect" &&
    DEB_BUILD_OPTIONS="nocheck noautodbgsym parallel=$JOBS" dpkg-buildpackage -us -uc -b) \
    >"$dir/build.log" 2>&1 || {
    tail -n 60 "$dir/build.log" >&2
    fail "dpkg-buildpackage -us -uc -b (log: $dir/build.log)"
  }
  echo "dpkg-buildpackage: $((SECONDS - start)) s"

  local version changes pkg deb debs=()
  version=$(dpkg-parsechangelog -l "$ROOT/debian/changelog" -S Version)
  for pkg in "${DEB_PACKAGES[@]}"; do
    deb=$(find "$dir/src" -maxdepth 1 -name "${pkg}_${version}_*.deb" | head -n 1)
    [[ -n $deb ]] || fail "dpkg-buildpackage built no $pkg package"
    debs+=("$deb")
  done
  changes=$(find "$dir/src" -maxdepth 1 -name "kvelect_${version}_*.changes" | head -n 1)
  [[ -n $changes ]] || fail "dpkg-buildpackage wrote no .changes file"

  # Lintian over the .changes (every package and the .buildinfo): no error, no warning.
  start=$SECONDS
  local lint status=0
  lint=$(lintian --fail-on error,warning --display-info "$changes" 2>&1) || status=$?
  grep -v '^running with root privileges is not recommended!$' <<<"$lint" || true
  ((status == 0)) || fail "lintian reports errors or warnings (above)"
  echo "lintian: clean ($((SECONDS - start)) s)"

  # Installed without root or chroot: every package unpacked into one tree.
  local tree=$dir/tree multiarch libdir
  for deb in "${debs[@]}"; do
    check_deb_depends "$deb" "$version"
    dpkg -x "$deb" "$tree"
  done
  multiarch=$(dpkg-architecture -q DEB_HOST_MULTIARCH)
  libdir=$tree/usr/lib/$multiarch

  # The tool: runs from the tree, with the tree's libkvelect, and has its manual page.
  local out
  out=$(LD_LIBRARY_PATH=$libdir "$tree/usr/bin/kvelect" --help 2>&1) ||
    fail "the packaged kvelect --help: $out"
  check_loads_libkvelect "$tree/usr/bin/kvelect" "$libdir" "$libdir"
  [[ -f $tree/usr/share/man/man1/kvelect.1.gz ]] || fail "the kvelect package has no kvelect(1)"
  echo "packaged kvelect --help: $(grep -m 1 -v -e "^NAME" -e "^[[:space:]]*$" <<<"$out")"

  # The pkg-config consumer: the .pc files say prefix=/usr, so pkg-config prefixes the tree to
  # their paths (PKG_CONFIG_SYSROOT_DIR).
  copy_consumer "$dir/tests/consumer"
  (
    export PKG_CONFIG_SYSROOT_DIR=$tree PKG_CONFIG_PATH=$libdir/pkgconfig
    meson_setup "$dir/build-pkgconfig" "$dir/tests/consumer" --wrap-mode=nofallback \
      -Dprometheus=enabled
    meson_build "$dir/build-pkgconfig"
  )
  check_loads_libkvelect "$dir/build-pkgconfig/kvelect-consumer" "$libdir" "$libdir"
  run_consumer "$dir/build-pkgconfig/kvelect-consumer" "$libdir" yes

  # The CMake consumer, with the tree's /usr as its prefix.
  cp -R "$ROOT/tests/consumer-cmake" "$dir/tests/"
  cmake_consumer "$dir/tests/consumer-cmake" "$dir/build-cmake" "$tree/usr" \
    -DKVELECT_CONSUMER_PROMETHEUS=ON
  check_loads_libkvelect "$dir/build-cmake/kvelect-consumer" "$libdir" "$libdir"
  run_consumer "$dir/build-cmake/kvelect-consumer" "$libdir" yes
}

# The C++ sources that clang-format checks.
format_files() {
  local dirs=() d
  for d in include lib tests tools examples bench; do
    [[ -d $ROOT/$d ]] && dirs+=("$d")
  done
  ((${#dirs[@]})) || return 0
  (cd "$ROOT" && find "${dirs[@]}" -path tests/consumer/subprojects -prune -o -type f \
    \( -name '*.cpp' -o -name '*.hpp' \) -print | LC_ALL=C sort)
}

step_format() {
  header "format: clang-format-14 --dry-run --Werror"
  need clang-format-14
  local files
  mapfile -t files < <(format_files)
  ((${#files[@]})) || {
    echo "no C++ sources"
    return 0
  }
  local log=$TMP/clang-format.log
  if ! (cd "$ROOT" && clang-format-14 --dry-run --Werror "${files[@]}") >"$log" 2>&1; then
    # The first findings in full, then every file that needs `clang-format-14 -i`.
    head -n 40 "$log"
    echo "..."
    echo "files not formatted (clang-format-14 -i FILE fixes them):"
    grep -o -E '^[^:]+:[0-9]+:[0-9]+: error:' "$log" | cut -d: -f1 | LC_ALL=C sort | uniq -c
    fail "clang-format: $(grep -c -E ': error: ' "$log") finding(s)"
  fi
  echo "${#files[@]} files formatted"
}

step_tidy() {
  header "tidy: clang-tidy-14 over lib/ (its .cpp files)"
  need clang-tidy-14
  main_build_setup
  [[ -f $MAIN_BUILD/compile_commands.json ]] || fail "no compile_commands.json in $MAIN_BUILD"
  # lib/*.cpp as this configuration compiles them (an optional component whose dependency is
  # missing, such as lib/prometheus.cpp without prometheus-cpp, has no compile command).
  local files f skipped=()
  mapfile -t files < <(python3 -c 'import json, os, sys
root, build = sys.argv[1], sys.argv[2]
seen = set()
for c in json.load(open(os.path.join(build, "compile_commands.json"))):
    path = os.path.normpath(os.path.join(c["directory"], c["file"]))
    rel = os.path.relpath(path, root)
    if rel.startswith("lib" + os.sep) and rel.endswith(".cpp"):
        seen.add(rel)
if seen:
    print("\n".join(sorted(seen)))' "$ROOT" "$MAIN_BUILD")
  for f in "$ROOT"/lib/*.cpp "$ROOT"/lib/*/*.cpp; do
    [[ -e $f ]] || continue
    f=${f#"$ROOT"/}
    [[ " ${files[*]} " == *" $f "* ]] || skipped+=("$f")
  done
  ((${#skipped[@]} == 0)) || echo "not built in this configuration, not checked: ${skipped[*]}"
  ((${#files[@]})) || {
    echo "no lib/*.cpp to check"
    return 0
  }
  local log=$TMP/clang-tidy.log status=0
  (cd "$ROOT" && printf '%s\0' "${files[@]}" |
    xargs -0 -n 1 -P "$JOBS" clang-tidy-14 -p "$MAIN_BUILD" --quiet \
      --extra-arg=-Wno-unknown-warning-option) >"$log" 2>&1 || status=$?
  # Paths relative to the source tree, without clang-tidy's "N warnings generated." chatter.
  python3 -c 'import os, re, sys
root, build = sys.argv[1], sys.argv[2]
where = re.compile(r"^(\S+?):(\d+):(\d+): (warning|error|note): ")
for line in sys.stdin:
    if re.match(r"^\d+ warnings? (and \d+ errors? )?generated\.$", line):
        continue
    m = where.match(line)
    if m:
        path = os.path.normpath(os.path.join(build, m.group(1)))
        line = os.path.relpath(path, root) + line[len(m.group(1)):]
    sys.stdout.write(line)' "$ROOT" "$MAIN_BUILD" <"$log" >"$log.pretty"
  cat "$log.pretty"
  if ((status != 0)) || grep -q -E ': (warning|error): ' "$log.pretty"; then
    # A header's finding is reported once per file that includes it: count each once.
    fail "clang-tidy: $(grep -E ': (warning|error): ' "$log.pretty" | sort -u | wc -l) finding(s)"
  fi
  echo "${#files[@]} files clean"
}

step_docs() {
  header "docs: Doxygen API reference of include/kvelect"
  if ! command -v doxygen >/dev/null 2>&1; then
    echo "doxygen is not installed: skipped"
    return 0
  fi
  main_build_setup
  local warnings=$MAIN_BUILD/docs/doxygen-warnings.log
  ninja -C "$MAIN_BUILD" docs >"$TMP/docs.log" 2>&1 || {
    cat "$TMP/docs.log" >&2
    fail "ninja docs"
  }
  [[ -f $MAIN_BUILD/docs/api/html/index.html ]] || fail "doxygen wrote no html/index.html"
  if [[ -s $warnings ]]; then
    sed "s|$ROOT/||" "$warnings"
    fail "doxygen: $(grep -c 'warning:' "$warnings") warning(s)"
  fi
  echo "API reference: $MAIN_BUILD/docs/api/html/index.html (no warnings)"
}

steps=("$@")
((${#steps[@]})) || steps=("${ALL_STEPS[@]}")
for s in "${steps[@]}"; do
  case $s in
  subproject | install | cmake | deb | format | tidy | docs) ;;
  *) fail "unknown step '$s' (steps: ${ALL_STEPS[*]})" ;;
  esac
done
# Every step runs, in a subshell of its own (a failing step stops at its first failure), and the
# summary names the steps that failed.
failed=()
for s in "${steps[@]}"; do
  set +e
  (
    set -e
    "step_$s"
  )
  status=$?
  set -e
  ((status == 0)) || failed+=("$s")
done
if ((${#failed[@]})); then
  header "FAILED: ${failed[*]} (of: ${steps[*]})"
  exit 1
fi
header "all passed: ${steps[*]}"
