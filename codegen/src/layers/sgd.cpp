#include "../layers.h"

namespace convgen::codegen {

schedules::ParameterUpdateStages sgd_momentum_update(const std::string& name, const Halide::Func& value,
                                                     const Halide::Func& velocity, const Halide::Func& gradient,
                                                     int dimensions, const Halide::Expr& learning_rate,
                                                     const Halide::Expr& momentum, const Halide::Expr& weight_decay) {
    const std::vector<Halide::Var> vars = numbered_vars("p", dimensions);
    const std::vector<Halide::Expr> args(vars.begin(), vars.end());
    schedules::ParameterUpdateStages stages;
    stages.dimensions = dimensions;
    stages.new_velocity = Halide::Func(name + "_new_velocity");
    stages.new_velocity(args) = momentum * velocity(args) + (gradient(args) + weight_decay * value(args));
    stages.new_value = Halide::Func(name + "_new_value");
    stages.new_value(args) = value(args) - learning_rate * stages.new_velocity(args);
    return stages;
}

Halide::Func sum_of_squares(const std::string& name, const Halide::Func& gradient, const std::vector<int64_t>& extents) {
    Halide::Region region;
    for (int64_t e : extents) region.push_back({0, static_cast<int>(e)});
    Halide::RDom r(region, name + "_r");
    std::vector<Halide::Expr> at;
    for (int d = 0; d < r.dimensions(); d++) at.push_back(r[d]);
    Halide::Func sum(name);
    sum() = 0.0f;
    sum() += gradient(at) * gradient(at);
    return sum;
}

GradientClipping clip_by_global_norm(const std::string& name, const std::vector<Halide::Func>& sums_of_squares,
                                     double max_norm) {
    Halide::Expr total = 0.0f;
    for (const Halide::Func& s : sums_of_squares) total += s();
    GradientClipping clip;
    clip.norm = Halide::Func(name + "_norm");
    clip.norm() = Halide::sqrt(total);
    clip.scale = Halide::Func(name + "_scale");
    clip.scale() = Halide::min(1.0f, static_cast<float>(max_norm) / (clip.norm() + 1e-6f));
    return clip;
}

Halide::Func scaled_by_scalar(const Halide::Func& value, const Halide::Func& scale, int dimensions) {
    const std::vector<Halide::Var> vars = numbered_vars("s", dimensions);
    const std::vector<Halide::Expr> args(vars.begin(), vars.end());
    Halide::Func scaled(value.name() + "_clipped");
    scaled(args) = value(args) * scale();
    return scaled;
}

}  // namespace convgen::codegen
