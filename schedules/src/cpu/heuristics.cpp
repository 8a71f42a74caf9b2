#include "heuristics.h"

#include <fmt/format.h>

#include <algorithm>

namespace convgen::schedules::cpu {

std::string conv_signature(const char* stage, const ConvGeometry& g, bool fused_pool) {
    std::string signature = fmt::format("{}:in{}x{}x{}:out{}:k{}:s{}:p{}", stage, g.in_channels, g.in_height,
                                        g.in_width, g.out_channels, g.kernel, g.stride, g.padding);
    if (g.dilation != 1) signature += fmt::format(":d{}", g.dilation);
    if (g.groups != 1) signature += fmt::format(":g{}", g.groups);
    if (fused_pool) signature += ":fused_pool";
    return signature;
}

std::string conv_forward_signature(const Context& context, const ConvGeometry& g, bool fused_pool) {
    std::string signature = conv_signature("conv2d_forward", g, fused_pool);
    if (context.training) signature += ":training";
    return signature;
}

std::string target_key(const Halide::Target& target) {
    return target.without_feature(Halide::Target::UserContext).without_feature(Halide::Target::NoRuntime).to_string();
}

ScheduleParameters choose(const Context& context, const std::string& signature, ScheduleParameters defaults,
                          const ParameterSpace& space) {
    if (context.tunable_stages != nullptr) context.tunable_stages->push_back({signature, defaults, space});
    return stored_or_default(context, signature, std::move(defaults), space);
}

ScheduleParameters stored_or_default(const Context& context, const std::string& signature,
                                     ScheduleParameters defaults, const ParameterSpace& space) {
    if (context.database == nullptr) return defaults;
    const std::optional<ScheduleParameters> tuned = context.database->find(target_key(context.target), signature);
    return tuned ? override_within(std::move(defaults), *tuned, space) : defaults;
}

ScheduleParameters override_within(ScheduleParameters base, const ScheduleParameters& overrides,
                                   const ParameterSpace& space) {
    for (const auto& [key, value] : overrides) {
        const auto allowed = space.find(key);
        if (allowed == space.end()) continue;
        if (std::find(allowed->second.begin(), allowed->second.end(), value) != allowed->second.end()) {
            base[key] = value;
        }
    }
    return base;
}

std::vector<int> divisors(int64_t n, int limit) {
    std::vector<int> found;
    for (int d = 1; d <= limit && d <= n; d++) {
        if (n % d == 0) found.push_back(d);
    }
    return found;
}

int register_tile_width(int64_t width, int channel_vectors, int registers) {
    // Leave a few registers for the weight vectors and the broadcast input.
    const int budget = std::max(1, (registers - channel_vectors - 2) / std::max(1, channel_vectors));
    const int limit = static_cast<int>(std::min<int64_t>(width, budget));
    for (int tile = limit; tile >= std::max(2, limit / 2); tile--) {
        if (width % tile == 0) return tile;
    }
    return limit;
}

RegisterTile choose_register_tile(int channel_vectors, int64_t width, int registers) {
    RegisterTile best;
    double best_score = 0;
    for (int block = 1; block <= channel_vectors; block++) {
        if (channel_vectors % block != 0) continue;
        for (int tile = 1; tile <= width; tile++) {
            if (block * tile + block + 1 > registers) break;
            const double rounded = static_cast<double>((width + tile - 1) / tile * tile);
            const double score =
                static_cast<double>(block * tile) / (block + tile) * static_cast<double>(width) / rounded;
            if (score > best_score + 1e-9) {
                best_score = score;
                best = {block, tile};
            }
        }
    }
    return best;
}

RegisterTile choose_winograd_tile(int channel_vectors, int64_t tiles) {
    RegisterTile tile{1, 1};
    for (int block = 1; block <= channel_vectors; block++) {
        if (channel_vectors % block != 0) continue;
        for (int t = static_cast<int>(std::min<int64_t>(tiles, 4)); t <= tiles && block * t <= 16; t++) {
            if (tiles % t != 0) continue;
            const int accumulators = block * t, best = tile.channel_block * tile.tile_x;
            if (accumulators > best || (accumulators == best && block > tile.channel_block)) tile = {block, t};
        }
    }
    return tile;
}

}  // namespace convgen::schedules::cpu
