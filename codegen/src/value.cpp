#include "value.h"

#include <fmt/format.h>

namespace convgen::codegen {

Halide::Var Dims::c{"c"}, Dims::x{"x"}, Dims::y{"y"}, Dims::n{"n"}, Dims::f{"f"}, Dims::k{"k"};
Halide::Var Dims::o{"o"}, Dims::i{"i"}, Dims::kx{"kx"}, Dims::ky{"ky"};

std::vector<Halide::Expr> with_batch(std::vector<Halide::Expr> sample, const Halide::Expr& batch) {
    sample.push_back(batch);
    return sample;
}

std::vector<Halide::Var> numbered_vars(const char* prefix, int count) {
    std::vector<Halide::Var> vars;
    for (int d = 0; d < count; d++) vars.emplace_back(fmt::format("{}{}", prefix, d));
    return vars;
}

std::vector<Halide::Var> sample_vars(const Value& value) {
    if (value.extents.size() == 3) return {Dims::c, Dims::x, Dims::y};
    return {Dims::f};
}

}  // namespace convgen::codegen
