#!/usr/bin/env bash
# Builds programs against a generated library folder the way an outside project would, and runs
# them: only <name>.h, <name>.hpp and lib<name>.a are copied out of the generated folder; the
# programs are compiled with that copy as their only include path and linked with the archive
# plus -lpthread -ldl -lm, nothing from Halide, LLVM, fmt or convgen. Then checks that the
# binaries need none of those at run time, and runs them with an empty LD_LIBRARY_PATH.
#
# Usage: build_and_run.sh <c++ compiler> <generated lenet5 dir> <work dir>
# The C compiler is $CC, or cc.
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: $0 <c++ compiler> <generated lenet5 dir> <work dir>" >&2
    exit 2
fi
cxx=$1
generated=$2
work=$3
cc=${CC:-cc}
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

fail() {
    echo "standalone consumer: $*" >&2
    exit 1
}

# Nothing from the environment may add include or library paths behind our back.
unset CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH LIBRARY_PATH LD_LIBRARY_PATH LD_PRELOAD

for file in lenet5.h lenet5.hpp liblenet5.a; do
    [[ -f "$generated/$file" ]] || fail "$generated/$file does not exist; build the lenet5 target first"
done
rm -rf "$work"
mkdir -p "$work/lenet5"
cp "$generated/lenet5.h" "$generated/lenet5.hpp" "$generated/liblenet5.a" "$work/lenet5/"
library=$work/lenet5

# The headers a program sees must be the copied ones and the system's own, none of a dependency.
check_headers() {  # <compiler> <flags...> <source>
    local headers
    headers=$("$@" -I"$library" -M | tr ' \\' '\n\n' | grep -E '\.(h|hpp)$' | grep -v "^$library/" || true)
    if grep -iE 'halide|llvm|fmt|convgen' <<<"$headers"; then
        fail "$*: includes headers of Halide, LLVM, fmt or convgen (above)"
    fi
}

# The binary may need the C and C++ runtimes, nothing else.
check_binary() {  # <binary>
    local binary=$1 needed
    needed=$(readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
    while read -r library_name; do
        [[ -z "$library_name" ]] && continue
        if ! grep -qE '^(libc|libm|libmvec|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux[-a-z0-9_.]*)\.so' \
            <<<"$library_name"; then
            fail "$binary needs $library_name (readelf -d); only the C and C++ runtimes are allowed"
        fi
    done <<<"$needed"
    if LD_LIBRARY_PATH= ldd "$binary" | grep -E 'libHalide|libLLVM|libfmt|convgen'; then
        fail "$binary depends on the libraries above (ldd)"
    fi
    # fmt's symbols live in namespace fmt (_ZN3fmt...); libstdc++'s std::__throw_out_of_range_fmt is not one.
    if nm -u "$binary" | grep -iE 'halide|llvm|_ZN(K)?3fmt'; then
        fail "$binary has undefined symbols of Halide, LLVM or fmt (above, nm -u)"
    fi
}

run() {  # <binary>
    local binary=$1 output
    if ! output=$(env LD_LIBRARY_PATH= "$binary" "$work" 2>&1); then
        echo "$output" >&2
        fail "$binary failed"
    fi
    echo "$output"
    [[ $(tail -n 1 <<<"$output") == OK ]] || fail "$binary did not print OK"
}

# The C API from C99, linked by the C++ compiler since the library is C++ inside.
check_headers "$cc" -std=c99 "$source_dir/consumer.c"
"$cc" -std=c99 -Wall -Wextra -pedantic -Werror -I"$library" -c "$source_dir/consumer.c" -o "$work/consumer.o"
"$cxx" "$work/consumer.o" "$library/liblenet5.a" -lpthread -ldl -lm -o "$work/consumer_c"
check_binary "$work/consumer_c"
run "$work/consumer_c"

# The C++ header, with a standard older than the one convgen itself is built with.
check_headers "$cxx" -std=c++17 "$source_dir/consumer_cpp.cpp"
"$cxx" -std=c++17 -Wall -Wextra -pedantic -Werror -I"$library" "$source_dir/consumer_cpp.cpp" \
    "$library/liblenet5.a" -lpthread -ldl -lm -o "$work/consumer_cpp"
check_binary "$work/consumer_cpp"
run "$work/consumer_cpp"

echo "standalone consumer: OK"
