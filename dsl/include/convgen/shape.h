// Per-sample tensor shapes, in PyTorch's order: [C, H, W] for images, [F] for features.
// The batch dimension is never part of a Shape: it is a runtime value of the generated library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace convgen {

struct Shape {
    std::vector<int64_t> dims;

    Shape() = default;
    Shape(std::initializer_list<int64_t> values) : dims(values) {}
    explicit Shape(std::vector<int64_t> values) : dims(std::move(values)) {}

    int rank() const { return static_cast<int>(dims.size()); }
    int64_t operator[](int i) const { return dims.at(static_cast<size_t>(i)); }
    int64_t elements() const;
    std::string to_string() const;  // "[6, 14, 14]"

    bool operator==(const Shape& other) const { return dims == other.dims; }
    bool operator!=(const Shape& other) const { return dims != other.dims; }
};

}  // namespace convgen
