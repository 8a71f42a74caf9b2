// Each stage kind's schedule for the target in the context: the CPU set or the CUDA set.
#include <convgen/schedules/cpu.h>
#include <convgen/schedules/gpu.h>

namespace convgen::schedules {

namespace {

bool on_gpu(const Context& context) {
    return context.gpu() && !context.unscheduled;
}

}  // namespace

bool schedule_conv2d_forward(Conv2dForwardStages stages, const Context& context, const PoolForwardStages* fused_pool,
                             bool row_consumer) {
    return on_gpu(context) ? gpu::schedule_conv2d_forward(stages, context, fused_pool, row_consumer)
                           : cpu::schedule_conv2d_forward(stages, context, fused_pool, row_consumer);
}

ConvAlgorithm conv2d_algorithm(const Context& context, const ConvGeometry& geometry, bool fused_pool) {
    return on_gpu(context) ? gpu::conv2d_algorithm(context, geometry, fused_pool)
                           : cpu::conv2d_algorithm(context, geometry, fused_pool);
}

void schedule_conv2d_preparation(Conv2dPreparationStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_conv2d_preparation(stages, context)
                           : cpu::schedule_conv2d_preparation(stages, context);
}

bool schedule_conv2d_backward(Conv2dBackwardStages stages, const Context& context, bool row_consumer) {
    return on_gpu(context) ? gpu::schedule_conv2d_backward(stages, context, row_consumer)
                           : cpu::schedule_conv2d_backward(stages, context, row_consumer);
}

ConvAlgorithm conv2d_input_grad_algorithm(const Context& context, const ConvGeometry& geometry) {
    return on_gpu(context) ? gpu::conv2d_input_grad_algorithm(context, geometry)
                           : cpu::conv2d_input_grad_algorithm(context, geometry);
}

ConvAlgorithm conv2d_weight_grad_algorithm(const Context& context, const ConvGeometry& geometry) {
    return on_gpu(context) ? gpu::conv2d_weight_grad_algorithm(context, geometry)
                           : cpu::conv2d_weight_grad_algorithm(context, geometry);
}

void schedule_pool_forward(PoolForwardStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_pool_forward(stages, context) : cpu::schedule_pool_forward(stages, context);
}

void schedule_pool_backward(PoolBackwardStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_pool_backward(stages, context)
                           : cpu::schedule_pool_backward(stages, context);
}

void schedule_dense_forward(DenseForwardStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_dense_forward(stages, context)
                           : cpu::schedule_dense_forward(stages, context);
}

void schedule_dense_backward(DenseBackwardStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_dense_backward(stages, context)
                           : cpu::schedule_dense_backward(stages, context);
}

void schedule_elementwise(ElementwiseStage stage, const Context& context) {
    return on_gpu(context) ? gpu::schedule_elementwise(stage, context) : cpu::schedule_elementwise(stage, context);
}

void schedule_gradient_copy(Halide::Func copy, int64_t innermost_extent, const Context& context) {
    return on_gpu(context) ? gpu::schedule_gradient_copy(copy, innermost_extent, context)
                           : cpu::schedule_gradient_copy(copy, innermost_extent, context);
}

void schedule_sums_of_squares(const std::vector<Halide::Func>& sums, const Context& context) {
    return on_gpu(context) ? gpu::schedule_sums_of_squares(sums, context)
                           : cpu::schedule_sums_of_squares(sums, context);
}

void schedule_batch_norm(BatchNormStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_batch_norm(stages, context) : cpu::schedule_batch_norm(stages, context);
}

void schedule_batch_norm_backward(BatchNormBackwardStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_batch_norm_backward(stages, context)
                           : cpu::schedule_batch_norm_backward(stages, context);
}

void schedule_global_pool(GlobalPoolStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_global_pool(stages, context) : cpu::schedule_global_pool(stages, context);
}

void schedule_kernel_output(Halide::Func output, int64_t innermost_extent, const Context& context) {
    return on_gpu(context) ? gpu::schedule_kernel_output(output, innermost_extent, context)
                           : cpu::schedule_kernel_output(output, innermost_extent, context);
}

void compute_per_output_row(Halide::Func stage, Halide::Func output, const Context& context) {
    return on_gpu(context) ? gpu::compute_per_output_row(stage, output, context)
                           : cpu::compute_per_output_row(stage, output, context);
}

void schedule_per_channel(Halide::Func func, const Context& context) {
    return on_gpu(context) ? gpu::schedule_per_channel(func, context) : cpu::schedule_per_channel(func, context);
}

void schedule_state_update(Halide::Func func, const Context& context) {
    return on_gpu(context) ? gpu::schedule_state_update(func, context) : cpu::schedule_state_update(func, context);
}

void schedule_augmentation(AugmentationStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_augmentation(stages, context) : cpu::schedule_augmentation(stages, context);
}

void schedule_loss(LossStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_loss(stages, context) : cpu::schedule_loss(stages, context);
}

void schedule_parameter_update(ParameterUpdateStages stages, const Context& context) {
    return on_gpu(context) ? gpu::schedule_parameter_update(stages, context)
                           : cpu::schedule_parameter_update(stages, context);
}

}  // namespace convgen::schedules
