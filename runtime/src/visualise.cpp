#include "convgen/runtime/visualise.h"

#include "file_io.h"
#include "png_grid.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace convgen::runtime {
namespace {

// Gaps between tiles: white and a quarter of `scale` wide (at least a pixel), so that they read as
// spacing between the blocky tiles; image_grid's grey 128 would be a zero weight here.
constexpr uint8_t gap_white = 255;
int gap_width(int scale) {
    return std::max(1, scale / 4);
}

uint8_t to_byte(double unit) {
    return std::isnan(unit) ? 0 : static_cast<uint8_t>(std::clamp(std::round(unit * 255.0), 0.0, 255.0));
}

void write_text_file(const std::string& path, const std::string& text) {
    detail::write_file_atomically(path, [&](std::ostream& stream) { stream << text; });
}

std::string xml_escape(const std::string& text) {
    std::string escaped;
    for (const char c : text) {
        switch (c) {
            case '&':
                escaped += "&amp;";
                break;
            case '<':
                escaped += "&lt;";
                break;
            case '>':
                escaped += "&gt;";
                break;
            case '"':
                escaped += "&quot;";
                break;
            case '\'':
                escaped += "&apos;";
                break;
            default:
                escaped += c;
        }
    }
    return escaped;
}

std::string svg_begin(double width, double height) {
    return fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} "
        "{1:.0f}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
        "fill=\"white\"/>\n",
        width, height);
}

// An axis from low to high in steps of 1, 2 or 5 times a power of ten, about five of them.
struct Axis {
    double low = 0, high = 1, step = 1;
    int decimals() const { return step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9)); }
};

Axis nice_axis(double low, double high) {
    if (!(high > low)) high = low + 1;
    const double rough = (high - low) / 5;
    const double magnitude = std::pow(10.0, std::floor(std::log10(rough)));
    double step = 10 * magnitude;
    for (const double multiple : {1.0, 2.0, 5.0}) {
        if (multiple * magnitude >= rough) {
            step = multiple * magnitude;
            break;
        }
    }
    return {std::floor(low / step + 1e-9) * step, std::ceil(high / step - 1e-9) * step, step};
}

struct Series {
    std::vector<double> x, y;
    const char* colour;
};

constexpr const char* training_colour = "#1f77b4";
constexpr const char* test_colour = "#ff7f0e";
constexpr double panel_width = 280, panel_height = 200;

// One plot at (left, top): frame, grid lines, tick labels, title, the series as lines with dots.
void draw_panel(std::string& svg, double left, double top, const std::string& title, const Axis& x_axis,
                const Axis& y_axis, const std::vector<Series>& series) {
    const auto px = [&](double x) { return left + (x - x_axis.low) / (x_axis.high - x_axis.low) * panel_width; };
    const auto py = [&](double y) {
        return top + panel_height - (y - y_axis.low) / (y_axis.high - y_axis.low) * panel_height;
    };
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
                       left + panel_width / 2, top - 10, xml_escape(title));
    const auto ticks = [](const Axis& axis) {
        return static_cast<int>(std::round((axis.high - axis.low) / axis.step));
    };
    for (int i = 0; i <= ticks(y_axis); i++) {
        const double value = y_axis.low + i * y_axis.step, y = py(value);
        svg += fmt::format(
            "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n<text x=\"{:.1f}\" "
            "y=\"{:.1f}\" text-anchor=\"end\">{:.{}f}</text>\n",
            left, y, left + panel_width, y, left - 6, y + 4, value, y_axis.decimals());
    }
    for (int i = 0; i <= ticks(x_axis); i++) {
        const double value = x_axis.low + i * x_axis.step;
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.0f}</text>\n", px(value),
                           top + panel_height + 16, value);
    }
    svg += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.0f}\" height=\"{:.0f}\" fill=\"none\" stroke=\"#444\"/>\n"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">epoch</text>\n",
        left, top, panel_width, panel_height, left + panel_width / 2, top + panel_height + 34);
    for (const Series& s : series) {
        std::string points, dots;
        for (size_t i = 0; i < s.x.size(); i++) {
            if (!std::isfinite(s.y[i])) continue;  // a diverged epoch's NaN loss is left out
            points += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
            dots += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", px(s.x[i]), py(s.y[i]),
                                s.colour);
        }
        svg += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n{}", points,
                           s.colour, dots);
    }
}

