#include "../layers.h"

#include <optional>

namespace convgen::codegen {

namespace {

// `func` read with each dim clamped to [0, extent) and `fill` outside; a dim without an extent
// passes through unclamped. With `channels_promised`, the first dim is only promised to lie there
// (see channel_overread_extended).
Halide::Func extended(const Halide::Func& func, const std::vector<std::optional<int64_t>>& extents,
                      const std::string& name, const Halide::Expr& fill, bool channels_promised = false) {
    const std::vector<Halide::Var> vars = numbered_vars("d", static_cast<int>(extents.size()));
    std::vector<Halide::Expr> clamped;
    Halide::Expr inside = Halide::Internal::const_true();
    for (size_t d = 0; d < extents.size(); d++) {
        const Halide::Var& v = vars[d];
        if (!extents[d]) {
            clamped.push_back(v);
            continue;
        }
        const int extent = static_cast<int>(*extents[d]);
        inside = inside && v >= 0 && v < extent;
        clamped.push_back(d == 0 && channels_promised ? Halide::unsafe_promise_clamped(v, 0, extent - 1)
                                                      : Halide::clamp(v, 0, extent - 1));
    }
    Halide::Func result(name);
    std::vector<Halide::Expr> args(vars.begin(), vars.end());
    result(args) = Halide::select(inside, func(clamped), fill);
    return result;
}

// `bounded` extents, then `unbounded_dims` without one.
std::vector<std::optional<int64_t>> leading_extents(const std::vector<int64_t>& bounded, int unbounded_dims) {
    std::vector<std::optional<int64_t>> extents(bounded.begin(), bounded.end());
    extents.resize(bounded.size() + unbounded_dims);
    return extents;
}

}  // namespace

Halide::Func zero_extended(const Halide::Func& func, const std::vector<int64_t>& bounded, int unbounded_dims,
                           const std::string& name, const Halide::Expr& fill) {
    return extended(func, leading_extents(bounded, unbounded_dims), name, fill);
}

Halide::Func channel_overread_extended(const Halide::Func& func, const std::vector<int64_t>& bounded,
                                       int unbounded_dims, const std::string& name, const Halide::Expr& fill) {
    return extended(func, leading_extents(bounded, unbounded_dims), name, fill, true);
}

Halide::Func spatially_extended(const Value& image, const std::string& name, const Halide::Expr& fill) {
    return extended(image.func, {std::nullopt, image.extents[1], image.extents[2], std::nullopt}, name, fill);
}

}  // namespace convgen::codegen
