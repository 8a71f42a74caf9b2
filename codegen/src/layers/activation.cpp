// relu: out = max(in, 0); d_in = d_out where out > 0, else 0 (PyTorch's choice at exactly 0).
#include "../layers.h"

namespace convgen::codegen {

Halide::Func relu_forward(const std::string& name, const Value& input) {
    std::vector<Halide::Var> vars = sample_vars(input);
    vars.push_back(Dims::n);
    const std::vector<Halide::Expr> args(vars.begin(), vars.end());
    Halide::Func out(name);
    out(args) = Halide::max(input.func(args), 0.0f);
    return out;
}

Halide::Func relu_backward(const std::string& name, const Value& output, const Value& output_grad) {
    std::vector<Halide::Var> vars = sample_vars(output);
    vars.push_back(Dims::n);
    const std::vector<Halide::Expr> args(vars.begin(), vars.end());
    Halide::Func grad(name + "_input_grad");
    grad(args) = Halide::select(output.func(args) > 0.0f, output_grad.func(args), 0.0f);
    return grad;
}

}  // namespace convgen::codegen
