// The math of every layer kind: forward and adjoint definitions as Halide Funcs, one file per kind
// (private to codegen). How the Funcs run is decided later, by schedules/.
//
// The adjoints are written by hand rather than derived with Halide::propagate_adjoints: the
// derived ones cannot differentiate max-pooling written as an RDom maximum, and they come out as
// scatter-shaped updates that schedule poorly. Hand-written ones are gathers (each gradient
// element is one reduction) which vectorise and parallelise like the forward pass.
#pragma once

#include "value.h"

#include <convgen/augmentation.h>
#include <convgen/graph.h>
#include <convgen/schedules/stages.h>

#include <string>

namespace convgen::codegen {

using schedules::ConvGeometry;
using schedules::PoolGeometry;

// Zero outside [0, extent) in every per-sample dim, so that reads beyond a tensor (padding, or
// lanes past the last channel when a schedule rounds a loop up to a vector) are defined.
// `bounded` holds the extents of the leading dims; `unbounded_dims` trailing dims (the batch) pass through.
Halide::Func zero_extended(const Halide::Func& func, const std::vector<int64_t>& bounded, int unbounded_dims,
                           const std::string& name, const Halide::Expr& fill = 0.0f);
// The same, but the channel index (the first dim) is not clamped, only promised to Halide's
// bounds inference to lie in [0, extent): a vector of channels rounded up past the last one is one
// load running on into the next pixel's channels, its lanes past the end replaced by `fill`,
// instead of a gather. Only for a tensor that may be read a vector past its last element: the
// library's workspace tensors on a CPU (model_library.cpp.in: Workspace::reserved).
Halide::Func channel_overread_extended(const Halide::Func& func, const std::vector<int64_t>& bounded,
                                       int unbounded_dims, const std::string& name, const Halide::Expr& fill);
inline Halide::Func zero_extended(const Value& value, const std::string& name, const Halide::Expr& fill = 0.0f) {
    return zero_extended(value.func, value.extents, 1, name, fill);
}
// An image extended with `fill` outside [0, W) x [0, H) only, for a consumer that reads each
// channel at its own index (a pool): past the last channel it reads the image's own values, which
// every Value defines (zeros, its inputs being zero-extended), instead of a clamped channel index
// that a vectorised loop can only gather.
Halide::Func spatially_extended(const Value& image, const std::string& name, const Halide::Expr& fill = 0.0f);

// Conv2d, (c, x, y, n) input, OIHW weights held as (o, i, kx, ky) with i over the group's inputs;
// `bias` may be undefined. The backward pass defines only the gradients asked for (a frozen
// layer needs no weight gradient; the first layer no input gradient); the bias gradient is the
// sum per channel of `bias_grad_source` (none where its func is undefined): the output gradient,
// or, under a max pool, the pool's own, which sums alike (each window's gradient goes whole to one
// of its inputs) over fewer pixels. `algorithm`
// (schedules::conv2d_algorithm) says whether the forward reads its weights in blocks of output
// channels and whether it is Winograd's; the backward pass does not depend on it. With
// `prepared` (a flat float array, conv2d_prepare_weights' layout for `algorithm`) the forward
// reads its weights from there and `weight` is not read (may be undefined).
schedules::Conv2dForwardStages conv2d_forward(const std::string& name, const Value& input, const ConvGeometry& geometry,
                                              const Halide::Func& weight, const Halide::Func& bias,
                                              const schedules::ConvAlgorithm& algorithm,
                                              const Halide::Func& prepared = Halide::Func());
// The weights `algorithm` reads in blocks (or Winograd-transformed), as one flat array over (j)
// (Conv2dPreparationStages), for conv2d_forward's `prepared`; nothing when `algorithm` reads the
// weights as they are.
schedules::Conv2dPreparationStages conv2d_prepare_weights(const std::string& name, const ConvGeometry& geometry,
                                                          const Halide::Func& weight,
                                                          const schedules::ConvAlgorithm& algorithm);
// Floats conv2d_prepare_weights' array has for `algorithm` (0: none prepared), and at most for
// any algorithm a target of this vector width may choose.
int64_t prepared_weight_elements(const ConvGeometry& geometry, const schedules::ConvAlgorithm& algorithm);
int64_t prepared_weight_bound(const ConvGeometry& geometry, int vector_width);
// `input_grad_algorithm` (schedules::conv2d_input_grad_algorithm): the input gradient as
// Winograd's conv of the output gradient (Conv2dBackwardStages::input_grad_winograd), or the
// direct sum; `weight_grad_algorithm` (schedules::conv2d_weight_grad_algorithm): the weight
// gradient by Winograd's transforms (Conv2dBackwardStages::weight_grad_winograd), or the direct sum.
schedules::Conv2dBackwardStages conv2d_backward(const std::string& name, const schedules::Conv2dForwardStages& forward,
                                                const Value& output_grad, bool need_weight_grad,
                                                const Value& bias_grad_source, bool need_input_grad,
                                                const Halide::Expr& batch,
                                                const schedules::ConvAlgorithm& input_grad_algorithm = {},
                                                const schedules::ConvAlgorithm& weight_grad_algorithm = {});

// Max pooling; with `with_argmax` the output is a Tuple (max, index of the first maximum in the
// window in row-major order), the index being what the backward pass needs.
schedules::PoolForwardStages max_pool_forward(const std::string& name, const Value& input, const PoolGeometry& geometry,
                                              bool with_argmax);
schedules::PoolBackwardStages max_pool_backward(const std::string& name, const schedules::PoolForwardStages& forward,
                                                const Value& output_grad);
// Average pooling divides by the window's size: with geometry.count_include_pad the padded
// positions count, never a ceil_mode window's part past the padding (PyTorch's avg_pool2d).
schedules::PoolForwardStages avg_pool_forward(const std::string& name, const Value& input,
                                              const PoolGeometry& geometry);
schedules::PoolBackwardStages avg_pool_backward(const std::string& name, const PoolGeometry& geometry,
                                                const Value& output_grad);

// Dense over every per-sample dim of its input (a flattened image is read in place); the
// weight is held as (o, input dims...) and `bias` may be undefined.
schedules::DenseForwardStages dense_forward(const std::string& name, const Value& input, int64_t out_features,
                                            const Halide::Func& weight, const Halide::Func& bias);
schedules::DenseBackwardStages dense_backward(const std::string& name, const Value& input, int64_t out_features,
                                              const Halide::Func& weight, const Value& output_grad,
                                              bool need_weight_grad, bool has_bias, bool need_input_grad,
                                              const Halide::Expr& batch);

// Element-wise activations. An adjoint reads the activation's output, or its input where
// adjoint_reads_input(function); the other may be left undefined.
Halide::Func activation_forward(const std::string& name, const Value& input, const ActivationAttributes& attributes);
Halide::Func activation_backward(const std::string& name, const ActivationAttributes& attributes, const Value& input,
                                 const Value& output, const Value& output_grad);

// A batch-norm layer's tensors, each over the channel (c).
struct BatchNormParameters {
    Halide::Func weight, bias, running_mean, running_var;
};
// Training: normalised with the batch's statistics; the running statistics' updates are outputs.
schedules::BatchNormStages batch_norm_training(const std::string& name, const Value& input,
                                               const BatchNormParameters& parameters,
                                               const BatchNormAttributes& attributes, const Halide::Expr& batch);
schedules::BatchNormBackwardStages batch_norm_backward(const std::string& name,
                                                       const schedules::BatchNormStages& forward, const Value& input,
                                                       const BatchNormParameters& parameters,
                                                       const BatchNormAttributes& attributes, const Value& output_grad,
                                                       const Halide::Expr& batch);
// Inference: y = x * scale(c) + shift(c) from the running statistics; a conv before it takes
// scale into its weights and shift into its bias.
struct FoldedBatchNorm {
    Halide::Func scale, shift;  // (c); shift undefined where the parameters hold no bias and mean
};
FoldedBatchNorm batch_norm_folding(const std::string& name, const BatchNormParameters& parameters,
                                   const BatchNormAttributes& attributes);
Halide::Func channel_affine(const std::string& name, const Value& input, const FoldedBatchNorm& folded);
// The input gradient of a batch norm with fixed statistics (frozen, or at inference): the output
// gradient times the scale.
Halide::Func channel_affine_input_grad(const std::string& name, const Value& output_grad,
                                       const FoldedBatchNorm& folded);

// Dropout's per-step inputs: the seed of the step's mask and whether dropout is on.
struct DropoutControl {
    Halide::Expr seed;     // uint32
    Halide::Expr enabled;  // bool
};
// The factor each element is multiplied by, forward and backward: 0 or 1 / (1 - rate), drawn per
// element, or per sample for drop-path.
Halide::Func dropout_factor(const std::string& name, const Value& input, const DropoutAttributes& attributes,
                            const DropoutControl& control);
Halide::Func scaled_by(const std::string& name, const Value& value, const Halide::Func& factor);

// The training augmentation of a batch of images (c, x, y, n): `seed` (uint32) is the step's,
// and where `enabled` (bool) is false the images pass unchanged.
schedules::AugmentationStages augment_images(const Value& images, const Augmentation& augmentation,
                                             const Halide::Expr& seed, const Halide::Expr& enabled);

schedules::GlobalPoolStages global_avg_pool_forward(const std::string& name, const Value& input);
Halide::Func global_avg_pool_backward(const std::string& name, const Value& input, const Value& output_grad);

Halide::Func add_forward(const std::string& name, const Value& a, const Value& b);
// Images joined along the channels; the gradient of input j is the slice at its channel offset.
Halide::Func concat_forward(const std::string& name, const std::vector<Value>& inputs);
Halide::Func concat_input_grad(const std::string& name, const Value& output_grad, int64_t channel_offset);
// out(c, x, y, n) = in(c, x, y, n) * scale(c, 0, 0, n). The input's gradient is dout * scale; the
// scale's is a sum over the image, held as a GlobalPoolStages (its sum over (c, n), its output
// over (c, x, y, n) with x = y = 0) to be scheduled as a global pool is.
Halide::Func channel_scale_forward(const std::string& name, const Value& input, const Value& scale);
Halide::Func channel_scale_input_grad(const std::string& name, const Value& scale, const Value& output_grad);
schedules::GlobalPoolStages channel_scale_scale_grad(const std::string& name, const Value& input,
                                                     const Value& output_grad);

// Softmax cross-entropy against int32 labels, mean over the batch.
schedules::LossStages softmax_cross_entropy(const std::string& name, const Value& logits, const Halide::Func& labels,
                                            const Halide::Expr& batch, bool training);

// SGD with momentum and weight decay, PyTorch's formulation (dampening 0, no Nesterov):
// v' = momentum * v + (g + weight_decay * w);  w' = w - learning_rate * v'.
schedules::ParameterUpdateStages sgd_momentum_update(const std::string& name, const Halide::Func& value,
                                                     const Halide::Func& velocity, const Halide::Func& gradient,
                                                     int dimensions, const Halide::Expr& learning_rate,
                                                     const Halide::Expr& momentum, const Halide::Expr& weight_decay);

// Gradient clipping by global norm (PyTorch's clip_grad_norm_): the sum of squares of one
// gradient (0-D), and from all of them the norm and the factor min(1, max_norm / (norm + 1e-6)).
Halide::Func sum_of_squares(const std::string& name, const Halide::Func& gradient, const std::vector<int64_t>& extents);
struct GradientClipping {
    Halide::Func norm, scale;  // 0-D
};
GradientClipping clip_by_global_norm(const std::string& name, const std::vector<Halide::Func>& sums_of_squares,
                                     double max_norm);
Halide::Func scaled_by_scalar(const Halide::Func& value, const Halide::Func& scale, int dimensions);

}  // namespace convgen::codegen
