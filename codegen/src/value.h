// How the lowering passes tensors between layers (private to codegen).
#pragma once

#include <Halide.h>

#include <cstdint>
#include <vector>

namespace convgen::codegen {

// An activation (or its gradient): a Func over the per-sample dims in Halide order, then the batch.
// Images have extents {C, W, H} for (c, x, y, n); features {F} for (f, n). Flatten does not copy:
// a flattened image keeps its image extents and only its logical shape changes, so dense layers
// read the image directly.
struct Value {
    Halide::Func func;
    std::vector<int64_t> extents;

    int dimensions() const { return static_cast<int>(extents.size()) + 1; }
    int64_t elements() const {
        int64_t total = 1;
        for (int64_t e : extents) total *= e;
        return total;
    }
};

// The pure variables every Func uses, so that schedules can name them.
struct Dims {
    static Halide::Var c, x, y, n, f, k;
    static Halide::Var o, i, kx, ky;  // weight dims: (o, i, kx, ky) for conv, (o, input dims...) for dense
};

// Call arguments for a Value with the given per-sample args followed by the batch index.
std::vector<Halide::Expr> with_batch(std::vector<Halide::Expr> sample, const Halide::Expr& batch);

// Pure vars named prefix0, prefix1, ... for Funcs of any dimensionality.
std::vector<Halide::Var> numbered_vars(const char* prefix, int count);

// Fresh pure vars for a Value's per-sample dims: (c, x, y) or (f).
std::vector<Halide::Var> sample_vars(const Value& value);

}  // namespace convgen::codegen
