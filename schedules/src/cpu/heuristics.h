// Default schedule parameters, chosen from the stage's shape and the target's vector width.
#pragma once

#include <convgen/schedules/cpu.h>

#include <string>
#include <vector>

namespace convgen::schedules::cpu {

// The key a stage's tuned parameters are stored under in the database.
std::string conv_signature(const char* stage, const ConvGeometry& g, bool fused_pool);
// A conv's forward stage in a training step shares its kernel with what the backward pass keeps
// and runs at the training batch; the same conv in inference is keyed apart, as its best schedule
// differs (the conv3x3 layer's training winner ran at 0.91x of the heuristics in inference).
std::string conv_forward_signature(const Context& context, const ConvGeometry& g, bool fused_pool);

// The database's name for a target: its arch, OS and instruction-set features.
std::string target_key(const Halide::Target& target);

// Parameters for `signature`: the database's where it has them and they lie in `space`, else
// `defaults`, key by key. Records the stage in context.tunable_stages when that is set.
ScheduleParameters choose(const Context& context, const std::string& signature, ScheduleParameters defaults,
                          const ParameterSpace& space);
// The same, recording nothing: for a choice made before the stage is defined (its algorithm),
// which the stage's own `choose` then records with the rest of its space.
ScheduleParameters stored_or_default(const Context& context, const std::string& signature,
                                     ScheduleParameters defaults, const ParameterSpace& space);

// `base` with each value of `overrides` that lies in `space` written over it.
ScheduleParameters override_within(ScheduleParameters base, const ScheduleParameters& overrides,
                                   const ParameterSpace& space);

// The divisors of `n` that are at most `limit`, ascending.
std::vector<int> divisors(int64_t n, int limit);

// How many output pixels along x share each weight vector in a register tile: enough to hide the
// FMA latency, few enough that (channel vectors x pixels) accumulators fit in the 16 (AVX2) or
// 32 (AVX-512) vector registers. A divisor of the width is preferred, so no tail is computed.
int register_tile_width(int64_t width, int channel_vectors, int registers);

// With several channel vectors: how many of them (a divisor of channel_vectors) and how many
// pixels form the register tile. Each reduction step loads `channel_block` weight vectors and
// broadcasts `tile_x` inputs for channel_block * tile_x FMAs; the tile maximising FMAs per
// load that fits in the registers wins, discounted by the pixels a rounded-up tail wastes.
struct RegisterTile {
    int channel_block = 1;
    int tile_x = 1;
};
RegisterTile choose_register_tile(int channel_vectors, int64_t width, int registers);

// The register tile of Winograd's product over a row of `tiles` tiles (tile_x counts tiles).
// Measured (bench/RESULTS.md, 2026-11-29): it ran fastest with at most 16 accumulators (24 or 28
// ran up to 2x slower), a tile that divides the row (a rounded-up tail cost far more than its
// share of work), at least 4 tiles per weight vector loaded, and of equal tiles the one with more
// channel vectors (16 broadcasts from 16 tiles 2 KB apart stall).
RegisterTile choose_winograd_tile(int channel_vectors, int64_t tiles);

}  // namespace convgen::schedules::cpu
