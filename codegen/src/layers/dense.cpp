// dense: out(o, n) = bias(o) + sum_{i...} w(o, i...) * in(i..., n), over every per-sample dim of
// the input, so a flattened image (c, x, y) is read where it lies.
#include "../layers.h"

namespace convgen::codegen {

using Halide::Expr;
using Halide::Func;
using Halide::RDom;

namespace {

RDom over_extents(const std::vector<int64_t>& extents, const std::string& name) {
    std::vector<Halide::Range> ranges;
    for (int64_t e : extents) ranges.emplace_back(0, static_cast<int>(e));
    return RDom(ranges, name);
}

std::vector<Expr> rdom_args(const RDom& r) {
    std::vector<Expr> args;
    for (int d = 0; d < r.dimensions(); d++) args.push_back(r[d]);
    return args;
}

std::vector<Expr> prepend(const Expr& first, std::vector<Expr> rest) {
    rest.insert(rest.begin(), first);
    return rest;
}

}  // namespace

schedules::DenseForwardStages dense_forward(const std::string& name, const Value& input, int64_t out_features,
                                            const Func& weight, const Func& bias) {
    const auto& [f, n] = std::tie(Dims::f, Dims::n);
    schedules::DenseForwardStages stages;
    stages.in_features = input.elements();
    stages.out_features = out_features;
    stages.reduction = over_extents(input.extents, name + "_r");
    const std::vector<Expr> r = rdom_args(stages.reduction);
    // The weights and bias are read where they lie (the output features innermost, so a vector of
    // outputs is one load), not through a boundary: the sum is defined for the outputs that exist.
    // The layer's output reads it through a zero boundary, as every tensor is read, so a consumer
    // that rounds its loop up to whole vectors sees zeros past the last output.
    stages.sum = Func(name + "_sum");
    stages.sum(f, n) = bias.defined() ? bias(f) : Expr(0.0f);
    stages.sum(f, n) += weight(prepend(f, r)) * input.func(with_batch(r, n));
    stages.output = zero_extended(stages.sum, {out_features}, 1, name);
    return stages;
}

schedules::DenseBackwardStages dense_backward(const std::string& name, const Value& input, int64_t out_features,
                                              const Func& weight, const Value& output_grad, bool need_weight_grad,
                                              bool has_bias, bool need_input_grad, const Expr& batch) {
    const auto& [o, n] = std::tie(Dims::o, Dims::n);
    schedules::DenseBackwardStages stages;
    stages.in_features = input.elements();
    stages.out_features = out_features;
    stages.input_dimensions = static_cast<int>(input.extents.size());
    stages.input_innermost_extent = input.extents[0];
    stages.weight = weight;
    const std::vector<Halide::Var> vars = sample_vars(input);
    const std::vector<Expr> in_args(vars.begin(), vars.end());

    if (need_weight_grad) {
        // dW(o, i...) = sum_n dout(o, n) * in(i..., n)
        stages.weight_grad_reduction = RDom(0, batch, name + "_weight_grad_r");
        const auto& rn = stages.weight_grad_reduction;
        stages.weight_grad = Func(name + "_weight_grad");
        stages.weight_grad(prepend(o, in_args)) = 0.0f;
        stages.weight_grad(prepend(o, in_args)) += output_grad.func(o, rn.x) * input.func(with_batch(in_args, rn.x));

        if (has_bias) {
            stages.bias_grad_reduction = RDom(0, batch, name + "_bias_grad_r");
            stages.bias_grad = Func(name + "_bias_grad");
            stages.bias_grad(o) = 0.0f;
            stages.bias_grad(o) += output_grad.func(o, stages.bias_grad_reduction.x);
        }
    }

    if (need_input_grad) {
        // din(i..., n) = sum_o w(o, i...) * dout(o, n)
        stages.input_grad_reduction = RDom(0, static_cast<int>(out_features), name + "_input_grad_r");
        const auto& ro = stages.input_grad_reduction;
        stages.input_grad = Func(name + "_input_grad");
        stages.input_grad(with_batch(in_args, n)) = 0.0f;
        stages.input_grad(with_batch(in_args, n)) += weight(prepend(ro.x, in_args)) * output_grad.func(ro.x, n);
    }
    return stages;
}

}  // namespace convgen::codegen
