// The PNG writer behind image_grid.h and visualise.h: tiles laid out in a grid, encoded by
// stb_image_write and written atomically.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace convgen::runtime::detail {

// Lays out `count` tiles of height x width x channels bytes (1 to 4 channels: grey, grey and
// alpha, RGB, RGBA), `columns` to a row (fewer when there are fewer tiles), each scaled up `scale`
// times (nearest) and separated by gaps `gap_width` pixels wide of grey `gap` (an alpha channel is
// opaque).
// tile(i, pixels) writes tile i's bytes. Bad sizes throw std::invalid_argument naming `what` and
// the path; encoding or writing failures throw DataError.
void write_png_grid(const std::string& what, const std::string& path, int64_t count, int64_t height, int64_t width,
                    int64_t channels, int64_t columns, int scale, uint8_t gap, int gap_width,
                    const std::function<void(int64_t, uint8_t*)>& tile);

}  // namespace convgen::runtime::detail
