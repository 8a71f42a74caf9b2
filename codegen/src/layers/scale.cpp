// Channel-wise scaling, the gate of a squeeze-and-excitation block:
//   out(c, x, y, n) = in(c, x, y, n) * s(c, n)
//   d in(c, x, y, n) = dout(c, x, y, n) * s(c, n);   d s(c, n) = sum_{x, y} dout(c, x, y, n) * in(c, x, y, n)
// s is an image [C, 1, 1], read at (c, 0, 0, n).
#include "../layers.h"

namespace convgen::codegen {

using Halide::Func;

Func channel_scale_forward(const std::string& name, const Value& input, const Value& scale) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    Func out(name);
    out(c, x, y, n) = input.func(c, x, y, n) * scale.func(c, 0, 0, n);
    return out;
}

Func channel_scale_input_grad(const std::string& name, const Value& scale, const Value& output_grad) {
    return channel_scale_forward(name, output_grad, scale);
}

schedules::GlobalPoolStages channel_scale_scale_grad(const std::string& name, const Value& input,
                                                     const Value& output_grad) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    const int width = static_cast<int>(input.extents[1]), height = static_cast<int>(input.extents[2]);
    Halide::RDom r(0, width, 0, height, name + "_r");
    schedules::GlobalPoolStages stages;
    stages.channels = input.extents[0];
    stages.sum = Func(name + "_sum");
    stages.sum(c, n) = 0.0f;
    stages.sum(c, n) += output_grad.func(c, r.x, r.y, n) * input.func(c, r.x, r.y, n);
    stages.output = Func(name);
    stages.output(c, x, y, n) = stages.sum(c, n);
    return stages;
}

}  // namespace convgen::codegen
