// conv2d with G groups of I = in_channels / G inputs and O = out_channels / G outputs each,
// stride s, padding p and dilation d:
//   out(o, x, y, n) = bias(o) + sum_{i < I, kx, ky} w(o, i, kx, ky) * in(g(o) * I + i, x*s + kx*d - p, y*s + ky*d - p,
//   n)
// with g(o) = o / O the group of output channel o. Without groups (G = 1) the input channel is i.
#include "../layers.h"

namespace convgen::codegen {

using Halide::Expr;
using Halide::Func;
using Halide::RDom;

namespace {

int group_inputs(const ConvGeometry& g) {
    return static_cast<int>(g.in_channels / g.groups);
}
int group_outputs(const ConvGeometry& g) {
    return static_cast<int>(g.out_channels / g.groups);
}

// The input channel that weight input i of output channel o reads.
Expr input_channel(const ConvGeometry& g, const Expr& o, const Expr& i) {
    if (g.groups == 1) return i;
    if (g.depthwise()) return o;
    return (o / group_outputs(g)) * group_inputs(g) + i;
}

}  // namespace

schedules::Conv2dForwardStages conv2d_forward(const std::string& name, const Value& input, const ConvGeometry& g,
                                              const Func& weight, const Func& bias, int weight_block) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    const int stride = static_cast<int>(g.stride), padding = static_cast<int>(g.padding),
              dilation = static_cast<int>(g.dilation);
    schedules::Conv2dForwardStages stages;
    stages.geometry = g;
    stages.padded_input = zero_extended(input, name + "_padded_input");
    stages.weight = zero_extended(weight, {g.out_channels, group_inputs(g), g.kernel, g.kernel}, 0, name + "_weight");
    stages.reduction =
        RDom(0, group_inputs(g), 0, static_cast<int>(g.kernel), 0, static_cast<int>(g.kernel), name + "_r");
    const auto& r = stages.reduction;
    Expr tap = stages.weight(c, r.x, r.y, r.z);
    if (weight_block > 0) {
        // Block b holds output channels [b * B, (b + 1) * B) for every (i, kx, ky): a run of B
        // output channels reads one contiguous stretch of weights through the whole reduction.
        const auto& [i, kx, ky] = std::tie(Dims::i, Dims::kx, Dims::ky);
        Halide::Var lane("lane"), block("block");
        stages.weight_blocks = Func(name + "_weight_blocks");
        stages.weight_blocks(lane, i, kx, ky, block) = stages.weight(block * weight_block + lane, i, kx, ky);
        tap = stages.weight_blocks(c % weight_block, r.x, r.y, r.z, c / weight_block);
    }

    Func out(name);
    // Bias and weights are zero-extended like the input: a schedule may round the channel loop up.
    out(c, x, y, n) = bias.defined() ? zero_extended(bias, {g.out_channels}, 0, name + "_bias")(c) : Expr(0.0f);
    out(c, x, y, n) += tap * stages.padded_input(input_channel(g, c, r.x), x * stride + r.y * dilation - padding,
                                                 y * stride + r.z * dilation - padding, n);
    stages.output = out;
    return stages;
}

schedules::Conv2dBackwardStages conv2d_backward(const std::string& name, const schedules::Conv2dForwardStages& forward,
                                                const Value& output_grad, bool need_weight_grad, bool has_bias,
                                                bool need_input_grad, const Expr& batch) {
    const auto& [c, x, y, n] = std::tie(Dims::c, Dims::x, Dims::y, Dims::n);
    const auto& [o, i, kx, ky] = std::tie(Dims::o, Dims::i, Dims::kx, Dims::ky);
    const ConvGeometry& g = forward.geometry;
    const int stride = static_cast<int>(g.stride), padding = static_cast<int>(g.padding),
              dilation = static_cast<int>(g.dilation);
    schedules::Conv2dBackwardStages stages;
    stages.geometry = g;
    stages.weight = forward.weight;
    stages.padded_input = forward.padded_input;

    if (need_weight_grad) {
        // dW(o, i, kx, ky) = sum_{x, y, n} dout(o, x, y, n) * in(g(o) * I + i, x*s + kx*d - p, y*s + ky*d - p, n)
        stages.weight_grad_reduction =
            RDom(0, static_cast<int>(g.out_width), 0, static_cast<int>(g.out_height), 0, batch, name + "_weight_grad_r");
        const auto& rw = stages.weight_grad_reduction;
        stages.weight_grad = Func(name + "_weight_grad");
        stages.weight_grad(o, i, kx, ky) = 0.0f;
        stages.weight_grad(o, i, kx, ky) +=
            output_grad.func(o, rw.x, rw.y, rw.z) * forward.padded_input(input_channel(g, o, i),
                                                                         rw.x * stride + kx * dilation - padding,
                                                                         rw.y * stride + ky * dilation - padding, rw.z);

        if (has_bias) {
            stages.bias_grad_reduction =
                RDom(0, static_cast<int>(g.out_width), 0, static_cast<int>(g.out_height), 0, batch, name + "_bias_grad_r");
            const auto& rb = stages.bias_grad_reduction;
            stages.bias_grad = Func(name + "_bias_grad");
            stages.bias_grad(o) = 0.0f;
            stages.bias_grad(o) += output_grad.func(o, rb.x, rb.y, rb.z);
        }
    }

    if (need_input_grad) {
        // din(c, x, y, n) = sum_{j < O, kx, ky} w(o, c mod I, kx, ky) * dout(o, (x + p - kx*d)/s, (y + p - ky*d)/s, n)
        // with o = g(c) * O + j the outputs of c's group, over the output positions whose window
        // covers (x, y).
        stages.padded_output_grad = zero_extended(output_grad, name + "_padded_output_grad");
        stages.input_grad_reduction = RDom(0, group_outputs(g), 0, static_cast<int>(g.kernel), 0,
                                           static_cast<int>(g.kernel), name + "_input_grad_r");
        const auto& r = stages.input_grad_reduction;
        Expr out_channel = r.x, weight_input = c;
        if (g.depthwise()) {
            out_channel = c;
            weight_input = 0;
        } else if (g.groups > 1) {
            out_channel = (c / group_inputs(g)) * group_outputs(g) + r.x;
            weight_input = c % group_inputs(g);
        }
        Expr source_x = x + padding - r.y * dilation, source_y = y + padding - r.z * dilation;
        Expr term = forward.weight(out_channel, weight_input, r.y, r.z) *
                    stages.padded_output_grad(out_channel, source_x / stride, source_y / stride, n);
        if (stride > 1) term = select(source_x % stride == 0 && source_y % stride == 0, term, 0.0f);
        stages.input_grad = Func(name + "_input_grad");
        stages.input_grad(c, x, y, n) = 0.0f;
        stages.input_grad(c, x, y, n) += term;
    }
    return stages;
}

}  // namespace convgen::codegen
