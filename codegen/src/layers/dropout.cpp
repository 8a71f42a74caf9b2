// Dropout: y = x * f, dx = dy * f, with f = 1 / (1 - rate) where the element is kept and 0 where
// it is dropped (and f = 1 when dropout is switched off). The keep decision is a hash of the
// element's index, the layer and the step's seed (a counter-based generator), so the backward
// pass recomputes the same mask instead of storing it, and a run is reproducible from its seed.
#include "../layers.h"

namespace convgen::codegen {

using Halide::Expr;

namespace {

Expr u32(uint32_t value) {
    return Halide::Internal::make_const(Halide::UInt(32), value);
}

// A 32-bit integer hash with good avalanche (the "lowbias32" constants).
Expr mix(Expr v) {
    v = v ^ (v >> 16);
    v = v * u32(0x7feb352du);
    v = v ^ (v >> 15);
    v = v * u32(0x846ca68bu);
    return v ^ (v >> 16);
}

uint32_t name_hash(const std::string& name) {
    uint32_t h = 2166136261u;
    for (unsigned char ch : name) h = (h ^ ch) * 16777619u;
    return h;
}

}  // namespace

Halide::Func dropout_factor(const std::string& name, const Value& input, double rate, const DropoutControl& control) {
    std::vector<Halide::Var> vars = sample_vars(input);
    vars.push_back(Dims::n);
    // The element's index in the batch, per-sample dims in memory order then the sample.
    Expr index = Halide::cast<uint32_t>(vars.back());
    for (size_t d = vars.size() - 1; d-- > 0;) {
        index = index * u32(static_cast<uint32_t>(input.extents[d])) + Halide::cast<uint32_t>(vars[d]);
    }
    const Expr key = mix(control.seed ^ u32(name_hash(name)));
    const Expr uniform = Halide::cast<float>(mix(index ^ key) >> 8) * (1.0f / 16777216.0f);  // [0, 1)
    const Expr kept = Halide::select(uniform >= static_cast<float>(rate), static_cast<float>(1.0 / (1.0 - rate)), 0.0f);
    Halide::Func factor(name + "_factor");
    factor(std::vector<Expr>(vars.begin(), vars.end())) = Halide::select(control.enabled, kept, 1.0f);
    return factor;
}

Halide::Func scaled_by(const std::string& name, const Value& value, const Halide::Func& factor) {
    std::vector<Halide::Var> vars = sample_vars(value);
    vars.push_back(Dims::n);
    const std::vector<Expr> args(vars.begin(), vars.end());
    Halide::Func out(name);
    out(args) = value.func(args) * factor(args);
    return out;
}

}  // namespace convgen::codegen