// The finite values' range as an axis; `from_zero` starts it at 0.
Axis value_axis(const std::vector<Series>& series, bool from_zero) {
    double low = std::numeric_limits<double>::infinity(), high = -low;
    for (const Series& s : series) {
        for (const double y : s.y) {
            if (!std::isfinite(y)) continue;
            low = std::min(low, y);
            high = std::max(high, y);
        }
    }
    if (low > high) return nice_axis(0, 1);
    return nice_axis(from_zero ? std::min(0.0, low) : low, high);
}

}  // namespace

void write_filter_grid_png(const std::string& path, const float* weights, int64_t out_channels, int64_t in_channels,
                           int64_t kernel_height, int64_t kernel_width, int scale) {
    if (weights == nullptr || in_channels < 1) {
        throw std::invalid_argument(
            fmt::format("write_filter_grid_png: {}: expected weights of at least one input "
                        "channel but got {} input channels{}",
                        path, in_channels, weights == nullptr ? " and no weights" : ""));
    }
    const bool colour = in_channels == 3;
    const int64_t tile_size = kernel_height * kernel_width;
    const int64_t filter_size = in_channels * tile_size;
    // One tile per filter (colour or a single channel), else one per (filter, input channel).
    const bool tile_per_filter = colour || in_channels == 1;
    const int64_t tiles = tile_per_filter ? out_channels : out_channels * in_channels;
    const auto square_columns = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(out_channels))));
    const int64_t columns = tile_per_filter ? std::max<int64_t>(1, square_columns) : in_channels;
    const auto draw = [&](int64_t tile, uint8_t* pixels) {
        const int64_t filter = tile_per_filter ? tile : tile / in_channels;
        const float* w = weights + filter * filter_size;
        float largest = 0;
        for (int64_t i = 0; i < filter_size; i++) {
            if (std::isfinite(w[i])) largest = std::max(largest, std::abs(w[i]));
        }
        const auto unit = [&](float value) { return largest > 0 ? 0.5 + 0.5 * value / largest : 0.5; };
        if (colour) {  // OIHW to HWC
            for (int64_t i = 0; i < tile_size; i++) {
                for (int64_t c = 0; c < 3; c++) pixels[i * 3 + c] = to_byte(unit(w[c * tile_size + i]));
            }
        } else {
            const float* channel = w + (tile_per_filter ? 0 : tile % in_channels) * tile_size;
            for (int64_t i = 0; i < tile_size; i++) pixels[i] = to_byte(unit(channel[i]));
        }
    };
    detail::write_png_grid("write_filter_grid_png", path, tiles, kernel_height, kernel_width, colour ? 3 : 1, columns,
                           scale, gap_white, gap_width(scale), draw);
}

void write_feature_maps_png(const std::string& path, const float* maps, int64_t height, int64_t width, int64_t channels,
                            int columns, int scale) {
    if (maps == nullptr) throw std::invalid_argument(fmt::format("write_feature_maps_png: {}: no maps", path));
    const int64_t pixels_per_map = height * width;
    const auto draw = [&](int64_t channel, uint8_t* pixels) {
        float low = std::numeric_limits<float>::infinity(), high = -low;
        for (int64_t i = 0; i < pixels_per_map; i++) {
            const float value = maps[i * channels + channel];
            if (!std::isfinite(value)) continue;
            low = std::min(low, value);
            high = std::max(high, value);
        }
        for (int64_t i = 0; i < pixels_per_map; i++) {
            pixels[i] = high > low ? to_byte((maps[i * channels + channel] - low) / (high - low)) : 0;
        }
    };
    detail::write_png_grid("write_feature_maps_png", path, channels, height, width, 1, columns, scale, gap_white,
                           gap_width(scale), draw);
}

