// Element-wise activations. Each adjoint is written on the output y, so the input need not be
// kept for the backward pass:
//   relu        y = max(x, 0)             dx = dy * [y > 0]  (PyTorch's choice at exactly 0)
//   relu6       y = min(max(x, 0), 6)     dx = dy * [0 < y < 6]
//   leaky_relu  y = x > 0 ? x : a * x     dx = y > 0 ? dy : a * dy   (a >= 0, so sign(y) = sign(x) or y = 0)
//   tanh        y = tanh(x)               dx = dy * (1 - y^2)
//   sigmoid     y = 1 / (1 + exp(-x))     dx = dy * y * (1 - y)
#include "../layers.h"

namespace convgen::codegen {

using Halide::Expr;

namespace {

std::vector<Expr> pointwise_args(const Value& value) {
    std::vector<Halide::Var> vars = sample_vars(value);
    vars.push_back(Dims::n);
    return std::vector<Expr>(vars.begin(), vars.end());
}

}  // namespace

Halide::Func activation_forward(const std::string& name, const Value& input, const ActivationAttributes& a) {
    const std::vector<Expr> args = pointwise_args(input);
    const Expr x = input.func(args);
    Expr y;
    switch (a.function) {
        case Activation::relu:
            y = Halide::max(x, 0.0f);
            break;
        case Activation::relu6:
            y = Halide::clamp(x, 0.0f, 6.0f);
            break;
        case Activation::leaky_relu:
            y = Halide::select(x > 0.0f, x, x * static_cast<float>(a.negative_slope));
            break;
        case Activation::tanh:
            y = Halide::tanh(x);
            break;
        case Activation::sigmoid:
            y = 1.0f / (1.0f + Halide::exp(-x));
            break;
    }
    Halide::Func out(name);
    out(args) = y;
    return out;
}

Halide::Func activation_backward(const std::string& name, const ActivationAttributes& a, const Value& output,
                                 const Value& output_grad) {
    const std::vector<Expr> args = pointwise_args(output);
    const Expr y = output.func(args), dy = output_grad.func(args);
    Expr dx;
    switch (a.function) {
        case Activation::relu:
            dx = Halide::select(y > 0.0f, dy, 0.0f);
            break;
        case Activation::relu6:
            dx = Halide::select(y > 0.0f && y < 6.0f, dy, 0.0f);
            break;
        case Activation::leaky_relu:
            dx = Halide::select(y > 0.0f, dy, dy * static_cast<float>(a.negative_slope));
            break;
        case Activation::tanh:
            dx = dy * (1.0f - y * y);
            break;
        case Activation::sigmoid:
            dx = dy * y * (1.0f - y);
            break;
    }
    Halide::Func grad(name + "_input_grad");
    grad(args) = dx;
    return grad;
}

}  // namespace convgen::codegen
