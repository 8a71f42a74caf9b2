// Layers that join branches of the graph.
//   add:    out = a + b;                         da = db = dout (the lowering sends dout to both)
//   concat: out(c) = input_j(c - offset_j) for the input whose channel range holds c;
//           d input_j(c) = dout(c + offset_j)
#include "../layers.h"

namespace convgen::codegen {

using Halide::Expr;
using Halide::Func;

Func add_forward(const std::string& name, const Value& a, const Value& b) {
    std::vector<Halide::Var> vars = sample_vars(a);
    vars.push_back(Dims::n);
    const std::vector<Expr> args(vars.begin(), vars.end());
    Func out(name);
    out(args) = a.func(args) + b.func(args);
    return out;
}

Func concat_forward(const std::string& name, const std::vector<Value>& inputs) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    // Built from the last input back, each one selected where c falls in its range; the channel
    // index is clamped so every read stays inside its input.
    int64_t offset = 0;
    std::vector<int64_t> offsets;
    for (const Value& v : inputs) {
        offsets.push_back(offset);
        offset += v.extents[0];
    }
    Expr value;
    for (size_t j = inputs.size(); j-- > 0;) {
        const int begin = static_cast<int>(offsets[j]), channels = static_cast<int>(inputs[j].extents[0]);
        const Expr read = inputs[j].func(Halide::clamp(c - begin, 0, channels - 1), x, y, n);
        value = value.defined() ? Halide::select(c < begin + channels, read, value) : read;
    }
    Func out(name);
    out(c, x, y, n) = value;
    return out;
}

Func concat_input_grad(const std::string& name, const Value& output_grad, int64_t channel_offset) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    Func grad(name);
    grad(c, x, y, n) = output_grad.func(c + static_cast<int>(channel_offset), x, y, n);
    return grad;
}

}  // namespace convgen::codegen