std::vector<std::vector<int64_t>> confusion_matrix(const std::vector<int32_t>& predicted,
                                                   const std::vector<int32_t>& labels, int classes) {
    if (predicted.size() != labels.size() || classes < 1) {
        throw std::invalid_argument(
            fmt::format("confusion_matrix: expected as many predictions as labels and at least one class but got {} "
                        "predictions, {} labels and {} classes",
                        predicted.size(), labels.size(), classes));
    }
    std::vector<std::vector<int64_t>> counts(static_cast<size_t>(classes), std::vector<int64_t>(classes, 0));
    for (size_t i = 0; i < labels.size(); i++) {
        if (labels[i] < 0 || labels[i] >= classes || predicted[i] < 0 || predicted[i] >= classes) {
            throw std::invalid_argument(
                fmt::format("confusion_matrix: sample {} has label {} and prediction {}; classes are 0 to {}", i,
                            labels[i], predicted[i], classes - 1));
        }
        counts[static_cast<size_t>(labels[i])][static_cast<size_t>(predicted[i])]++;
    }
    return counts;
}

void write_confusion_matrix_svg(const std::string& path, const std::vector<std::vector<int64_t>>& counts,
                                const std::vector<std::string>& class_names) {
    const size_t n = class_names.size();
    bool square = n > 0 && counts.size() == n;
    for (const auto& row : counts) {
        square = square && row.size() == n && std::all_of(row.begin(), row.end(), [](int64_t c) { return c >= 0; });
    }
    if (!square) {
        throw std::invalid_argument(
            fmt::format("write_confusion_matrix_svg: {}: expected {} rows of {} counts >= 0, one per class, but got {} "
                        "rows",
                        path, n, n, counts.size()));
    }
    const double cell = std::clamp(520.0 / static_cast<double>(n), 14.0, 44.0);
    const double count_font = std::clamp(cell * 0.3, 7.0, 13.0), name_font = std::min(12.0, cell * 0.8);
    size_t longest = 0;
    for (const auto& name : class_names) longest = std::max(longest, name.size());
    const double name_width = 0.6 * name_font * static_cast<double>(longest);  // a rough sans-serif average
    const bool rotate = name_width > cell - 4;  // column names that do not fit under their cell slant
    const double left = 30 + name_width + 8, top = 40, matrix = cell * static_cast<double>(n);
    const double bottom = 12 + (rotate ? name_width * 0.72 + name_font : name_font) + 24;

    int64_t right = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        right += counts[i][i];
        for (const int64_t c : counts[i]) total += c;
    }
    const double width = std::max(left + matrix + 16, 400.0);  // room for the title
    std::string svg = svg_begin(width, top + matrix + bottom);
    svg +=
        fmt::format("<text x=\"{:.1f}\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">confusion matrix", width / 2);
    if (total > 0) {
        svg += fmt::format(": {} of {} right ({:.2f}%)", right, total,
                           100.0 * static_cast<double>(right) / static_cast<double>(total));
    }
    svg += "</text>\n";
    for (size_t i = 0; i < n; i++) {
        int64_t row_total = 0;
        for (const int64_t c : counts[i]) row_total += c;
        const double y = top + cell * static_cast<double>(i);
        for (size_t j = 0; j < n; j++) {
            const double share =
                row_total > 0 ? static_cast<double>(counts[i][j]) / static_cast<double>(row_total) : 0.0;
            // White to dark blue (8, 48, 107), as matplotlib's "Blues"; the square root lets a 1%
            // confusion show as a tint beside a 99% diagonal.
            const double shade = std::sqrt(share);
            const auto blend = [&](int dark) { return static_cast<int>(std::round(255 - shade * (255 - dark))); };
            const double x = left + cell * static_cast<double>(j);
            const char* ink = counts[i][j] == 0 ? "#bbb" : shade > 0.6 ? "white" : "black";
            svg += fmt::format(
                "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"rgb({},{},{})\" "
                "stroke=\"#eee\"/>\n<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"{:.1f}\" "
                "fill=\"{}\">{}</text>\n",
                x, y, cell, cell, blend(8), blend(48), blend(107), x + cell / 2, y + cell / 2 + count_font * 0.35,
                count_font, ink, counts[i][j]);
        }
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"{:.1f}\">{}</text>\n",
                           left - 6, y + cell / 2 + name_font * 0.35, name_font, xml_escape(class_names[i]));
        const double x = left + cell * (static_cast<double>(i) + 0.5), name_y = top + matrix + 6 + name_font;
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\" font-size=\"{:.1f}\"", x, name_y,
                           rotate ? "end" : "middle", name_font);
        if (rotate) svg += fmt::format(" transform=\"rotate(-45 {:.1f} {:.1f})\"", x, name_y);
        svg += fmt::format(">{}</text>\n", xml_escape(class_names[i]));
    }
    svg += fmt::format(
        "<rect x=\"{0:.1f}\" y=\"{1:.1f}\" width=\"{2:.1f}\" height=\"{2:.1f}\" fill=\"none\" stroke=\"#444\"/>\n"
        "<text x=\"{3:.1f}\" y=\"{4:.1f}\" text-anchor=\"middle\">predicted class</text>\n"
        "<text x=\"14\" y=\"{5:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {5:.1f})\">true class</text>\n"
        "</svg>\n",
        left, top, matrix, left + matrix / 2, top + matrix + bottom - 10, top + matrix / 2);
    write_text_file(path, svg);
}

