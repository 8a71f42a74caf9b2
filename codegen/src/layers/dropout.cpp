// Dropout: y = x * f, dx = dy * f, with f = 1 / (1 - rate) where the element is kept and 0 where
// it is dropped (and f = 1 when dropout is switched off). The keep decision is a hash of the
// element's index (the sample's, for drop-path), the layer and the step's seed (a counter-based
// generator), so the backward pass recomputes the same mask instead of storing it, and a run is
// reproducible from its seed.
#include "../layers.h"
#include "random.h"

namespace convgen::codegen {

using Halide::Expr;

Halide::Func dropout_factor(const std::string& name, const Value& input, const DropoutAttributes& attributes,
                            const DropoutControl& control) {
    const double rate = attributes.rate;
    std::vector<Halide::Var> vars = sample_vars(input);
    vars.push_back(Dims::n);
    // The element's index in the batch, per-sample dims in memory order then the sample.
    Expr index = Halide::cast<uint32_t>(vars.back());
    for (size_t d = vars.size() - 1; d-- > 0 && !attributes.per_sample;) {
        index = index * random::u32(static_cast<uint32_t>(input.extents[d])) + Halide::cast<uint32_t>(vars[d]);
    }
    const Expr uniform = random::uniform(random::key(control.seed, random::name_hash(name)), index);
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
