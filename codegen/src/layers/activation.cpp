// Element-wise activations. Where it can be, the adjoint is written on the output y, so the input
// need not be kept for the backward pass:
//   relu        y = max(x, 0)             dx = dy * [y > 0]  (PyTorch's choice at exactly 0)
//   relu6       y = min(max(x, 0), 6)     dx = dy * [0 < y < 6]
//   leaky_relu  y = x > 0 ? x : a * x     dx = y > 0 ? dy : a * dy   (a >= 0, so sign(y) = sign(x) or y = 0)
//   tanh        y = tanh(x)               dx = dy * (1 - y^2)
//   sigmoid     y = 1 / (1 + exp(-x))     dx = dy * y * (1 - y)
// Two are not one-to-one, so their adjoints read the input x:
//   silu        y = x * s, s = sigmoid(x) dx = dy * s * (1 + x * (1 - s))
//   hard_swish  y = x * relu6(x + 3) / 6  dx = dy * (x < -3 ? 0 : x <= 3 ? x / 3 + 1/2 : 1)  (PyTorch's at the kinks)
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
        case Activation::silu:
            y = x / (1.0f + Halide::exp(-x));
            break;
        case Activation::hard_swish:
            y = x * Halide::clamp(x + 3.0f, 0.0f, 6.0f) * (1.0f / 6.0f);
            break;
    }
    Halide::Func out(name);
    out(args) = y;
    return out;
}

Halide::Func activation_backward(const std::string& name, const ActivationAttributes& a, const Value& input,
                                 const Value& output, const Value& output_grad) {
    const std::vector<Expr> args = pointwise_args(output_grad);
    const Expr dy = output_grad.func(args);
    const Expr x = adjoint_reads_input(a.function) ? input.func(args) : Expr();
    const Expr y = adjoint_reads_input(a.function) ? Expr() : output.func(args);
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
        case Activation::silu: {
            const Expr s = 1.0f / (1.0f + Halide::exp(-x));
            dx = dy * s * (1.0f + x * (1.0f - s));
            break;
        }
        case Activation::hard_swish:
            dx = Halide::select(x < -3.0f, 0.0f, x <= 3.0f, dy * (x * (1.0f / 3.0f) + 0.5f), dy);
            break;
    }
    Halide::Func grad(name + "_input_grad");
    grad(args) = dx;
    return grad;
}

}  // namespace convgen::codegen
