// Seeing what a network learned: its first layer's filters and a layer's feature maps as PNG
// grids, a confusion matrix and the training curves as SVG. Every file is written atomically;
// a file that cannot be written is a DataError naming it, bad sizes are std::invalid_argument.
#pragma once

#include <convgen/runtime/trainer.h>

#include <cstdint>
#include <string>
#include <vector>

namespace convgen::runtime {

// Convolution filters in PyTorch's OIHW layout (what `<model>_get_parameter(model, "conv1.weight",
// ...)` returns) as a PNG, `scale` pixels per weight, tiles separated by white gaps scale / 4
// pixels wide (at least 1). Each filter is normalised on its own and symmetrically: -max|w| is
// black, 0 mid grey (128), +max|w| white, so the sign of every weight can be read off. Three input
// channels give one RGB tile per filter, one input channel one grey tile per filter (both in a
// square-ish grid); any other number one grey tile per (filter, input channel), a row per filter.
// NaN weights are black.
void write_filter_grid_png(const std::string& path, const float* weights, int64_t out_channels, int64_t in_channels,
                           int64_t kernel_height, int64_t kernel_width, int scale = 8);

// One sample's layer output, height x width x channels floats (channels innermost, NHWC without
// the N) as a PNG of one grey tile per channel, `columns` to a row, `scale` pixels per value,
// separated by white gaps scale / 4 pixels wide (at least 1). Each channel is stretched from its
// own minimum (black) to its maximum (white); a constant channel (a ReLU that never fired, say)
// is black. NaN is black.
void write_feature_maps_png(const std::string& path, const float* maps, int64_t height, int64_t width, int64_t channels,
                            int columns = 8, int scale = 4);

// counts[true class][predicted class] for parallel vectors of predicted and true classes, each
// in [0, classes); throws std::invalid_argument otherwise.
std::vector<std::vector<int64_t>> confusion_matrix(const std::vector<int32_t>& predicted,
                                                   const std::vector<int32_t>& labels, int classes);

// A confusion matrix (rows: true class, columns: predicted class) as SVG: each cell shaded by the
// square root of its share of the row (white 0 to dark blue 1, so that rare confusions show) with
// its count written in it, the class names along both axes and the overall accuracy in the title.
// `counts` must be square with one row per name.
void write_confusion_matrix_svg(const std::string& path, const std::vector<std::vector<int64_t>>& counts,
                                const std::vector<std::string>& class_names);

// train()'s reports as SVG: training loss per epoch, and training and test accuracy in % per
// epoch, in two panels with tick labels and a legend. Reports of a resumed run start at their
// first epoch.
void write_training_curves_svg(const std::string& path, const std::vector<EpochReport>& reports);

}  // namespace convgen::runtime
