// Batch normalisation, per channel c over the M = batch * height * width values of the batch
// (M = batch for feature vectors), as PyTorch's BatchNorm:
//   training:  mean = sum x / M,  var = sum (x - mean)^2 / M,  rstd = 1 / sqrt(var + eps)
//              y = (x - mean) * rstd * gamma + beta
//              running_mean' = (1 - m) running_mean + m mean
//              running_var'  = (1 - m) running_var  + m var * M / (M - 1)   (unbiased, as PyTorch)
//   backward:  xhat = (x - mean) * rstd,  dbeta = sum dy,  dgamma = sum dy * xhat
//              dx = gamma * rstd * (dy - dbeta / M - xhat * dgamma / M)
//   inference: y = x * scale + shift,  scale = gamma / sqrt(running_var + eps),
//              shift = beta - running_mean * scale; folded into the conv before it where possible.
#include "../layers.h"

namespace convgen::codegen {

using Halide::Expr;
using Halide::Func;
using Halide::RDom;

namespace {

// The reduction over everything but the channel: (x, y, n) for images, n for features.
RDom batch_reduction(const Value& value, const Expr& batch, const std::string& name) {
    if (value.extents.size() == 3) {
        return RDom(0, static_cast<int>(value.extents[1]), 0, static_cast<int>(value.extents[2]), 0, batch, name);
    }
    return RDom(0, batch, name);
}

Expr read_at(const Func& func, const Expr& c, const RDom& r) {
    if (r.dimensions() == 3) return func(c, r.x, r.y, r.z);
    return func(c, r.x);
}

Expr count(const Value& value, const Expr& batch) {
    Expr m = Halide::cast<float>(batch);
    for (size_t d = 1; d < value.extents.size(); d++) m = m * static_cast<float>(value.extents[d]);
    return m;
}

std::vector<Expr> pointwise_args(const Value& value) {
    std::vector<Halide::Var> vars = sample_vars(value);
    vars.push_back(Dims::n);
    return std::vector<Expr>(vars.begin(), vars.end());
}

}  // namespace

schedules::BatchNormStages batch_norm_training(const std::string& name, const Value& input,
                                               const BatchNormParameters& p, const BatchNormAttributes& a,
                                               const Expr& batch) {
    const Halide::Var& c = Dims::c;
    schedules::BatchNormStages s;
    s.channels = input.extents[0];
    const Expr m = count(input, batch);

    const RDom r_mean = batch_reduction(input, batch, name + "_mean_r");
    s.mean = Func(name + "_mean");
    s.mean(c) = 0.0f;
    s.mean(c) += read_at(input.func, c, r_mean);
    Func mean(name + "_mean_scaled");
    mean(c) = s.mean(c) / m;

    const RDom r_var = batch_reduction(input, batch, name + "_variance_r");
    s.variance = Func(name + "_variance");
    s.variance(c) = 0.0f;
    const Expr centred = read_at(input.func, c, r_var) - mean(c);
    s.variance(c) += centred * centred;
    Func variance(name + "_variance_scaled");
    variance(c) = s.variance(c) / m;

    Func scale(name + "_scale"), shift(name + "_shift");
    scale(c) = p.weight(c) / Halide::sqrt(variance(c) + static_cast<float>(a.epsilon));
    shift(c) = p.bias(c) - mean(c) * scale(c);
    s.scale = scale;
    s.shift = shift;
    s.mean_of_batch = mean;
    s.variance_of_batch = variance;

    const std::vector<Expr> args = pointwise_args(input);
    s.output = Func(name);
    s.output(args) = input.func(args) * scale(args[0]) + shift(args[0]);

    const float momentum = static_cast<float>(a.momentum);
    s.new_running_mean = Func(name + "_new_running_mean");
    s.new_running_mean(c) = (1.0f - momentum) * p.running_mean(c) + momentum * mean(c);
    s.new_running_var = Func(name + "_new_running_var");
    s.new_running_var(c) =
        (1.0f - momentum) * p.running_var(c) + momentum * variance(c) * (m / Halide::max(m - 1.0f, 1.0f));
    return s;
}

schedules::BatchNormBackwardStages batch_norm_backward(const std::string& name,
                                                       const schedules::BatchNormStages& forward, const Value& input,
                                                       const BatchNormParameters& p, const BatchNormAttributes& a,
                                                       const Value& output_grad, const Expr& batch) {
    const Halide::Var& c = Dims::c;
    schedules::BatchNormBackwardStages s;
    s.channels = forward.channels;
    const Expr m = count(input, batch);
    Func rstd(name + "_rstd");
    rstd(c) = 1.0f / Halide::sqrt(forward.variance_of_batch(c) + static_cast<float>(a.epsilon));
    s.rstd = rstd;

    const RDom r_sum = batch_reduction(input, batch, name + "_grad_sum_r");
    s.grad_sum = Func(name + "_bias_grad");
    s.grad_sum(c) = 0.0f;
    s.grad_sum(c) += read_at(output_grad.func, c, r_sum);

    const RDom r_dot = batch_reduction(input, batch, name + "_grad_dot_r");
    s.grad_dot_normalised = Func(name + "_weight_grad");
    s.grad_dot_normalised(c) = 0.0f;
    s.grad_dot_normalised(c) +=
        read_at(output_grad.func, c, r_dot) * (read_at(input.func, c, r_dot) - forward.mean_of_batch(c)) * rstd(c);

    const std::vector<Expr> args = pointwise_args(input);
    const Expr ch = args[0];
    const Expr normalised = (input.func(args) - forward.mean_of_batch(ch)) * rstd(ch);
    s.input_grad = Func(name + "_input_grad");
    s.input_grad(args) = p.weight(ch) * rstd(ch) *
                         (output_grad.func(args) - s.grad_sum(ch) / m - normalised * (s.grad_dot_normalised(ch) / m));
    return s;
}

FoldedBatchNorm batch_norm_folding(const std::string& name, const BatchNormParameters& p,
                                   const BatchNormAttributes& a) {
    const Halide::Var& c = Dims::c;
    FoldedBatchNorm folded;
    folded.scale = Func(name + "_folded_scale");
    folded.scale(c) = p.weight(c) / Halide::sqrt(p.running_var(c) + static_cast<float>(a.epsilon));
    if (p.bias.defined()) {
        folded.shift = Func(name + "_folded_shift");
        folded.shift(c) = p.bias(c) - p.running_mean(c) * folded.scale(c);
    }
    return folded;
}

Func channel_affine(const std::string& name, const Value& input, const FoldedBatchNorm& folded) {
    const std::vector<Expr> args = pointwise_args(input);
    Func out(name);
    out(args) = input.func(args) * folded.scale(args[0]) + folded.shift(args[0]);
    return out;
}

Func channel_affine_input_grad(const std::string& name, const Value& output_grad, const FoldedBatchNorm& folded) {
    const std::vector<Expr> args = pointwise_args(output_grad);
    Func out(name);
    out(args) = output_grad.func(args) * folded.scale(args[0]);
    return out;
}

}  // namespace convgen::codegen
