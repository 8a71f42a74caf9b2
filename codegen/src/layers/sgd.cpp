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

}  // namespace convgen::codegen