void write_training_curves_svg(const std::string& path, const std::vector<EpochReport>& reports) {
    if (reports.empty()) {
        throw std::invalid_argument(fmt::format("write_training_curves_svg: {}: no epochs to draw", path));
    }
    Series loss{{}, {}, training_colour}, train_accuracy{{}, {}, training_colour}, test_accuracy{{}, {}, test_colour};
    for (const EpochReport& r : reports) {
        for (Series* s : {&loss, &train_accuracy, &test_accuracy}) s->x.push_back(r.epoch);
        loss.y.push_back(r.loss);
        train_accuracy.y.push_back(100 * r.train_accuracy);
        test_accuracy.y.push_back(100 * r.test_accuracy);
    }
    // Epochs as integers; a single epoch sits in the middle.
    const double first = reports.front().epoch, last = reports.back().epoch;
    Axis epochs{first, last, std::max(1.0, std::ceil((last - first) / 8))};
    if (last <= first) epochs = {first - 1, first + 1, 1};
    epochs.high = epochs.low + std::ceil((epochs.high - epochs.low) / epochs.step) * epochs.step;

    const double left = 64, gap = 90, top = 40;
    std::string svg = svg_begin(left + 2 * panel_width + gap + 24, top + panel_height + 74);
    draw_panel(svg, left, top, "training loss", epochs, value_axis({loss}, true), {loss});
    const std::vector<Series> accuracies{train_accuracy, test_accuracy};
    draw_panel(svg, left + panel_width + gap, top, "accuracy (%)", epochs, value_axis(accuracies, false), accuracies);
    const double legend_y = top + panel_height + 62;
    int entry = 0;
    for (const auto& [colour, label] :
         {std::pair{training_colour, "training (loss, accuracy)"}, std::pair{test_colour, "test accuracy"}}) {
        const double x = left + 200 * entry++;
        svg += fmt::format(
            "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"{3}\" stroke-width=\"2\"/>\n"
            "<circle cx=\"{4:.1f}\" cy=\"{1:.1f}\" r=\"3\" fill=\"{3}\"/>\n"
            "<text x=\"{5:.1f}\" y=\"{6:.1f}\">{7}</text>\n",
            x, legend_y, x + 24, colour, x + 12, x + 30, legend_y + 4, label);
    }
    write_text_file(path, svg + "</svg>\n");
}

}  // namespace convgen::runtime
