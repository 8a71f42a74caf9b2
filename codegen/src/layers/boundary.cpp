#include "../layers.h"

namespace convgen::codegen {

Halide::Func zero_extended(const Halide::Func& func, const std::vector<int64_t>& bounded, int unbounded_dims,
                           const std::string& name, const Halide::Expr& fill) {
    const std::vector<Halide::Var> bounded_vars = numbered_vars("d", static_cast<int>(bounded.size()));
    const std::vector<Halide::Var> free_vars = numbered_vars("u", unbounded_dims);
    std::vector<Halide::Var> vars;
    std::vector<Halide::Expr> clamped;
    Halide::Expr inside = Halide::Internal::const_true();
    for (size_t d = 0; d < bounded.size(); d++) {
        const Halide::Var& v = bounded_vars[d];
        vars.push_back(v);
        const int extent = static_cast<int>(bounded[d]);
        inside = inside && v >= 0 && v < extent;
        clamped.push_back(Halide::clamp(v, 0, extent - 1));
    }
    for (const Halide::Var& v : free_vars) {
        vars.push_back(v);
        clamped.push_back(v);
    }
    Halide::Func extended(name);
    std::vector<Halide::Expr> args(vars.begin(), vars.end());
    extended(args) = Halide::select(inside, func(clamped), fill);
    return extended;
}

}  // namespace convgen::codegen
